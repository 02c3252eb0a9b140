// `mambalm train --config run.toml` (tools/mambalm/run_file.cpp): a TOML run file gives the
// same run as the same flags, the command line overrides it, every run saves its options as
// RUN/run.toml that repeats it, and a bad file is a one-line error naming FILE:LINE.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_util.h"
#include "train_corpus.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

// A small run: 6 steps of a tiny hybrid on the Markov corpus.
struct SmallRun {
  std::string dir, model;
  Corpus corpus;
};

SmallRun small_run(const std::string& tag) {
  SmallRun r;
  r.dir = temp_dir(tag);
  r.corpus = make_corpus(r.dir, 13);
  r.model = r.dir + "/model";
  EXPECT_EQ(run_cli("init --preset hybrid-tiny --seed 5 --out " + r.model).exit_code, 0);
  return r;
}

std::string flags(const SmallRun& r, const std::string& out) {
  return "train --model " + r.model + " --data " + r.corpus.prefix + " --out " + out +
         " --seq-len 32 --micro-batch 2 --grad-accum 2 --steps 6 --lr 3e-3 --warmup 2 --log-interval 1 --val-interval 3 --val-batches 2"
         " --checkpoint-interval 0 --recompute";
}

// The same options as flags(), written as a run file (underscores and dashes both used).
std::string run_file(const SmallRun& r, const std::string& out) {
  return "# a run file\nmodel = \"" + r.model + "\"\ndata = '" + r.corpus.prefix + "'\nout = \"" + out +
         "\"\nseq_len = 32\nmicro-batch = 2\ngrad_accum = 2\nsteps = 6\nlr = 3e-3\nwarmup = 2\nlog-interval = 1\n"
         "val-interval = 3\nval-batches = 2\ncheckpoint-interval = 0\nrecompute = true\nno-packing-mask = false\n";
}

bool one_line(const std::string& err) { return !err.empty() && err.find('\n') == err.size() - 1; }

// A build without toml++ (CMake's MAMBALM_TOML; Ubuntu 22.04) says so in --version.
bool built_without_toml() { return run_cli("--version").out.find("TOML run files off") != std::string::npos; }

#define SKIP_WITHOUT_TOML() \
  if (built_without_toml()) GTEST_SKIP() << "this build reads no TOML run files (toml++ not found)"

}  // namespace

// Without toml++ the build still works: --config is a one-line error saying why, and runs
// still save their options as run.toml.
TEST(RunFile, WithoutTomlSupportConfigIsAOneLineError) {
  if (!built_without_toml()) GTEST_SKIP() << "this build has toml++ (configure with -DMAMBALM_TOML=OFF to test this)";
  SmallRun r = small_run("runfile-notoml");
  write_file(r.dir + "/run.toml", run_file(r, r.dir + "/file"));
  const CommandResult by_file = run_cli("train --config " + r.dir + "/run.toml");
  EXPECT_NE(by_file.exit_code, 0);
  EXPECT_TRUE(one_line(by_file.err)) << by_file.err;
  EXPECT_NE(by_file.err.find("built without TOML support"), std::string::npos) << by_file.err;
  const CommandResult by_flags = run_cli(flags(r, r.dir + "/flags"));
  ASSERT_EQ(by_flags.exit_code, 0) << by_flags.err;
  EXPECT_NE(read_file(r.dir + "/flags/run.toml").find("seq-len = 32\n"), std::string::npos);
}

