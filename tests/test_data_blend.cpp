// Dataset blending (`mambalm train --data "0.7 A 0.3 B"`, src/train/data_blend.h and
// blended_windows.h): the realised share of each dataset tracks its weight at every prefix of
// the stream, the stream is a pure seeded function of the sample index, a killed blended run
// resumes bit for bit, run files carry a blend as an array and every bad blend is a one-line
// error.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/indexed_dataset.h"
#include "test_util.h"
#include "train/blended_windows.h"
#include "train/data_blend.h"
#include "train_corpus.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

// Fresh positive weights, summing to 1, some of them small.
std::vector<double> random_weights(Rng& rng, size_t n) {
  std::vector<double> w(n);
  double total = 0;
  for (double& x : w) total += (x = std::pow(rng.uniform(0.01, 1.0), 1 + 3 * rng.uniform()));
  for (double& x : w) x /= total;
  return w;
}

// A dataset of `docs` random documents of tokens in [lo, hi) at PREFIX (no _train/_valid).
void write_dataset(const std::string& prefix, Rng& rng, int docs, int32_t lo, int32_t hi) {
  io::IndexedDatasetWriter w(prefix, std::max<int32_t>(256, hi));
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> doc(static_cast<size_t>(20 + rng.next_u64() % 60));
    for (int32_t& t : doc) t = lo + static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(hi - lo));
    w.add_document(doc);
  }
  w.finish();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool one_line(const std::string& err) { return !err.empty() && err.find('\n') == err.size() - 1; }

}  // namespace

TEST(DataBlend, RealisedSharesTrackTheWeightsAtEveryPrefix) {
  Rng rng(test_seed());
  for (int trial = 0; trial < 40; ++trial) {
    const size_t parts = 2 + rng.next_u64() % 11;  // 2..12
    const std::vector<double> w = random_weights(rng, parts);
    BlendSchedule schedule(w);
    std::vector<int64_t> taken(parts, 0);
    double ahead = 0, behind = 0;
    for (int64_t n = 1; n <= 3000; ++n) {
      const BlendSchedule::Source s = schedule.source_of(n - 1);
      ASSERT_EQ(s.index, taken[static_cast<size_t>(s.part)]) << "seed " << test_seed();  // each part in its own order
      ++taken[static_cast<size_t>(s.part)];
      for (size_t j = 0; j < parts; ++j) {
        ahead = std::max(ahead, static_cast<double>(taken[j]) - w[j] * static_cast<double>(n));
        behind = std::max(behind, w[j] * static_cast<double>(n) - static_cast<double>(taken[j]));
      }
    }
    // Never a whole sample ahead of its share; behind by at most one sample with two or three
    // parts (the greedy rule's bound), by less than two with up to twelve.
    EXPECT_LT(ahead, 1.0) << parts << " parts, seed " << test_seed();
    EXPECT_LE(behind, parts <= 3 ? 1.0 : 2.0) << parts << " parts, seed " << test_seed();
    // A pure function of k: asked again, out of order, the same answers.
    BlendSchedule fresh(w);
    for (int i = 0; i < 50; ++i) {
      const int64_t k = static_cast<int64_t>(rng.next_u64() % 20000);
      const BlendSchedule::Source a = schedule.source_of(k), b = fresh.source_of(k);
      EXPECT_EQ(a.part, b.part);
      EXPECT_EQ(a.index, b.index);
    }
  }
}

TEST(DataBlend, StreamIsSeededDeterministicAndEachPartWraps) {
  const std::string dir = temp_dir("blend-stream");
  Rng rng(test_seed());
  write_dataset(dir + "/a", rng, 12, 0, 100);    // a few windows: wraps often
  write_dataset(dir + "/b", rng, 40, 100, 200);  // tokens tell the parts apart
  const double wa = rng.uniform(0.2, 0.8);
  const std::vector<BlendPart> parts = parse_data_blend(std::to_string(wa) + " " + dir + "/a " + std::to_string(1 - wa) + " " + dir + "/b");
  ASSERT_EQ(parts.size(), 2u);
  const int64_t L = 16;
  const uint64_t seed = rng.next_u64() >> 1;
  BlendedWindows x(parts, L, seed), y(parts, L, seed), other(parts, L, seed + 1);
  TokenWindows a(dir + "/a", L, seed), b(dir + "/b", L, seed ^ 0xd1b54a32d192ed03ull);
  BlendSchedule schedule({parts[0].weight, parts[1].weight});
  const int64_t n = 3 * (a.window_count() + b.window_count());
  std::vector<int32_t> in(L), tg(L), doc(L), in2(L), tg2(L), doc2(L);
  int64_t differs = 0, from_a = 0;
  for (int64_t k = 0; k < n; ++k) {
    x.sample(k, in.data(), tg.data(), doc.data());
    y.sample(k, in2.data(), tg2.data(), doc2.data());
    ASSERT_EQ(in, in2);
    ASSERT_EQ(tg, tg2);
    ASSERT_EQ(doc, doc2);
    // Sample k is the part's own sample number `index`, in that part's seeded order.
    const BlendSchedule::Source s = schedule.source_of(k);
    (s.part == 0 ? a : b).sample(s.index, in2.data(), tg2.data(), doc2.data());
    ASSERT_EQ(in, in2) << k;
    ASSERT_EQ(in[0] < 100, s.part == 0);
    from_a += s.part == 0;
    other.sample(k, in2.data(), tg2.data(), doc2.data());
    differs += in != in2;
  }
  EXPECT_GT(from_a, a.window_count());  // part a went past its first epoch
  EXPECT_GT(differs, n / 2);            // another seed, another order
  // One part of weight 1 is the single dataset's stream, seed and all.
  BlendedWindows single(parse_data_blend(dir + "/b"), L, seed);
  TokenWindows alone(dir + "/b", L, seed);
  for (int64_t k = 0; k < 50; ++k) {
    single.sample(k, in.data(), tg.data(), doc.data());
    alone.sample(k, in2.data(), tg2.data(), doc2.data());
    ASSERT_EQ(in, in2);
  }
}

