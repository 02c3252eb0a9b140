// `mambalm study --scale tiny` end to end on a small real corpus (Moby-Dick's chapters from the
// setup script's cache), with training shortened by --steps: the report's structure (not its
// conclusions), that a rerun skips every finished phase, and that a study killed (SIGKILL)
// in the middle of training resumes from its checkpoint and ends with the same numbers as the
// uninterrupted run, also when its families ran in two directories (--families) whose results
// were merged into a third (scripts/study-pack.sh, study-merge.sh). Skipped when the corpus
// has not been fetched (scripts/fetch-corpus.sh).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using mambalm::testing::run_cli;
using mambalm::testing::temp_dir;

std::string cache_dir() {
  if (const char* c = std::getenv("MAMBALM_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/mambalm";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int64_t line_count(const std::string& path) {
  const std::string s = read_file(path);
  return std::count(s.begin(), s.end(), '\n');
}

// The study's options in every run of this file: 12 steps, one sample per cell, short speed contexts.
std::string study_args(const std::string& out) {
  return "study --scale tiny --out " + out + " --corpus " + cache_dir() + "/corpus/moby-dick" +
         " --steps 12 --eval-samples 1 --mc-questions 4 --speed-contexts 64,256";
}

// The numbers a run produced, without paths or anything measured in time.
json comparable(json r) {
  json out = {{"lm", r["lm"]}, {"retrieval", r["retrieval"]}, {"multiple_choice", r["multiple_choice"]}, {"loss_curves", r["loss_curves"]}};
  for (auto& [family, m] : r["models"].items()) {
    m.erase("model");
    out["models"][family] = m;
  }
  for (json& f : r["findings"]) {
    if (f["id"] != "d") out["verdicts"].push_back(f["verdict"]);
  }
  return out;
}

class StudyPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::is_directory(cache_dir() + "/corpus/moby-dick")) GTEST_SKIP() << "no corpus: run scripts/fetch-corpus.sh";
  }
};

