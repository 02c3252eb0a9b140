// Parity with Hugging Face transformers: `mambalm forward` on the fixtures made by
// tests/golden/make_fixtures.py (transformers 5.17, float64 reference) for all five model types.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/npy.h"
#include "model/model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

std::string fixture(const std::string& name) { return source_dir() + "/tests/golden/fixtures/" + name; }

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.data<double>()[i]));
  return m;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

// docs/numerics.md: within 1e-4 of the largest |logit| (fp32 engine vs float64 reference).
TEST_P(HfParity, ForwardMatchesTransformersFloat64Logits) {
  std::string dir = fixture(GetParam());
  std::string out = temp_dir("parity") + "/logits.npy";
  CommandResult r = run_cli("forward --model " + dir + " --tokens " + dir + "/tokens.txt --logits " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Tensor got = io::read_npy(out);  // [T, V] float32
  Tensor want = io::read_npy(dir + "/logits.npy");  // [T, V] float64
  ASSERT_EQ(got.shape(), want.shape());
  double scale = max_abs(want);
  double err = max_abs_diff(got, want);
  std::printf("[err] %s: max |diff| %.3g, largest |logit| %.3g, ratio %.3g\n", GetParam().c_str(), err, scale, err / scale);
  EXPECT_LE(err, 1e-4 * scale);
  EXPECT_GT(scale, 1.0);  // the fixture is not degenerate
}

// Export what we loaded, load it again: the same logits bit for bit, the same tensor names.
TEST_P(HfParity, ExportedDirectoryReloadsIdentically) {
  std::string dir = fixture(GetParam());
  Model a = Model::load(dir);
  std::string out = temp_dir("export");
  a.save(out);
  Model b = Model::load(out);
  Tensor ids = Tensor::empty({1, 9}, DType::I32);
  for (int i = 0; i < 9; ++i) ids.data<int32_t>()[i] = (i * 37 + 5) % static_cast<int>(a.config().vocab_size);
  EXPECT_EQ(max_abs_diff(a.forward(ids), b.forward(ids)), 0.0);
  ASSERT_EQ(a.params().size(), b.params().size());
  for (size_t i = 0; i < a.params().size(); ++i) EXPECT_EQ(a.params()[i].name, b.params()[i].name);
}

INSTANTIATE_TEST_SUITE_P(FiveModelTypes, HfParity, ::testing::Values("mamba", "mamba2", "nemotron_h", "nemotron", "llama"));

}  // namespace
