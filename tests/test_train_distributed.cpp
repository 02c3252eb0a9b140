// Data-parallel training on the CPU through MPI (mpirun -np 2), the code path the GPUs take with
// NCCL: the same batch split over two ranks trains like one process, a checkpoint written by two
// ranks resumes on one and on two, and a rank killed with -9 ends the job instead of a hang.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_util.h"
#include "train_corpus.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

constexpr int kSteps = 20;

bool have_mpirun() { return std::string(MAMBALM_MPIEXEC).size() > 0 && fs::exists(MAMBALM_MPIEXEC); }

// mpirun of `ranks` processes of the CLI. Root is allowed (CI containers run as root);
// --oversubscribe lets 2 ranks start on a machine that reports fewer slots. In the sanitizer
// build the ranks keep ASan's error checks but not its leak report: Open MPI leaves ~120 KB of
// its own allocations (many in plugins it has unloaded, so no suppression can name them) at exit.
std::string mpirun(int ranks) {
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string env = asan ? "ASAN_OPTIONS='" + std::string(asan) + ":detect_leaks=0' " : "";
  return env + MAMBALM_MPIEXEC + " --allow-run-as-root --oversubscribe --bind-to none -np " + std::to_string(ranks) +
         " -x OMP_NUM_THREADS=1 " + MAMBALM_CLI + " ";
}

// Micro-batch `micro` per rank; the batch of a step is ranks * micro * 2 sequences of 32.
std::string train_args(const std::string& model, const Corpus& c, const std::string& run, int micro) {
  return "train --model " + model + " --data " + c.prefix + " --out " + run + " --seq-len 32 --micro-batch " +
         std::to_string(micro) + " --grad-accum 2 --steps " + std::to_string(kSteps) +
         " --lr 3e-3 --warmup 5 --val-interval 10 --val-batches 4 --log-interval 5 --checkpoint-interval 10";
}

void expect_same_losses(const std::map<int64_t, double>& got, const std::map<int64_t, double>& want, int64_t first_step,
                        const std::string& what) {
  int compared = 0;
  for (const auto& [step, loss] : want) {
    if (step < first_step) continue;
    ASSERT_TRUE(got.count(step)) << what << ": no loss at step " << step;
    const double rel = std::abs(got.at(step) - loss) / std::abs(loss);
    EXPECT_LE(rel, 1e-6) << what << ": step " << step << " loss " << got.at(step) << " vs " << loss;
    ++compared;
  }
  std::printf("[dp] %s: %d steps compared\n", what.c_str(), compared);
  EXPECT_GT(compared, 0);
}

// A copy of `run` as it was right after the checkpoint of `step`: later checkpoints removed
// and `latest` pointing back (what a kill just after that checkpoint leaves).
std::string rewind_copy(const std::string& run, const std::string& to, int step) {
  fs::copy(run, to, fs::copy_options::recursive);
  char name[32];
  std::snprintf(name, sizeof name, "step-%08d", step);
  for (const auto& e : fs::directory_iterator(to + "/checkpoints"))
    if (e.is_directory() && e.path().filename().string() > name) fs::remove_all(e.path());
  std::ofstream(to + "/checkpoints/latest") << name << "\n";
  return to;
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "no mpirun in this build (install openmpi-bin and libopenmpi-dev)";
    dir_ = temp_dir("dp");
    corpus_ = make_corpus(dir_, 11);
    ASSERT_EQ(run_cli("init --preset hybrid-tiny --seed 5 --out " + dir_ + "/model").exit_code, 0);
  }
  std::string dir_;
  Corpus corpus_;
};

TEST_F(DataParallel, TwoRanksTrainLikeOneWithTheWholeBatchAndCheckpointsResumeOnAnyCount) {
  const std::string model = dir_ + "/model";
  setenv("OMP_NUM_THREADS", "1", 1);
  CommandResult one = run_cli(train_args(model, corpus_, dir_ + "/one", 4));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  CommandResult two = run_command(mpirun(2) + train_args(model, corpus_, dir_ + "/two", 2));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_NE(two.err.find("data parallel: 2 ranks over MPI"), std::string::npos) << two.err;
  EXPECT_NE(two.err.find("optimizer state"), std::string::npos);
  const auto want = losses(dir_ + "/one");
  ASSERT_EQ(want.size(), static_cast<size_t>(kSteps));
  expect_same_losses(losses(dir_ + "/two"), want, 1, "2 ranks x 2 vs 1 rank x 4");
  const double v1 = last_val_loss(dir_ + "/one"), v2 = last_val_loss(dir_ + "/two");
  EXPECT_LE(std::abs(v1 - v2) / v1, 1e-6) << v1 << " vs " << v2;

  // The 2-rank checkpoint of step 10 resumes on 1 rank (twice the micro-batch) and on 2 ranks.
  rewind_copy(dir_ + "/two", dir_ + "/resume1", 10);
  CommandResult r1 = run_cli(train_args(model, corpus_, dir_ + "/resume1", 4) + " --resume");
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  expect_same_losses(losses(dir_ + "/resume1"), want, 11, "2-rank checkpoint resumed on 1 rank");
  rewind_copy(dir_ + "/two", dir_ + "/resume2", 10);
  CommandResult r2 = run_command(mpirun(2) + train_args(model, corpus_, dir_ + "/resume2", 2) + " --resume");
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  expect_same_losses(losses(dir_ + "/resume2"), want, 11, "2-rank checkpoint resumed on 2 ranks");
}