void expect_report_structure(const std::string& out) {
  ASSERT_TRUE(fs::exists(out + "/results.json"));
  const json r = json::parse(read_file(out + "/results.json"));
  const std::vector<std::string> families = {"transformer", "mamba", "mamba2", "hybrid"};
  EXPECT_EQ(r["families"], json(families));
  EXPECT_EQ(r["study"]["scale"], "tiny");
  EXPECT_EQ(r["study"]["train"]["steps"], 12);
  EXPECT_GT(r["data"]["corpus"]["tokens"].get<int64_t>(), 10000);
  EXPECT_GT(r["data"]["heldout"]["files"].get<int64_t>(), 0);
  const double share = r["data"]["train"]["synthetic_share"].get<double>();
  EXPECT_NEAR(share, 0.25, 0.02) << "retrieval 20% + multiple choice 5%";
  for (const char* task : {"phonebook", "mqar", "selective_copy", "facts_mc"})
    EXPECT_GT(r["data"]["synthetic"][task]["tokens"].get<int64_t>(), 0) << task;
  EXPECT_EQ(r["multiple_choice_settings"]["questions"], 4);
  EXPECT_EQ(r["eval_device"], "cpu");
  int64_t smallest = INT64_MAX, largest = 0;
  for (const std::string& f : families) {
    const json& m = r["models"][f];
    EXPECT_EQ(m["preset"], f + "-tiny");
    EXPECT_EQ(m["steps"], 12);
    EXPECT_EQ(m["tokens"], r["models"]["transformer"]["tokens"]) << f << ": every family trains on the same tokens";
    smallest = std::min(smallest, m["non_embedding_parameters"].get<int64_t>());
    largest = std::max(largest, m["non_embedding_parameters"].get<int64_t>());
    EXPECT_EQ(r["loss_curves"][f].size(), 12u) << f;
    EXPECT_TRUE(r["loss_curves"][f].back().contains("val_loss")) << f;
    const double bpb = r["lm"][f]["bits_per_byte"].get<double>();
    EXPECT_GT(bpb, 0.5) << f;
    EXPECT_LT(bpb, 20) << f;
    for (const char* task : {"phonebook", "phonebook_reversed", "mqar", "selective_copy"}) {
      const json& t = r["retrieval"][f][task];
      EXPECT_EQ(t["by_length"].size(), 4u) << f << " " << task;
      const double acc = t["accuracy"].get<double>();
      EXPECT_GE(acc, 0) << f << " " << task;
      EXPECT_LE(acc, 1) << f << " " << task;
    }
    // Lengths beyond training: the phonebook's longest book is longer than the training windows.
    EXPECT_TRUE(r["retrieval"][f]["phonebook"]["by_length"].contains("512")) << f;
    for (const char* format : {"cloze", "letter"}) {
      const json& mc = r["multiple_choice"][f][format];
      EXPECT_EQ(mc["n"], 4) << f << " " << format;
      for (const char* metric : {"acc", "acc_norm"}) {
        EXPECT_GE(mc[metric].get<double>(), 0) << f << " " << format;
        EXPECT_LE(mc[metric].get<double>(), 1) << f << " " << format;
      }
    }
    // The letter format's "choice" is the letter: acc_norm equals acc there (lm-eval).
    EXPECT_EQ(r["multiple_choice"][f]["letter"]["acc"], r["multiple_choice"][f]["letter"]["acc_norm"]) << f;
    ASSERT_EQ(r["speed"][f].size(), 2u) << f;
    EXPECT_EQ(r["speed"][f][1]["context"], 256);
    EXPECT_GT(r["speed"][f][1]["decode_tokens_per_s"].get<double>(), 0) << f;
  }
  EXPECT_LE(static_cast<double>(largest), 1.05 * static_cast<double>(smallest)) << "matched within 5%";
  // A Mamba layer's state does not grow with the context; a KV cache does.
  EXPECT_EQ(r["speed"]["mamba"][0]["memory_per_sequence_bytes"], r["speed"]["mamba"][1]["memory_per_sequence_bytes"]);
  EXPECT_GT(r["speed"]["transformer"][1]["kv_cache_bytes"].get<int64_t>(), r["speed"]["transformer"][0]["kv_cache_bytes"].get<int64_t>());
  ASSERT_EQ(r["findings"].size(), 5u);
  const std::set<std::string> verdicts = {"reproduced", "not reproduced", "inconclusive"};
  std::string ids;
  for (const json& f : r["findings"]) {
    ids += f["id"].get<std::string>();
    EXPECT_TRUE(verdicts.count(f["verdict"].get<std::string>())) << f.dump();
    EXPECT_FALSE(f["detail"].get<std::string>().empty());
  }
  EXPECT_EQ(ids, "abcde");

  const std::string md = read_file(out + "/report.md");
  for (const char* heading : {"## Findings", "## Data", "## Models", "## Language modelling", "## Retrieval accuracy", "## Multiple choice",
                              "## Generation speed"})
    EXPECT_NE(md.find(heading), std::string::npos) << heading;
  for (const char* id : {"(a)", "(b)", "(c)", "(d)", "(e)"}) EXPECT_NE(md.find(id), std::string::npos) << id;

  // The page carries results.json unchanged, and with the charting library, its charts.
  const std::string html = read_file(out + "/report.html");
  const std::string open = "<script type=\"application/json\" id=\"results\">";
  const size_t a = html.find(open), b = html.find("</script>", a);
  ASSERT_NE(a, std::string::npos);
  std::string embedded = html.substr(a + open.size(), b - a - open.size());
  for (size_t at = embedded.find("<\\/"); at != std::string::npos; at = embedded.find("<\\/", at)) embedded.replace(at, 3, "</");
  EXPECT_EQ(json::parse(embedded), r);
  EXPECT_NE(html.find("<table>"), std::string::npos);
  if (fs::exists(cache_dir() + "/study/chart.umd.min.js")) {
    EXPECT_NE(html.find("Chart.js v"), std::string::npos) << "the library is inlined";
    for (const char* id : {"chart-loss", "chart-bpb", "chart-phonebook", "chart-phonebook_reversed", "chart-mqar", "chart-selective_copy",
                           "chart-mc", "chart-decode", "chart-memory"})
      EXPECT_NE(html.find(std::string("<canvas id=\"") + id + "\""), std::string::npos) << id;
    EXPECT_EQ(html.find("src=\"http"), std::string::npos) << "self-contained";
  }
}

