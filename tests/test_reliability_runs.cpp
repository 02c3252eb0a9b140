// Issue 20, points 4 and 5: runs cannot mix, and exit codes can be trusted. A run directory
// records its model, data and options; --resume refuses another run's, follows `latest`, falls
// back past a damaged checkpoint, and logs each step once; a lock keeps a second process out;
// SIGINT and SIGTERM save a checkpoint and exit 130 and 143.
#include <gtest/gtest.h>

#include <sys/file.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_reliability_util.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

// step -> loss, failing the test on a step logged twice.
std::map<int64_t, double> logged_steps(const std::string& run) {
  std::map<int64_t, double> out;
  std::istringstream in(read_file(run + "/metrics.jsonl"));
  int64_t previous = 0;
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    const int64_t step = row["step"].get<int64_t>();
    EXPECT_EQ(step, previous + 1) << "metrics.jsonl of " << run << " repeats or skips a step";
    previous = step;
    out[step] = row["loss"].get<double>();
  }
  return out;
}

struct Fixture {
  std::string dir, data, model, args;
  explicit Fixture(const std::string& tag) : dir(temp_dir(tag)) {
    data = tiny_dataset(dir);
    model = dir + "/model";
    EXPECT_EQ(run_cli("init --preset transformer-tiny --seed 2 --out " + model).exit_code, 0);
  }
  std::string train(const std::string& run, const std::string& extra = "") const {
    return tiny_train_args(model, data, run, 8, 2) + extra;
  }
  ~Fixture() { fs::remove_all(dir); }
};

TEST(ReliabilityRuns, AReusedDirectoryIsNotSilentlyMixed) {
  Fixture f("rel-reuse");
  const std::string run = f.dir + "/run";
  ASSERT_EQ(run_cli(f.train(run)).exit_code, 0);
  EXPECT_TRUE(fs::exists(run + "/run.json"));
  const std::string ckpt = read_file(run + "/checkpoints/step-00000008/model.safetensors");

  // A fresh run into it: refused, nothing of the old run touched.
  expect_one_line_error(run_cli(f.train(run)), {"already holds a training run", "--resume"});
  // Another model, other data, or any option that changes the result: refused on resume.
  ASSERT_EQ(run_cli("init --preset transformer-tiny --seed 3 --out " + f.dir + "/other").exit_code, 0);
  expect_one_line_error(run_cli(tiny_train_args(f.dir + "/other", f.data, run, 8, 2) + " --resume"), {"another model"});
  fs::create_directories(f.dir + "/d2");
  const std::string other_data = tiny_dataset(f.dir + "/d2", 9);
  expect_one_line_error(run_cli(tiny_train_args(f.model, other_data, run, 8, 2) + " --resume"), {"other training data"});
  for (const auto& [option, key] : std::vector<std::pair<std::string, std::string>>{
           {" --beta1 0.8", "beta1"}, {" --beta2 0.99", "beta2"}, {" --decay-all", "decay_all"},
           {" --schedule wsd", "schedule"}, {" --weight-decay 0", "weight_decay"}, {" --seed 5", "seed"}})
    expect_one_line_error(run_cli(f.train(run, option + " --resume")), {"different options", key});
  EXPECT_EQ(read_file(run + "/checkpoints/step-00000008/model.safetensors"), ckpt);
  // The same options resume (nothing left to do at step 8).
  EXPECT_EQ(run_cli(f.train(run, " --resume")).exit_code, 0);
}

TEST(ReliabilityRuns, DecayFractionIsPartOfTheIdentity) {
  Fixture f("rel-wsd");
  const std::string run = f.dir + "/run";
  ASSERT_EQ(run_cli(f.train(run, " --schedule wsd")).exit_code, 0);
  expect_one_line_error(run_cli(f.train(run, " --schedule wsd --decay-fraction 0.5 --resume")), {"decay_fraction"});
}

