// Shared by the tests/test_reliability_*.cpp files (issue 20): a bad input must end in exactly
// one line on stderr, "mambalm: error: ...", and an exit code in 1..127, never a crash.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace mambalm::testing {

inline void expect_one_line_error(const CommandResult& r, const std::vector<std::string>& needles, int code = 1) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("mambalm: error: ", 0), 0u) << r.err;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs `sh -c script` (MAMBALM stands for the CLI binary) and returns its exit code as a shell
// reports it (128 + signal when a signal ended it).
inline int run_shell(std::string script) {
  for (size_t p; (p = script.find("MAMBALM")) != std::string::npos;) script.replace(p, 7, MAMBALM_CLI);
  const int status = std::system(("sh -c '" + script + "'").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace mambalm::testing

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

namespace mambalm::testing {

// Runs the CLI with `args` (split on spaces; no quoting) in a child whose files may not grow past
// `max_file_bytes` (RLIMIT_FSIZE, SIGXFSZ ignored): every write beyond fails with EFBIG, as on a
// full disk, without needing root for a small file system. stderr goes to `err_path`.
inline int run_cli_with_file_limit(const std::string& args, int64_t max_file_bytes, const std::string& err_path) {
  std::vector<std::string> words = {MAMBALM_CLI};
  std::istringstream in(args);
  for (std::string w; in >> w;) words.push_back(w);
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{static_cast<rlim_t>(max_file_bytes), static_cast<rlim_t>(max_file_bytes)};
    setrlimit(RLIMIT_FSIZE, &lim);
    const int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace mambalm::testing

#include "core/rng.h"
#include "io/indexed_dataset.h"

namespace mambalm::testing {

// PREFIX_train/_valid datasets of random bytes (vocabulary 256): enough for tiny training runs.
inline std::string tiny_dataset(const std::string& dir, uint64_t seed = 1) {
  Rng rng(seed);
  const std::string prefix = dir + "/data";
  for (const char* split : {"_train", "_valid"}) {
    io::IndexedDatasetWriter w(prefix + split, 256);
    for (int d = 0; d < 20; ++d) {
      std::vector<int32_t> doc(100);
      for (int32_t& t : doc) t = static_cast<int32_t>(rng.next_u64() % 256);
      w.add_document(doc);
    }
    w.finish();
  }
  return prefix;
}

// The options of a tiny, fast training run (no validation until the end).
inline std::string tiny_train_args(const std::string& model, const std::string& data, const std::string& run, int steps,
                                   int checkpoint_interval) {
  return "train --model " + model + " --data " + data + " --out " + run + " --seq-len 16 --micro-batch 2 --steps " +
         std::to_string(steps) + " --lr 1e-3 --warmup 2 --val-interval 0 --val-batches 1 --log-interval 1000 --checkpoint-interval " +
         std::to_string(checkpoint_interval);
}

}  // namespace mambalm::testing