TEST_F(StudyPipeline, TinyEndToEndThenSplitKilledResumedAndMergedGivesTheSameNumbers) {
  const std::string base = temp_dir("study");
  const std::string a = base + "/a", b = base + "/b";

  // 1. Uninterrupted.
  const auto r1 = run_cli(study_args(a));
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  expect_report_structure(a);

  // 2. A rerun skips every phase.
  const auto r2 = run_cli(study_args(a));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  for (const char* phase : {"data: done", "train: done", "eval: done", "speed: done", "report: done"})
    EXPECT_NE(r2.out.find(phase), std::string::npos) << phase << "\n" << r2.out;
  // Other options on the same directory: refused, naming the phase.
  const auto r3 = run_cli(study_args(a) + " --synthetic-fraction 0.3");
  EXPECT_NE(r3.exit_code, 0);
  EXPECT_NE(r3.err.find("other inputs or options"), std::string::npos) << r3.err;

  // 3. As on GPUs (docs/study.md, "Running `small` on GPUs"): the families split over two
  //    directories that share one finished data phase, {transformer, mamba} in b and {mamba2,
  //    hybrid} in c; b's study is killed with SIGKILL in the middle of Mamba's training (after
  //    its step-6 checkpoint) and run again: it resumes. Each family's small results are packed
  //    and merged into m, which has the data phase and nothing else (no checkpoints); the study
  //    there, without --families, only writes the phases' markers and the report, and must end
  //    with the uninterrupted single-directory run's numbers.
  const std::string c = base + "/c", m = base + "/m";
  const auto r5 = run_cli(study_args(b) + " --phase data");
  ASSERT_EQ(r5.exit_code, 0) << r5.err;
  for (const std::string& dir : {c, m}) {
    fs::create_directories(dir);
    fs::copy(b + "/data", dir + "/data", fs::copy_options::recursive);
  }
  const std::string cmd = std::string(MAMBALM_CLI) + " " + study_args(b) + " --families mamba,transformer >/dev/null 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string metrics = b + "/train/mamba/run/metrics.jsonl";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (std::chrono::steady_clock::now() < deadline && !(fs::exists(metrics) && line_count(metrics) >= 8))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the study finished before it could be killed";
  EXPECT_FALSE(fs::exists(b + "/train/mamba/done.json"));
  const auto r4 = run_cli(study_args(b) + " --families transformer,mamba");
  ASSERT_EQ(r4.exit_code, 0) << r4.err;
  EXPECT_NE(r4.err.find("resuming from"), std::string::npos) << r4.err;
  EXPECT_NE(r4.out.find("train transformer: done"), std::string::npos) << r4.out;
  EXPECT_EQ(r4.out.find("train mamba2"), std::string::npos) << r4.out;
  EXPECT_NE(r4.out.find("report: not yet"), std::string::npos) << r4.out;
  for (const char* phase : {"train", "eval", "speed"}) {
    EXPECT_TRUE(fs::exists(b + "/" + phase + "/mamba/done.json")) << phase;
    EXPECT_FALSE(fs::exists(b + "/" + phase + "/done.json")) << phase << ": two families are missing";
  }
  // A later phase needs only its own families' training: eval in c before any training is refused.
  const auto r6 = run_cli(study_args(c) + " --phase eval --families hybrid");
  EXPECT_NE(r6.exit_code, 0);
  EXPECT_NE(r6.err.find("--phase train --families hybrid"), std::string::npos) << r6.err;
  const auto r7 = run_cli(study_args(c) + " --families mamba2,hybrid");
  ASSERT_EQ(r7.exit_code, 0) << r7.err;
  const std::string scripts = mambalm::testing::source_dir() + "/scripts";
  std::string merge = "bash " + scripts + "/study-merge.sh " + m;
  for (const auto& [dir, families] : {std::pair{b, "transformer mamba"}, std::pair{c, "mamba2 hybrid"}}) {
    std::istringstream names(families);
    for (std::string f; names >> f;) {
      const std::string tar = base + "/study-" + f + ".tar";
      ASSERT_EQ(std::system(("bash " + scripts + "/study-pack.sh " + dir + " " + f + " " + tar + " >/dev/null").c_str()), 0) << f;
      merge += " " + tar;
    }
  }
  ASSERT_EQ(std::system((merge + " >/dev/null").c_str()), 0);
  const auto r8 = run_cli(study_args(m));
  ASSERT_EQ(r8.exit_code, 0) << r8.err;
  for (const char* skipped : {"train transformer: done", "train hybrid: done"})
    EXPECT_NE(r8.out.find(skipped), std::string::npos) << skipped << "\n" << r8.out;
  EXPECT_FALSE(fs::exists(m + "/train/mamba/run/checkpoints"));
  expect_report_structure(m);
  const json ra = json::parse(read_file(a + "/results.json")), rm = json::parse(read_file(m + "/results.json"));
  EXPECT_EQ(comparable(ra).dump(1), comparable(rm).dump(1));
  EXPECT_EQ(rm["models"]["mamba"]["model"], "train/mamba/run/checkpoints/step-00000012");
  fs::remove_all(base);
}

}  // namespace
