// The CLI's start: it runs itself again with GOMP_SPINCOUNT=10000 (tools/mambalm/main.cpp), so
// that libgomp loads with a short spin, unless the user set OpenMP's wait policy.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace {

// The OpenMP variables of a running `mambalm tokenize` (it waits on stdin), from /proc: read once
// one of them shows (the tests unset both, so without the user's it is the re-exec's) or after 5 s.
std::string openmp_environment(const std::string& env_prefix) {
  const std::string cmd = "(sleep 7 | " + env_prefix + " " + MAMBALM_CLI +
                          " tokenize --tokenizer bytes > /dev/null & pid=$!; "
                          "for i in $(seq 50); do tr '\\0' '\\n' < /proc/$pid/environ | grep -qE '^(GOMP_SPINCOUNT|OMP_WAIT_POLICY)=' && break; "
                          "sleep 0.1; done; "
                          "tr '\\0' '\\n' < /proc/$pid/environ | grep -E '^(GOMP_SPINCOUNT|OMP_WAIT_POLICY)='; kill $pid)";
  return mambalm::testing::run_command(cmd).out;
}

TEST(CliStartup, SetsAShortOpenMpSpinUnlessTheUserChoseOne) {
  EXPECT_EQ(openmp_environment("env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY"), "GOMP_SPINCOUNT=10000\n");
  EXPECT_EQ(openmp_environment("env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive"), "OMP_WAIT_POLICY=passive\n");
  EXPECT_EQ(openmp_environment("env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=7"), "GOMP_SPINCOUNT=7\n");
}

TEST(CliStartup, RunsWithALargeEnvironment) {
  const auto r = mambalm::testing::run_command("env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY $(seq -f 'MAMBALM_TEST_V%g=1' 5000) " +
                                               std::string(MAMBALM_CLI) + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("usage: mambalm"), std::string::npos);
}

}  // namespace
