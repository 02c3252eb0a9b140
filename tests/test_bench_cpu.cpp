// `mambalm bench` on the CPU: the timed prefill comes after an untimed warm-up prefill (as
// llama-bench times it) unless --cold asks for the process's first, and the report says which;
// --profile adds per-op times.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ops/op_profile.h"
#include "test_util.h"

namespace {

using mambalm::testing::run_cli;

TEST(BenchCpu, WarmUpByDefaultColdOnRequest) {
  for (const auto& [flag, warm] : std::vector<std::pair<std::string, bool>>{{"", true}, {" --cold", false}}) {
    const auto r = run_cli("bench --preset mamba2-tiny --prompt-len 24 --gen-len 3 --json" + flag);
    ASSERT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["warmup"], warm) << flag;
    EXPECT_GT(j["prefill_tokens_per_s"].get<double>(), 0.0) << flag;
    EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0.0) << flag;
  }
  const auto text = run_cli("bench --preset mamba2-tiny --prompt-len 24 --gen-len 3");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("(after an untimed warm-up prefill)"), std::string::npos) << text.out;
  const auto cold = run_cli("bench --preset mamba2-tiny --prompt-len 24 --gen-len 3 --cold");
  ASSERT_EQ(cold.exit_code, 0) << cold.err;
  EXPECT_NE(cold.out.find("(cold: the process's first)"), std::string::npos) << cold.out;
}

