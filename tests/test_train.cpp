// Training end to end through `mambalm train`: every architecture learns, runs are
// deterministic, and stopping (Ctrl-C or kill -9) then resuming continues bit for bit.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train_corpus.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

std::string train_args(const std::string& model, const Corpus& c, const std::string& run, int steps, int checkpoint_interval) {
  return "train --model " + model + " --data " + c.prefix + " --out " + run + " --seq-len 64 --micro-batch 4 --grad-accum 2 --steps " +
         std::to_string(steps) + " --lr 3e-3 --warmup 10 --val-interval 1000 --val-batches 4 --log-interval 20 --checkpoint-interval " +
         std::to_string(checkpoint_interval);
}

class Learns : public ::testing::TestWithParam<std::string> {};

TEST_P(Learns, ValidationLossFallsWellBelowUnigramEntropy) {
  std::string dir = temp_dir("learn-" + GetParam());
  Corpus c = make_corpus(dir, 7);
  ASSERT_EQ(run_cli("init --preset " + GetParam() + "-tiny --seed 3 --out " + dir + "/model").exit_code, 0);
  CommandResult r = run_cli(train_args(dir + "/model", c, dir + "/run", 150, 1000));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  double val = last_val_loss(dir + "/run");
  std::printf("[learn] %s: validation loss %.3f nats vs unigram entropy %.3f nats\n", GetParam().c_str(), val, c.unigram_entropy);
  EXPECT_LT(val, 0.6 * c.unigram_entropy);
  // The final checkpoint is a model directory that generates.
  std::string ckpt = dir + "/run/checkpoints/step-00000150";
  EXPECT_TRUE(fs::exists(ckpt + "/config.json"));
  std::ofstream(dir + "/p.txt") << "1 2 3";
  EXPECT_EQ(run_cli("generate --model " + ckpt + " --tokens " + dir + "/p.txt --max-tokens 3").exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(FourArchitectures, Learns, ::testing::Values("transformer", "mamba", "mamba2", "hybrid"));

TEST(Train, SameSeedSameLossesAndResumeIsBitIdentical) {
  // Two threads, so that parallel reductions are exercised: results must not depend on timing.
  setenv("OMP_NUM_THREADS", "2", 1);
  std::string dir = temp_dir("resume");
  Corpus c = make_corpus(dir, 11);
  ASSERT_EQ(run_cli("init --preset hybrid-tiny --seed 5 --out " + dir + "/model").exit_code, 0);
  const int steps = 24;
  ASSERT_EQ(run_cli(train_args(dir + "/model", c, dir + "/a", steps, 6)).exit_code, 0);
  // The second run also takes step 5 apart (--profile-step): that must not change a bit.
  CommandResult profiled = run_cli(train_args(dir + "/model", c, dir + "/b", steps, 6) + " --profile-step 5");
  ASSERT_EQ(profiled.exit_code, 0) << profiled.err;
  for (const char* part : {"profile of step 5,", "forward + backward", "optimizer", "stages of forward + backward", "  ops (ms):", " linear_backward x"})
    EXPECT_NE(profiled.err.find(part), std::string::npos) << part << "\n" << profiled.err;
  auto a = losses(dir + "/a"), b = losses(dir + "/b");
  ASSERT_EQ(a.size(), static_cast<size_t>(steps));
  EXPECT_EQ(a, b);  // bit-identical doubles

  // kill -9 after the first checkpoint, then resume: identical from the checkpoint on.
  std::string cmd = std::string(MAMBALM_CLI) + " " + train_args(dir + "/model", c, dir + "/killed", steps, 6) + " >/dev/null 2>&1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir + "/killed/checkpoints/step-00000006") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(fs::exists(dir + "/killed/checkpoints/step-00000006/trainer_state.json"));
  CommandResult r = run_cli(train_args(dir + "/model", c, dir + "/killed", steps, 6) + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(losses(dir + "/killed"), a);

  // Resuming with other options is refused (more --steps is allowed: RunsAreHardToSpoil...).
  r = run_cli(train_args(dir + "/model", c, dir + "/killed", steps, 6) + " --resume --weight-decay 0.05");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("different options"), std::string::npos) << r.err;
}

TEST(Train, InterruptSavesACheckpointAndResumes) {
  std::string dir = temp_dir("sigint");
  Corpus c = make_corpus(dir, 13);
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --seed 5 --out " + dir + "/model").exit_code, 0);
  const int steps = 40;
  ASSERT_EQ(run_cli(train_args(dir + "/model", c, dir + "/full", steps, 1000)).exit_code, 0);
  std::string cmd = std::string(MAMBALM_CLI) + " " + train_args(dir + "/model", c, dir + "/int", steps, 1000) + " >/dev/null 2>&1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (losses(dir + "/int").size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);  // checkpoint saved, run not done: 128 + SIGINT (issue 20)
  size_t done = losses(dir + "/int").size();
  EXPECT_LT(done, static_cast<size_t>(steps)) << "the run finished before the interrupt; make it longer";
  ASSERT_TRUE(fs::exists(dir + "/int/checkpoints/latest"));
  ASSERT_EQ(run_cli(train_args(dir + "/model", c, dir + "/int", steps, 1000) + " --resume").exit_code, 0);
  EXPECT_EQ(losses(dir + "/int"), losses(dir + "/full"));
}

TEST(Train, BadDataIsAClearError) {
  std::string dir = temp_dir("baddata");
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --out " + dir + "/model").exit_code, 0);
  CommandResult r = run_cli("train --model " + dir + "/model --data " + dir + "/nothing --out " + dir + "/run --steps 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no dataset"), std::string::npos) << r.err;
  // Token ids beyond the model's vocabulary.
  {
    io::IndexedDatasetWriter w(dir + "/big", 100000);
    std::vector<int32_t> doc(500, 9999);
    w.add_document(doc);
    w.finish();
  }
  r = run_cli("train --model " + dir + "/model --data " + dir + "/big --out " + dir + "/run --steps 2 --seq-len 16 --micro-batch 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("vocabulary"), std::string::npos) << r.err;
}

TEST(Train, RunsAreHardToSpoilAndMayBeExtended) {
  setenv("OMP_NUM_THREADS", "1", 1);
  std::string dir = temp_dir("spoil");
  Corpus c = make_corpus(dir, 5);
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --seed 2 --out " + dir + "/model").exit_code, 0);
  const std::string run = dir + "/run";
  auto args = [&](int steps) {
    return "train --model " + dir + "/model --data " + c.prefix + " --out " + run + " --seq-len 32 --micro-batch 2 --steps " +
           std::to_string(steps) + " --warmup 2 --lr 1e-3 --val-interval 0 --checkpoint-interval 5 --keep-last 2";
  };
  CommandResult r = run_cli(args(20));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // --keep-last 2: the newest two checkpoints stay.
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints"))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<std::string>{"step-00000015", "step-00000020"}));
  // Every metrics row carries wall-clock time, elapsed seconds and tokens seen.
  std::ifstream f(run + "/metrics.jsonl");
  std::string first;
  std::getline(f, first);
  const auto row = nlohmann::json::parse(first);
  EXPECT_TRUE(row.contains("time") && row.contains("elapsed_s") && row.contains("tokens")) << first;
  const auto before = losses(run);

  // A fresh run into it is refused, naming --overwrite; with --overwrite it starts again.
  r = run_cli(args(20));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  r = run_cli(args(20) + " --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(losses(run), before);  // the same run again, from scratch

  // --resume may extend --steps (never below the step reached): steps 1-20 stay as they were.
  r = run_cli(args(10) + " --resume");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already reached step 20"), std::string::npos) << r.err;
  r = run_cli(args(30) + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("extending the run from 20 to 30 steps"), std::string::npos) << r.err;
  const auto after = losses(run);
  ASSERT_EQ(after.size(), 30u);
  for (const auto& [step, loss] : before) EXPECT_EQ(after.at(step), loss) << "step " << step;
}

}  // namespace
