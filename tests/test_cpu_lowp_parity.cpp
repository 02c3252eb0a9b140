// bf16 and q8 weights on the CPU (`mambalm forward --dtype bf16|q8`) against the transformers
// float64 logits of the parity fixtures (tests/golden), with the limits of docs/numerics.md
// ("CPU inference with bf16 / q8 weights"), and the fp32 run as the baseline they are measured
// against; decode steps (GEMV) against the whole-sequence forward on the same weights.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "io/npy.h"
#include "model/model.h"
#include "ops/blas_core.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

std::string fixture(const std::string& name) { return source_dir() + "/tests/golden/fixtures/" + name; }

struct Case {
  const char* dtype;
  double limit;  // relative L2 over all logits (docs/numerics.md)
};

class CpuLowPrecisionParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuLowPrecisionParity, LogitsWithinTheWrittenLimits) {
  const std::string dir = fixture(GetParam());
  const Tensor want = io::read_npy(dir + "/logits.npy");  // [T, V] float64
  double f32_err = 0;
  for (const Case c : {Case{"f32", 1e-5}, Case{"bf16", 2e-2}, Case{"q8", 5e-2}}) {
    const std::string out = temp_dir("lowp") + "/logits.npy";
    CommandResult r = run_cli("forward --model " + dir + " --tokens " + dir + "/tokens.txt --dtype " + c.dtype + " --logits " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Tensor got = io::read_npy(out);
    ASSERT_EQ(got.shape(), want.shape());
    const double err = relative_l2(got, want);
    std::printf("[err] %s --dtype %s: relative L2 %.3g (limit %.0e)\n", GetParam().c_str(), c.dtype, err, c.limit);
    EXPECT_LE(err, c.limit) << c.dtype;
    if (std::string(c.dtype) == "f32") f32_err = err;
    else EXPECT_GT(err, 10 * f32_err) << c.dtype << ": the weights were not actually stored at lower precision";
  }
}

// Decode (one token per step: the GEMV kernels, M = 1) against the whole-sequence forward
// (M = T > 8: widened weight blocks + sgemm) on the same bf16 / q8 weights: the same products,
// summed in another order, so the fp32 tolerance of a decode-vs-forward comparison applies.
// Where bf16 weights round x to bf16 (oneDNN prefill, vdpbf16ps decode), and always with q8
// weights (x rounded to int16 per block), an x that differs in its last fp32 bits between the two
// paths can round to neighbouring values (test_util.h).
TEST_P(CpuLowPrecisionParity, DecodeStepsMatchForwardOnTheSameWeights) {
  const std::string dir = fixture(GetParam());
  for (DType dt : {DType::F32, DType::BF16, DType::Q8}) {
    Model m = Model::load(dir);
    m.to_device(Device::CPU, dt);
    const int64_t T = 12, V = m.config().vocab_size;
    Tensor ids = Tensor::empty({1, T}, DType::I32);
    for (int64_t t = 0; t < T; ++t) ids.data<int32_t>()[t] = static_cast<int32_t>((t * 37 + 5) % V);
    const Tensor full = m.forward(ids).reshape({T, V}).clone();
    SequenceState state(m.config(), 1);
    Tensor steps = Tensor::empty({T, V});
    for (int64_t t = 0; t < T; ++t) {
      Tensor one = Tensor::empty({1, 1}, DType::I32);
      one.data<int32_t>()[0] = ids.data<int32_t>()[t];
      const Tensor logits = m.forward(one, &state);
      std::copy(logits.f32(), logits.f32() + V, steps.f32() + t * V);
    }
    // Where the bf16 GEMM runs, a forward with bf16 or q8 weights also gives the chunked SSD
    // (Mamba-2's layers) bf16 operands, which decode's recurrence does not round: a bf16
    // rounding's worth between the two paths, the bf16 limit.
    const bool ssd_rounds = ops::onednn_bf16_prefill() && (GetParam() == "mamba2" || GetParam() == "nemotron_h");
    const double limit = dt == DType::BF16 && ops::onednn_bf16_prefill() ? kBf16RoundedDecodeLimit
                         : dt == DType::Q8 && ssd_rounds                     ? kBf16RoundedDecodeLimit
                         : dt == DType::Q8                                   ? kQ8DecodeLimit
                                                                             : 1e-5;
    expect_close(GetParam() + " decode vs forward, " + dtype_name(dt), steps, full, limit);
  }
}

INSTANTIATE_TEST_SUITE_P(FiveModelTypes, CpuLowPrecisionParity,
                         ::testing::Values("mamba", "mamba2", "nemotron_h", "nemotron", "llama"));

}  // namespace