TEST(DataBlend, ValidationBlendsThePartsThatHaveOne) {
  const std::string dir = temp_dir("blend-valid");
  Rng rng(test_seed());
  for (const char* name : {"/a_train", "/a_valid", "/b_train", "/c"}) write_dataset(dir + name, rng, 10, 0, 50);
  const DataBlends d = resolve_data_blends("1 " + dir + "/a 2 " + dir + "/b 1 " + dir + "/c", "");
  ASSERT_EQ(d.train.size(), 3u);
  EXPECT_EQ(d.train[0].prefix, dir + "/a_train");
  EXPECT_EQ(d.train[2].prefix, dir + "/c");
  EXPECT_DOUBLE_EQ(d.train[1].weight, 0.5);
  ASSERT_EQ(d.valid.size(), 1u);
  EXPECT_EQ(d.valid[0].prefix, dir + "/a_valid");
  EXPECT_EQ(d.valid[0].weight, 1.0);
  const DataBlends e = resolve_data_blends("3 " + dir + "/a 1 " + dir + "/b", "0.5 " + dir + "/c 0.5 " + dir + "/a_valid");
  ASSERT_EQ(e.valid.size(), 2u);  // --valid-data overrides, and may be a blend
  EXPECT_EQ(e.valid[0].prefix, dir + "/c");
  EXPECT_EQ(blend_text(e.train), "0.75 " + dir + "/a_train 0.25 " + dir + "/b_train");
}

TEST(DataBlend, BadBlendsAreOneLineErrors) {
  const std::string dir = temp_dir("blend-errors");
  Rng rng(test_seed());
  write_dataset(dir + "/a", rng, 10, 0, 50);
  write_dataset(dir + "/b", rng, 10, 0, 50);
  write_dataset(dir + "/big", rng, 10, 9990, 10000);  // beyond the byte vocabulary of the model
  const std::string a = dir + "/a", b = dir + "/b";
  struct Case {
    std::string data, expect;
  };
  const std::vector<Case> cases = {
      {"0.7 " + a + " 0.3", "--data: a blend of 3 items: weights and prefixes must pair up"},
      {"0 " + a + " 1 " + b, "--data: weight item 1 '0' is not a positive finite number"},
      {"0.5 " + a + " -2 " + b, "--data: weight item 3 '-2' is not a positive finite number"},
      {"0.5 " + a + " inf " + b, "weight item 3 'inf' is not a positive finite number"},
      {"nan " + a + " 1 " + b, "weight item 1 'nan' is not a positive finite number"},
      {"0.5 " + a + " x7 " + b, "weight item 3 'x7' is not a positive finite number"},
      {"1e-400 " + a + " 1e-400 " + b, "weight item 1 '1e-400' is not a positive finite number"},
      {"1e308 " + a + " 1e308 " + b, "the weights sum to inf"},
      {a + " 0.5 " + b + " 0.5", "is neither a dataset prefix nor a blend"},
      {"0.5 0.5 " + a + " " + b, "item 2 '0.5' should be a dataset prefix, not a number"},
      {"0.5 " + a + " 0.5 " + dir + "/missing", "--data: no dataset at " + dir + "/missing_train.{bin,idx} or " + dir + "/missing.{bin,idx}"},
      {"0.5 " + a + " 0.5 " + dir + "/big", dir + "/big: holds token id"},
  };
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --seed 3 --out " + dir + "/model").exit_code, 0);
  for (const Case& c : cases) {
    const CommandResult r = run_cli("train --model " + dir + "/model --data '" + c.data + "' --out " + dir +
                                    "/run --steps 2 --seq-len 8 --micro-batch 2 --overwrite");
    EXPECT_EQ(r.exit_code, 1) << c.data;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "--data " << c.data << "\nstderr: " << r.err;
  }
  const std::string err = error_of([&] { resolve_data_blends(a, "1 " + b + " 1"); });
  EXPECT_NE(err.find("--valid-data: a blend of 3 items"), std::string::npos) << err;
  const CommandResult arr = run_cli("train --model " + dir + "/model --data " + a + " --valid-data '1 " + dir +
                                    "/none' --out " + dir + "/run --steps 2 --seq-len 8 --micro-batch 2 --overwrite");
  EXPECT_EQ(arr.exit_code, 1);
  EXPECT_NE(arr.err.find("--valid-data: no dataset at " + dir + "/none.{bin,idx}"), std::string::npos) << arr.err;
}