TEST_F(DataParallel, AKilledRankEndsTheJobAndTheRunResumes) {
  const std::string run = dir_ + "/killed";
  const std::string args = "train --model " + dir_ + "/model --data " + corpus_.prefix + " --out " + run +
                           " --seq-len 32 --micro-batch 2 --steps 300 --lr 1e-3 --log-interval 1 --val-interval 0 --checkpoint-interval 5";
  const std::string pid_file = dir_ + "/mpirun.pid", log = dir_ + "/job.log";
  std::system(("(" + mpirun(2) + args + " >" + log + " 2>&1 & echo $! >" + pid_file + "; wait) &").c_str());
  // At the first checkpoint, kill -9 one rank (a child of mpirun, not mpirun itself).
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(run + "/checkpoints/latest") && std::chrono::steady_clock::now() - start < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(run + "/checkpoints/latest")) << "no checkpoint within 2 minutes";
  int mpirun_pid = 0;
  std::ifstream(pid_file) >> mpirun_pid;
  ASSERT_GT(mpirun_pid, 0);
  const CommandResult children = run_command("pgrep -P " + std::to_string(mpirun_pid));
  const int victim = std::atoi(children.out.c_str());
  ASSERT_GT(victim, 0) << "no rank under mpirun: " << children.out;
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  while (::kill(mpirun_pid, 0) == 0 && std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(90))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::printf("[dp] the job ended %.1f s after a rank was killed\n", took);
  EXPECT_LT(took, 60.0) << "the job did not stop within a minute";
  const auto before = losses(run);
  ASSERT_FALSE(before.empty());
  EXPECT_LT(before.rbegin()->first, 300) << "the job finished before the kill; the test proves nothing";
  std::ifstream f(log);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("signal 9"), std::string::npos) << text.substr(text.size() > 2000 ? text.size() - 2000 : 0);

  // --resume continues from the last complete checkpoint and finishes the run.
  const CommandResult r = run_command(mpirun(2) + args + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from"), std::string::npos) << r.err;
  const auto after = losses(run);
  EXPECT_EQ(after.size(), 300u);
  EXPECT_EQ(after.rbegin()->first, 300);
}

}  // namespace

// MPI's calls are a module opened only by a job that mpirun started (dist/mpi_calls.h): a missing
// or corrupt one is a one-line error naming it, and a run outside MPI never opens it. The rank
// variables stand in for mpirun's (an MPI launcher's world), so no mpirun is needed.
TEST(MpiModule, MissingOrCorruptIsAOneLineErrorAndOnlyMpiJobsNeedIt) {
  if (!have_mpirun()) GTEST_SKIP() << "no MPI in this build (install openmpi-bin and libopenmpi-dev)";
  const std::string dir = temp_dir("mpi-module");
  const Corpus corpus = make_corpus(dir, 3);
  ASSERT_EQ(run_cli("init --preset hybrid-tiny --seed 5 --out " + dir + "/model").exit_code, 0);
  write_file(dir + "/corrupt.so", "not a shared object\n");
  const std::string train = std::string(MAMBALM_CLI) + " train --model " + dir + "/model --data " + corpus.prefix +
                            " --seq-len 32 --micro-batch 1 --steps 1 --lr 1e-3 --log-interval 1";
  for (const std::string& module : {dir + "/missing.so", dir + "/corrupt.so"}) {
    auto r = run_command("OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_LOCAL_RANK=0 MAMBALM_MPI_MODULE=" +
                         module + " " + train + " --out " + dir + "/run-mpi");
    EXPECT_NE(r.exit_code, 0) << module;
    EXPECT_NE(r.err.find("MPI: cannot load the module mambalm-mpi.so"), std::string::npos) << module << ": " << r.err;
    EXPECT_NE(r.err.find(module), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << module << ": " << r.err;
  }
  auto plain = run_command("MAMBALM_MPI_MODULE=" + dir + "/missing.so " + train + " --out " + dir + "/run-plain");
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
}
