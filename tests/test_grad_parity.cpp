// Gradient parity with PyTorch autograd: `mambalm grad` on the transformers fixtures against
// float64 gradients of the same loss (tests/golden/make_fixtures.py), every parameter.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

class GradParity : public ::testing::TestWithParam<std::string> {};

// docs/numerics.md: relative L2 <= 1e-4 per tensor.
TEST_P(GradParity, EveryParameterMatchesAutogradFloat64) {
  std::string dir = source_dir() + "/tests/golden/fixtures/" + GetParam();
  std::string out = temp_dir("grad") + "/grads.safetensors";
  CommandResult r = run_cli("grad --model " + dir + " --tokens " + dir + "/tokens.txt --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = io::SafetensorsFile::open(out);
  auto want = io::SafetensorsFile::open(dir + "/grads.safetensors");
  ASSERT_EQ(got->names().size(), want->names().size());
  double worst = 0;
  std::string worst_name;
  for (const std::string& name : want->names()) {
    ASSERT_TRUE(got->contains(name)) << name;
    Tensor g = got->tensor(name), w = want->tensor(name);
    ASSERT_EQ(g.shape(), w.shape()) << name;
    double err = relative_l2(g.to(DType::F64), w);
    EXPECT_LE(err, 1e-4) << name;
    if (err > worst) {
      worst = err;
      worst_name = name;
    }
  }
  std::printf("[err] %s: worst per-tensor rel L2 %.3g (%s) over %zu tensors\n", GetParam().c_str(), worst, worst_name.c_str(),
              want->names().size());
}

INSTANTIATE_TEST_SUITE_P(FiveModelTypes, GradParity, ::testing::Values("mamba", "mamba2", "nemotron_h", "nemotron", "llama"));

}  // namespace