TEST(DataBlend, BlendedRunResumesBitForBitAndRunTomlRepeatsIt) {
  setenv("OMP_NUM_THREADS", "1", 1);
  const std::string dir = temp_dir("blend-resume");
  Rng rng(test_seed());
  fs::create_directories(dir + "/one");
  fs::create_directories(dir + "/two");
  const Corpus c1 = make_corpus(dir + "/one", 11), c2 = make_corpus(dir + "/two", 12);
  ASSERT_EQ(run_cli("init --preset hybrid-tiny --seed 5 --out " + dir + "/model").exit_code, 0);
  const double w = rng.uniform(0.2, 0.8);
  const std::string blend = std::to_string(w) + " " + c1.prefix + " " + std::to_string(1 - w) + " " + c2.prefix;
  const auto args = [&](const std::string& run, const std::string& data) {
    return "train --model " + dir + "/model" + (data.empty() ? "" : " --data '" + data + "'") + " --out " + run +
           " --seq-len 32 --micro-batch 2 --grad-accum 2 --steps 16 --lr 3e-3 --warmup 2 --log-interval 1 --val-interval 8"
           " --val-batches 2 --checkpoint-interval 4";
  };
  const CommandResult full = run_cli(args(dir + "/full", blend));
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const auto want = losses(dir + "/full");
  ASSERT_EQ(want.size(), 16u);
  EXPECT_TRUE(std::isfinite(last_val_loss(dir + "/full")));
  // Said once at the start: each part's weight, dataset and size, for training and validation.
  EXPECT_NE(full.err.find("data blend (weight, dataset): training\n"), std::string::npos) << full.err;
  EXPECT_NE(full.err.find(c1.prefix + "_train: "), std::string::npos) << full.err;
  EXPECT_NE(full.err.find(c2.prefix + "_valid: "), std::string::npos) << full.err;
  // Another blend of the same data is another run.
  const CommandResult swapped = run_cli(args(dir + "/swapped", std::to_string(1 - w) + " " + c1.prefix + " " + std::to_string(w) + " " + c2.prefix));
  ASSERT_EQ(swapped.exit_code, 0) << swapped.err;
  EXPECT_NE(losses(dir + "/swapped"), want);

  // kill -9 after the first checkpoint, then --resume: the uninterrupted losses.
  const std::string cmd = std::string(MAMBALM_CLI) + " " + args(dir + "/killed", blend) + " >/dev/null 2>&1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir + "/killed/checkpoints/step-00000004") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(fs::exists(dir + "/killed/checkpoints/step-00000004"));
  EXPECT_LT(losses(dir + "/killed").size(), 16u) << "the run ended before the kill; make it longer";
  // Resuming with other weights or other data is refused, naming what differs.
  CommandResult r = run_cli(args(dir + "/killed", "0.5 " + c1.prefix + " 0.5 " + c2.prefix) + " --resume");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("was trained on other training data: blend part 1 \"" + fs::weakly_canonical(fs::absolute(c1.prefix + "_train")).string() +
                       "\": weight was "),
            std::string::npos)
      << r.err;
  r = run_cli(args(dir + "/killed", std::to_string(w) + " " + c1.prefix + " " + std::to_string(1 - w) + " " + c1.prefix) + " --resume");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("blend part 2 was"), std::string::npos) << r.err;
  r = run_cli(args(dir + "/killed", c1.prefix) + " --resume");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("was trained on other training data: a blend of"), std::string::npos) << r.err;
  // The run file the killed run saved holds the blend as an array; resuming through it repeats the run.
  const std::string saved = read_file(dir + "/killed/run.toml");
  EXPECT_NE(saved.find("data = [" + std::to_string(w) + ", '" + c1.prefix + "', "), std::string::npos) << saved;  // numbers as written
  EXPECT_NE(saved.find("'" + c2.prefix + "']"), std::string::npos) << saved;
  // A build without toml++ writes run.toml but cannot read it (test_run_file.cpp checks that).
  if (run_cli("--version").out.find("TOML run files off") != std::string::npos) return;
  r = run_cli("train --config " + dir + "/killed/run.toml --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(losses(dir + "/killed"), want);  // bit-identical doubles
  // A hand-written run file with the array form gives the same run.
  write_file(dir + "/run.toml", "data = [" + std::to_string(w) + ", \"" + c1.prefix + "\", " + std::to_string(1 - w) + ", \"" +
                                    c2.prefix + "\"]\n");
  r = run_cli("train --config " + dir + "/run.toml " + args(dir + "/by-file", "").substr(std::string("train").size()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(losses(dir + "/by-file"), want);
}
