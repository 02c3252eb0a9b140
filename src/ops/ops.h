// Backend-neutral op declarations: the forward ops (ops/forward_ops.inc; the backward passes
// are in ops/ops_backward.h). Every op checks dtypes, shapes, devices and aliasing once
// (ops/dispatch.cpp, with ops/checks.h), then runs on the device of its tensors: ops/cpu/ (the
// reference) or ops/cuda/; both backends implement the same list, declared from the same file. Activations are F32; stored operands (weights, embedding
// tables, KV caches) may be BF16 on CUDA where an op says so. Ops know nothing of layers: they
// see shapes and numbers.
//
// Layout conventions: activations are [B, T, ...] row-major (batch, time, features).
// Outputs are assigned (never accumulated) and must be preallocated by the caller with the
// documented shape; an op may not alias its output with an input unless it says so.
//
// Packed documents: an op that takes `seq_idx` (I32 [B, T], one document id per token; null =
// one document per row) treats token t as the start of a new document when t > 0 and
// seq_idx[b, t] != seq_idx[b, t-1]: there the conv history and the SSM state restart from zero,
// and attention never looks across a document start.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/gemm_choice.h"

namespace mambalm::ops {

struct CrossEntropyResult {
  double mean_loss = 0.0;  // sum_loss / n_valid (0 when n_valid == 0)
  double sum_loss = 0.0;   // sum over non-ignored rows of -log softmax(logits)[target]
  int64_t n_valid = 0;     // rows whose target != -1
};

// How a backend may run the matrix products inside an op whose operands are fp32 (the chunked
// SSD's C B^T, states and their gradients). Exact: fp32-accurate, as the CPU always is (CUDA
// splits each operand into two TF32 halves and sums three tensor-core products, "3xTF32": about
// 3x the product time). Tf32: the tensor cores' TF32 operands (10-bit mantissa), the path of
// bf16 inference and mixed-precision training. Ops that take it say so.
enum class Fp32Products { Exact, Tf32 };

// The scalars of one AdamW step (adamw_update), computed once per step on the host.
struct AdamWStep {
  float beta1 = 0.9f, beta2 = 0.95f;
  float step_size = 0.0f;       // lr / (1 - beta1^t)
  float inv_sqrt_bias2 = 1.0f;  // 1 / sqrt(1 - beta2^t)
  float eps = 1e-8f;
  float shrink = 1.0f;          // 1 - lr * weight_decay (1 for parameters without decay)
  float grad_scale = 1.0f;      // gradient clipping folded into the update
};

// One parameter's tensors for adamw_update_each (copy optional, as adamw_update's), with its own
// shrink (1 - lr * weight_decay, or 1 for parameters without decay).
struct AdamWSlot {
  Tensor* master = nullptr;
  Tensor* copy = nullptr;
  const Tensor* grad = nullptr;
  Tensor* m = nullptr;
  Tensor* v = nullptr;
  float shrink = 1.0f;
};

// selective_scan's chunk_states hold the state entering every kScanStateChunk-th step, the
// interval at which the CUDA backward recomputes a chunk's states into registers.
inline constexpr int64_t kScanStateChunk = 8;

#include "ops/forward_ops.inc"

// Mean cross-entropy over the rows whose target is not -1, with dlogits (optional) the gradient
// of grad_scale * mean: cross_entropy() above plus the count and the sum, read back to the host.
CrossEntropyResult cross_entropy_mean(const Tensor& logits, const Tensor& targets, Tensor* dlogits,
                                      float grad_scale = 1.0f);

// The device's dense matrix rate in TFLOP/s, measured now (a second or so): on CUDA a bf16
// 8192^3 GEMM with fp32 accumulation, on the CPU an fp32 1024^3 sgemm. MFU is reported against it.
double measure_matmul_tflops(Device device);
// On (the default): the CUDA GEMMs (linear, linear_backward) time cuBLASLt's top candidates for
// each new shape and keep the fastest. Off: they take the heuristic's first choice, the same in
// every process on the same GPU and cuBLASLt, so separate runs are bit-reproducible (`train
// --gemm-algos heuristic`). No effect on the CPU.
void set_gemm_autotune(bool on);
// The CUDA GEMMs' algorithm choices so far (none on the CPU or before any GEMM); a resumed
// training run pins its predecessor's with pin_gemm_choices so that the same shapes run the same
// algorithms (the same bits) however timing would choose now. Pinning returns "" or why the
// choices were not used (made on another GPU or cuBLASLt version); shapes they do not list are
// chosen as usual. Without CUDA there is nothing to pin: "".
GemmChoices gemm_choices();
std::string pin_gemm_choices(const GemmChoices& choices);

}  // namespace mambalm::ops