TEST(ReliabilityRuns, ResumeFollowsLatestFallsBackAndLogsEachStepOnce) {
  Fixture f("rel-latest");
  const std::string run = f.dir + "/run";
  ASSERT_EQ(run_cli(f.train(run)).exit_code, 0);
  const auto reference = logged_steps(run);
  ASSERT_EQ(reference.size(), 8u);
  const std::string ck = run + "/checkpoints/";

  // `latest` names step 4 (a later step-N is not this run's resume point): steps 5..8 again.
  write_file(ck + "latest", "step-00000004\n");
  CommandResult r = run_cli(f.train(run, " --resume"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("step-00000004 (step 4)"), std::string::npos) << r.err;
  EXPECT_EQ(logged_steps(run), reference);  // each step once, bit-identical losses

  // The newest checkpoint damaged (truncated optimizer state): the one before it, with a warning.
  const std::string opt = ck + "step-00000008/optimizer.safetensors";
  write_file(opt, read_file(opt).substr(0, 100));
  r = run_cli(f.train(run, " --resume"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipping checkpoint"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step-00000006 (step 6)"), std::string::npos) << r.err;
  EXPECT_EQ(logged_steps(run), reference);

  // Another run's checkpoint put in its place is never taken.
  const std::string other = f.dir + "/other";
  ASSERT_EQ(run_cli(tiny_train_args(f.model, f.data, other, 10, 10)).exit_code, 0);
  fs::copy(other + "/checkpoints/step-00000010", ck + "step-00000010", fs::copy_options::recursive);
  write_file(ck + "latest", "step-00000010\n");
  r = run_cli(f.train(run, " --resume"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("belongs to another run"), std::string::npos) << r.err;
  EXPECT_EQ(logged_steps(run), reference);

  // Leftovers of an interrupted checkpoint write are cleaned on the next start.
  fs::create_directories(ck + ".tmp-step-00000009-99999");
  write_file(ck + ".tmp-step-00000009-99999/model.safetensors", "partial");
  write_file(ck + "latest.tmp-99999", "step-");
  ASSERT_EQ(run_cli(f.train(run, " --resume")).exit_code, 0);
  EXPECT_FALSE(fs::exists(ck + ".tmp-step-00000009-99999"));
  EXPECT_FALSE(fs::exists(ck + "latest.tmp-99999"));
}

TEST(ReliabilityRuns, ARunOfAnOlderVersionIsAdoptedOnResume) {
  Fixture f("rel-legacy");
  const std::string run = f.dir + "/run";
  ASSERT_EQ(run_cli(f.train(run)).exit_code, 0);
  const auto reference = logged_steps(run);
  // As an older version left it: no run.json, no run ids, fewer recorded options.
  fs::remove(run + "/run.json");
  for (const char* step : {"step-00000002", "step-00000004", "step-00000006", "step-00000008"}) {
    const std::string path = run + "/checkpoints/" + step + "/trainer_state.json";
    auto j = nlohmann::json::parse(read_file(path));
    j.erase("run_id");
    j["config"].erase("beta2");
    write_file(path, j.dump());
  }
  write_file(run + "/checkpoints/latest", "step-00000004\n");
  CommandResult r = run_cli(f.train(run, " --resume"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("adopting it"), std::string::npos) << r.err;
  EXPECT_EQ(logged_steps(run), reference);
  // Adopted: the old checkpoints stay usable, and the directory now checks every option.
  write_file(run + "/checkpoints/latest", "step-00000002\n");
  r = run_cli(f.train(run, " --resume"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(logged_steps(run), reference);
  expect_one_line_error(run_cli(f.train(run, " --beta2 0.9 --resume")), {"different options", "beta2"});
}

TEST(ReliabilityRuns, ASecondProcessOnTheSameRunIsRefused) {
  Fixture f("rel-lock");
  const std::string run = f.dir + "/run";
  fs::create_directories(run);
  const int fd = open((run + "/lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);  // as a live training process holds it
  expect_one_line_error(run_cli(f.train(run)), {"another training process"});
  EXPECT_FALSE(fs::exists(run + "/metrics.jsonl"));
  close(fd);  // the holder ends: the lock goes with it (no stale lock after kill -9 either)
  EXPECT_EQ(run_cli(f.train(run)).exit_code, 0);
}

// Starts a long run, signals it once a few steps are logged, returns the exit code.
int interrupt_after_steps(const Fixture& f, const std::string& run, int sig, const std::string& extra) {
  const std::string cmd = std::string(MAMBALM_CLI) + " " + tiny_train_args(f.model, f.data, run, 100000, 0) + extra + " >/dev/null 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto rows = [&] {
    const std::string m = read_file(run + "/metrics.jsonl");
    return std::count(m.begin(), m.end(), '\n');
  };
  const auto start_rows = rows();
  while (rows() < start_rows + 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(ReliabilityRuns, InterruptedTrainingSavesAndExitsWith128PlusTheSignal) {
  Fixture f("rel-signal");
  const std::string run = f.dir + "/run";
  EXPECT_EQ(interrupt_after_steps(f, run, SIGINT, ""), 130);
  ASSERT_TRUE(fs::exists(run + "/checkpoints/latest"));
  const std::string first = read_file(run + "/checkpoints/latest");
  EXPECT_EQ(interrupt_after_steps(f, run, SIGTERM, " --resume"), 143);
  EXPECT_NE(read_file(run + "/checkpoints/latest"), first);  // a later checkpoint
  const auto steps = logged_steps(run);                       // each step once across both runs
  EXPECT_GE(steps.size(), 6u);
}

}  // namespace
