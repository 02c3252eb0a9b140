// The CLI's start: it runs itself again with GOMP_SPINCOUNT=10000 (tools/mambalm/main.cpp), so
// that libgomp loads with a short spin, unless the user set OpenMP's wait policy, and with
// OPENBLAS_CORETYPE when OpenBLAS chose kernels older than the CPU (ops/blas_core.h).
#include <gtest/gtest.h>

#include <string>

#include "ops/blas_core.h"
#include "test_util.h"

namespace {

// The OpenMP variables of a running `mambalm tokenize` (it waits on stdin), from /proc: the first
// read that shows one of them (the tests unset both, so without the user's it is the re-exec's),
// within 5 s. One read, kept: a second read could fall inside a re-exec (the CLI may run itself
// again for OPENBLAS_CORETYPE too), where /proc shows no environment (a CI run read "" so).
std::string openmp_environment(const std::string& env_prefix) {
  const std::string cmd = "(sleep 7 | " + env_prefix + " " + MAMBALM_CLI +
                          " tokenize --tokenizer bytes > /dev/null & pid=$!; "
                          "for i in $(seq 50); do v=$(tr '\\0' '\\n' < /proc/$pid/environ 2>/dev/null | "
                          "grep -E '^(GOMP_SPINCOUNT|OMP_WAIT_POLICY)='); [ -n \"$v\" ] && break; "
                          "sleep 0.1; done; "
                          "echo \"$v\"; kill $pid)";
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

using mambalm::ops::openblas_core_to_force;
using mambalm::ops::cpu::Isa;

TEST(CliStartup, OpenBlasCoreToForceMatchesTheCpusWidestVectors) {
  EXPECT_STREQ(openblas_core_to_force("Prescott", Isa::Avx512Bf16), "Cooperlake");  // Emerald Rapids, OpenBLAS 0.3.21
  EXPECT_STREQ(openblas_core_to_force("Haswell", Isa::Avx512Bf16), "Cooperlake");   // AVX2 kernels on AVX-512
  EXPECT_STREQ(openblas_core_to_force("Zen", Isa::Avx512), "SkylakeX");
  EXPECT_STREQ(openblas_core_to_force("Sandybridge", Isa::Avx2), "Haswell");
  EXPECT_STREQ(openblas_core_to_force("Unknown", Isa::Avx2), "Haswell");
  EXPECT_EQ(openblas_core_to_force("SkylakeX", Isa::Avx512Bf16), nullptr);  // same vectors: left alone
  EXPECT_EQ(openblas_core_to_force("SapphireRapids", Isa::Avx512Bf16), nullptr);
  EXPECT_EQ(openblas_core_to_force("Cooperlake", Isa::Avx2), nullptr);  // never narrower
  EXPECT_EQ(openblas_core_to_force("Zen", Isa::Avx2), nullptr);
  EXPECT_EQ(openblas_core_to_force("Prescott", Isa::Scalar), nullptr);
  EXPECT_EQ(openblas_core_to_force("Prescott", Isa::Neon), nullptr);
}

// `mambalm --version` names the kernels in use: on this CPU, without the user's
// OPENBLAS_CORETYPE, ones as wide as its vectors; with it, the user's.
TEST(CliStartup, RunsOpenBlasKernelsAsWideAsTheCpusVectors) {
  auto core_in_use = [](const std::string& env_prefix) {
    const auto r = mambalm::testing::run_command(env_prefix + " " + std::string(MAMBALM_CLI) + " --version");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("OpenBLAS ");
    return at == std::string::npos ? std::string() : r.out.substr(at + 9, r.out.find(' ', at + 9) - at - 9);
  };
  const std::string core = core_in_use("env -u OPENBLAS_CORETYPE");
  EXPECT_EQ(openblas_core_to_force(core, mambalm::ops::cpu::best_supported_isa()), nullptr) << "OpenBLAS runs " << core << " kernels";
  EXPECT_EQ(core_in_use("env OPENBLAS_CORETYPE=Prescott"), "Prescott");
}

}  // namespace