// The decode floor counts what a step must move: the weights as stored, the SSM and conv state
// read and written back, and the KV rows read (on average prompt + (gen + 1) / 2 of them), as the
// GPU sweep counts it. The KV figure is taken after the timed steps, before --profile adds more.
TEST(BenchCpu, DecodeFloorCountsStateBothWaysAndTheKvRowsRead) {
  const auto info = run_cli("info --preset hybrid-tiny --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const double kv_f32_row = nlohmann::json::parse(info.out)["kv_bytes_per_token"].get<double>();  // fp32 K and V, one token
  ASSERT_GT(kv_f32_row, 0.0);
  for (const char* dtype : {"f32", "bf16"}) {
    const auto r = run_cli(std::string("bench --preset hybrid-tiny --prompt-len 16 --gen-len 4 --json --profile --dtype ") + dtype);
    ASSERT_EQ(r.exit_code, 0) << dtype << ": " << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const double row = kv_f32_row * (j["kv_dtype"] == "BF16" ? 0.5 : 1.0);
    EXPECT_EQ(j["kv_cache_bytes"].get<double>(), 20.0 * row) << dtype;
    EXPECT_DOUBLE_EQ(j["decode_floor_kv_bytes"].get<double>(), 18.5 * row) << dtype;  // 16 + (4 + 1) / 2 rows
    const double state = j["state_bytes"].get<double>(), weights = j["decode_floor_weight_bytes"].get<double>();
    EXPECT_GT(state, 0.0) << dtype;
    EXPECT_GT(weights, 0.0) << dtype;
    EXPECT_DOUBLE_EQ(j["decode_floor_bytes"].get<double>(), weights + 2.0 * state + 18.5 * row) << dtype;
    EXPECT_NEAR(j["decode_floor_ms"].get<double>(), 1e3 * j["decode_floor_bytes"].get<double>() / (1e9 * j["copy_bandwidth_gb_s"].get<double>()),
                1e-9) << dtype;
  }
}

// --profile times every op of gen-len more decode steps and of one more prefill, and reports both;
// the timed prefill and decode above them stay untimed by op.
TEST(BenchCpu, ProfileTimesDecodeStepsAndOnePrefillByOp) {
  const auto r = run_cli("bench --preset mamba2-tiny --prompt-len 24 --gen-len 3 --json --profile");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const std::string decode = j["op_profile"], prefill = j["prefill_op_profile"];
  EXPECT_NE(decode.find("mamba2_decode_step x"), std::string::npos) << decode;
  EXPECT_EQ(prefill.find("mamba2_decode_step"), std::string::npos) << prefill;
  EXPECT_NE(prefill.find("embedding x1 "), std::string::npos) << prefill;  // one forward of the whole prompt
  const auto text = run_cli("bench --preset mamba2-tiny --prompt-len 24 --gen-len 3 --profile");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("profile  3 more decode steps"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("profile  one more prefill of 24 tokens"), std::string::npos) << text.out;
}

// The GEMM profile (filled by the CUDA linear ops while profiling) sums each shape's calls and
// gives its rate from the FLOPs booked: 2 calls of 1 TFLOP in 4 ms in all -> 500 TFLOP/s; the
// slower shape first; no rate without FLOPs; cleared with the op totals.
TEST(BenchCpu, GemmProfileSumsEachShapeAndGivesItsRate) {
  mambalm::ops::clear_op_profile();
  mambalm::ops::add_gemm_time("fwd 16x32x64 bf16", 1e-3, 1e12);
  mambalm::ops::add_gemm_time("dw 32x64x16 f32 +=", 2e-3, 1e12);
  mambalm::ops::add_gemm_time("dw 32x64x16 f32 +=", 2e-3, 1e12);
  mambalm::ops::add_gemm_time("dy gather 16x64x0 bf16", 0.5e-3, 0.0);
  EXPECT_EQ(mambalm::ops::gemm_profile_summary(),
            " dw 32x64x16 f32 += x2 4.0 (500 TFLOP/s) | fwd 16x32x64 bf16 x1 1.0 (1000 TFLOP/s) | dy gather 16x64x0 bf16 x1 0.5 |");
  EXPECT_EQ(mambalm::ops::gemm_profile_summary(1), " dw 32x64x16 f32 += x2 4.0 (500 TFLOP/s) |");
  mambalm::ops::clear_op_profile();
  EXPECT_EQ(mambalm::ops::gemm_profile_summary(), "");
}

// --prefill-chunk splits the prompt into forward calls of that many tokens (24 = 10 + 10 + 4), as
// generate's option does; --train has no prefill and refuses it.
TEST(BenchCpu, PrefillChunkSplitsThePromptIntoForwardCalls) {
  const auto r = run_cli("bench --preset mamba2-tiny --prompt-len 24 --gen-len 3 --json --profile --prefill-chunk 10");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prefill_chunk"], 10);
  const std::string prefill = j["prefill_op_profile"];
  EXPECT_NE(prefill.find("embedding x3 "), std::string::npos) << prefill;
  const auto t = run_cli("bench --train --preset mamba2-tiny --prefill-chunk 10");
  EXPECT_NE(t.exit_code, 0);
  EXPECT_NE(t.err.find("--prefill-chunk"), std::string::npos) << t.err;
  const auto zero = run_cli("bench --preset mamba2-tiny --prefill-chunk 0");
  EXPECT_NE(zero.exit_code, 0);
  EXPECT_NE(zero.err.find("--prefill-chunk"), std::string::npos) << zero.err;
}

// --cold is a CPU option: the GPU sweep and the training benchmark refuse it by name.
TEST(BenchCpu, ColdIsRefusedWhereItMeansNothing) {
  const auto r = run_cli("bench --train --preset mamba2-tiny --cold");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--cold"), std::string::npos) << r.err;
}

// --unrelated-targets: the training benchmark's targets are drawn apart from the ids, so the
// next-id relation is gone; a flag of --train only.
TEST(BenchCpu, UnrelatedTargetsIsATrainingOption) {
  const auto r = run_cli("bench --train --preset mamba2-tiny --seq-len 32 --micro-batch 2 --steps 1 --warmup 0 --unrelated-targets");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| mamba2-tiny |"), std::string::npos) << r.out;
  const auto bad = run_cli("bench --preset mamba2-tiny --unrelated-targets");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--unrelated-targets"), std::string::npos) << bad.err;
}

}  // namespace
