// Helpers shared by the tests: fresh random tensors (never zeros), error norms, temp dirs,
// and running the CLI as a user would.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mambalm::testing {

// A new F32 tensor of uniform values in [lo, hi) from a seed drawn per test run
// (set MAMBALM_TEST_SEED to replay; the seed in use is printed on failure by the caller).
Tensor random_tensor(const Shape& shape, float lo = -1.0f, float hi = 1.0f);
uint64_t test_seed();

// ||a - b|| / ||b|| over all elements (F32 or F64 inputs, compared in double).
double relative_l2(const Tensor& a, const Tensor& b);
// max |a - b|
double max_abs_diff(const Tensor& a, const Tensor& b);

// A fresh empty directory under the system temp dir, removed with its contents when the test
// process exits (MAMBALM_KEEP_TEST_DIRS=1 keeps it).
std::string temp_dir(const std::string& tag);

// A whole file's bytes ("" if it cannot be read); writing creates the parent directories.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

struct CommandResult {
  int exit_code = 0;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built `mambalm` binary with `args` (a shell-quoted string).
CommandResult run_cli(const std::string& args);
// Runs a shell command line (stdin from /dev/null), capturing its stdout and stderr.
CommandResult run_command(const std::string& command);

std::string source_dir();

// Prints "[err] what rel_l2 max_abs" and expects relative_l2(got, want) < tol (names the seed).
void expect_close(const std::string& what, const Tensor& got, const Tensor& want, double tol);

// Decode steps against a forward over the same tokens, bf16 weights, where the CPU rounds x to
// bf16 in every product (ops::onednn_bf16_prefill()): the two paths' x differ in their last fp32
// bits (other summation orders upstream), and now and then one of them rounds to the
// neighbouring bf16 value (2^-8 away), a perturbation the later layers carry to the logits. Most
// runs stay at fp32 rounding (~6e-8); the tail reached 2.7e-3 in 120 runs of the random tiny
// models and 1.8e-5 on the nemotron fixture, so the limit is the `--dtype bf16` one (2e-2, one
// bf16 rounding's worth): a wrong cache or state still moves logits by O(1). docs/numerics.md.
constexpr double kBf16RoundedDecodeLimit = 2e-2;
// The same comparison with Q8 weights, whose products meet x rounded to int16 per 32-block
// (ops/cpu/q8_format.h): the paths' x differ in their last fp32 bits, so a few values per layer
// round to the neighbouring integer, 2^-15 of their block's largest |x| away. That is a steady
// floor rather than a rare jump: 2.3e-5 .. 5.3e-5 on the fixtures, 8.6e-5 the worst of 180 runs
// of the random tiny models (2026-12-04); the limit keeps 11x over it, and a wrong cache or
// state still moves logits by O(1). docs/numerics.md.
constexpr double kQ8DecodeLimit = 1e-3;
// Runs `fn`, which must throw a mambalm::Error of one line holding every one of `parts`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts);
// Rows [t0, t1) of the time axis (dim 1) of a [B, T, ...] tensor, as a new tensor.
Tensor time_slice(const Tensor& x, int64_t t0, int64_t t1);

}  // namespace mambalm::testing