TEST(RunFile, GivesTheSameRunAsTheFlagsAndRunTomlRepeatsIt) {
  SKIP_WITHOUT_TOML();
  SmallRun r = small_run("runfile-same");
  const CommandResult by_flags = run_cli(flags(r, r.dir + "/flags"));
  ASSERT_EQ(by_flags.exit_code, 0) << by_flags.err;
  write_file(r.dir + "/run.toml", run_file(r, r.dir + "/file"));
  const CommandResult by_file = run_cli("train --config " + r.dir + "/run.toml");
  ASSERT_EQ(by_file.exit_code, 0) << by_file.err;
  const auto want = losses(r.dir + "/flags");
  ASSERT_EQ(want.size(), 6u);
  EXPECT_EQ(losses(r.dir + "/file"), want);  // bit-identical doubles
  EXPECT_EQ(last_val_loss(r.dir + "/file"), last_val_loss(r.dir + "/flags"));

  // Both runs saved their options; the saved file (with another --out) repeats the run.
  const std::string saved = read_file(r.dir + "/flags/run.toml");
  EXPECT_NE(saved.find("seq-len = 32"), std::string::npos) << saved;
  EXPECT_NE(saved.find("recompute = true"), std::string::npos) << saved;
  EXPECT_NE(saved.find("lr = 3e-3"), std::string::npos) << saved;  // numbers stay numbers, as written
  EXPECT_EQ(saved.find("\nconfig"), std::string::npos) << saved;
  ASSERT_TRUE(fs::exists(r.dir + "/file/run.toml"));
  const CommandResult again = run_cli("train --config " + r.dir + "/flags/run.toml --out " + r.dir + "/again");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(losses(r.dir + "/again"), want);
  // --resume is not saved (it says what to do with the directory): the saved file starts afresh.
  const CommandResult resumed = run_cli("train --config " + r.dir + "/flags/run.toml --out " + r.dir + "/again --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_file(r.dir + "/again/run.toml").find("\nresume"), std::string::npos);
}

TEST(RunFile, TheCommandLineOverridesTheFile) {
  SKIP_WITHOUT_TOML();
  SmallRun r = small_run("runfile-override");
  // The file says 6 steps and lr 3e-3; the command line says 4 steps: 4 steps run, their losses
  // those of the flags run with --steps 4 (the schedule depends on the step count).
  write_file(r.dir + "/run.toml", run_file(r, r.dir + "/file"));
  const CommandResult by_file = run_cli("train --config " + r.dir + "/run.toml --steps 4 --out " + r.dir + "/over");
  ASSERT_EQ(by_file.exit_code, 0) << by_file.err;
  const CommandResult by_flags = run_cli(flags(r, r.dir + "/flags") + " --steps 4");
  ASSERT_EQ(by_flags.exit_code, 0) << by_flags.err;
  EXPECT_EQ(losses(r.dir + "/over").size(), 4u);
  EXPECT_EQ(losses(r.dir + "/over"), losses(r.dir + "/flags"));
  EXPECT_FALSE(fs::exists(r.dir + "/file"));  // the file's --out was overridden too
  const std::string saved = read_file(r.dir + "/over/run.toml");
  EXPECT_NE(saved.find("steps = 4\n"), std::string::npos) << saved;
  // --config=FILE works too, and an error about a value the command line gave names no file.
  const CommandResult bad = run_cli("train --config=" + r.dir + "/run.toml --seq-len x");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("option --seq-len: 'x' is not an integer"), std::string::npos) << bad.err;
}

TEST(RunFile, BadFilesAreOneLineErrorsNamingFileAndLine) {
  SKIP_WITHOUT_TOML();
  const std::string dir = temp_dir("runfile-bad");
  struct Case {
    std::string text, expect;
  };
  const std::vector<Case> cases = {
      {"model = \"m\"\nseq-len = \n", "bad.toml:2: not a valid TOML file"},
      {"model = \"m\"\n\nsteps = [1, 2]\n", "bad.toml:3: option 'steps' takes one value (N), not an array"},
      {"model = \"m\"\nlr = true\n", "bad.toml:2: option 'lr' takes a value (LR), not true/false"},
      {"recompute = 1\n", "bad.toml:1: option 'recompute' is a flag: write recompute = true or false, not an integer"},
      {"model = \"m\"\n[optimizer]\nlr = 1\n", "bad.toml:2: [optimizer]: a run file has no tables"},
      {"seq_len = 3\nseq-len = 4\n", "option 'seq-len' is set twice"},
      {"model = \"m\"\ndata = \"d\"\nout = \"o\"\nseq-len = \"long\"\n", "option --seq-len (from " + dir + "/bad.toml:4): 'long' is not an integer"},
      {"model = \"m\"\nmodle = \"m\"\nsteps = 3\nlearning-rate = 1\n",
       "bad.toml:2: unknown options 'modle', 'learning-rate' for mambalm train"},
      {"config = \"other.toml\"\n", "bad.toml:1: a run file cannot name another run file"},
  };
  for (const Case& c : cases) {
    write_file(dir + "/bad.toml", c.text);
    const CommandResult r = run_cli("train --config " + dir + "/bad.toml");
    EXPECT_NE(r.exit_code, 0) << c.text;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "file:\n" << c.text << "stderr: " << r.err;
  }
  const CommandResult missing = run_cli("train --config " + dir + "/none.toml");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find(dir + "/none.toml"), std::string::npos) << missing.err;
  EXPECT_TRUE(one_line(missing.err)) << missing.err;
  const CommandResult twice = run_cli("train --config a.toml --config b.toml");
  EXPECT_NE(twice.err.find("--config is given 2 times"), std::string::npos) << twice.err;
  // The option is in train's help.
  EXPECT_NE(run_cli("train --help").out.find("--config FILE"), std::string::npos);
}

// run.toml is written without toml++ (so every build saves it): values TOML must quote or escape
// read back as they were given.
TEST(RunFile, RunTomlKeepsAwkwardValues) {
  SKIP_WITHOUT_TOML();
  SmallRun r = small_run("runfile-quotes");
  const std::string out = r.dir + "/it's a \"run\" \\ here";
  std::string quoted = "'";  // the path in single quotes for the shell, each ' as '\''
  for (char c : out) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  const CommandResult first = run_cli(flags(r, quoted));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string saved = read_file(out + "/run.toml");
  EXPECT_NE(saved.find("out = \"" + r.dir + "/it's a \\\"run\\\" \\\\ here\"\n"), std::string::npos) << saved;
  // Read back, the file names the same directory: resuming there finds the finished run.
  const CommandResult again = run_cli("train --config " + quoted + "/run.toml --resume --steps 7");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(read_file(out + "/run.toml").find("steps = 7"), std::string::npos);
}
