#include "ops/op_inputs.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/checks.h"
#include "ops/ops.h"

namespace mambalm::ops::checks {

void linear_inputs(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias) {
  need_weight_dtype(op, "w", w);
  need_matrix_activation_dtype(op, "x", x, w);
  MAMBALM_CHECK(x.rank() >= 1, where(op), "x has shape " + shape_str(x.shape()) + ", expected [..., K]");
  need_rank(op, "w", w, 2, "[N, K]");
  MAMBALM_CHECK(w.dim(1) == x.dim(-1), where(op), "w has shape " + shape_str(w.shape()) + " but x has shape " + shape_str(x.shape()),
                "w is [out_features, in_features] and in_features must equal x's last dim");
  need(op, "bias", bias, {w.dim(0)});
}

void column_parts(const char* op, const char* name, const std::vector<const Tensor*>& parts, const Shape& lead,
                  int64_t total, bool bf16_on_cuda) {
  MAMBALM_CHECK(parts.size() >= 1 && parts.size() <= 8, where(op),
                std::to_string(parts.size()) + " " + name + " parts, expected 1 to 8");
  int64_t cols = 0;
  for (const Tensor* p : parts) {
    MAMBALM_CHECK(p && p->defined(), where(op), std::string("a ") + name + " part is missing");
    if (!(bf16_on_cuda && p->dtype() == DType::BF16 && p->device() == Device::CUDA)) need_dtype(op, name, *p);
    Shape want = lead;
    want.push_back(p->rank() >= 1 ? p->dim(-1) : 0);
    MAMBALM_CHECK(p->shape() == want, where(op),
                  std::string(name) + " part has shape " + shape_str(p->shape()) + ", expected " + shape_str(want) +
                      " (the leading dims of the whole)");
    cols += p->dim(-1);
  }
  MAMBALM_CHECK(cols == total, where(op),
                std::string("the ") + name + " parts are " + std::to_string(cols) + " columns wide, expected " +
                    std::to_string(total));
}

void need_matrix_activation_dtype(const char* op, const char* name, const Tensor& t, const Tensor& w) {
  need_defined(op, name, t);
  if (t.dtype() == DType::BF16 && t.device() == Device::CUDA && w.dtype() == DType::BF16) return;
  MAMBALM_CHECK(t.dtype() == DType::F32, where(op),
                std::string(name) + " has dtype " + dtype_name(t.dtype()) + " on " +
                    (t.device() == Device::CUDA ? "CUDA" : "the CPU") + " with " + dtype_name(w.dtype()) +
                    " weights, expected F32 (or BF16 on CUDA with BF16 weights)");
}

void activation_tensors(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  const auto& [first_name, first] = *tensors.begin();
  need_defined(op, first_name, *first);
  const DType dt = first->dtype();
  MAMBALM_CHECK(dt == DType::F32 || (dt == DType::BF16 && first->device() == Device::CUDA), where(op),
                std::string(first_name) + " has dtype " + dtype_name(dt) + " on " +
                    (first->device() == Device::CUDA ? "CUDA" : "the CPU") + ", expected F32 (or BF16 on CUDA)");
  for (const auto& [name, t] : tensors) {
    need_dtype(op, name, *t, dt);
    MAMBALM_CHECK(t->shape() == first->shape(), where(op),
                  std::string(name) + " has shape " + shape_str(t->shape()) + " but " + first_name + " has shape " +
                      shape_str(first->shape()),
                  "elementwise ops need equal shapes (no broadcasting)");
  }
}

void embedding_inputs(const char* op, const Tensor& ids, const Tensor& table) {
  need_dtype(op, "ids", ids, DType::I32);
  need_weight_dtype(op, "table", table);
  need_rank(op, "ids", ids, 2, "[B, T]");
  need_rank(op, "table", table, 2, "[V, D]");
}

void same_shape(const char* op, const char* an, const Tensor& a, const char* bn, const Tensor& b) {
  need_dtype(op, an, a);
  need_dtype(op, bn, b);
  MAMBALM_CHECK(a.shape() == b.shape(), where(op),
                std::string(bn) + " has shape " + shape_str(b.shape()) + " but " + an + " has shape " + shape_str(a.shape()),
                "elementwise ops need equal shapes (no broadcasting)");
}

void norm_inputs(const char* op, const Tensor& x, const Tensor& w, float eps, bool x_bf16_on_cuda) {
  if (!(x_bf16_on_cuda && x.dtype() == DType::BF16 && x.device() == Device::CUDA)) need_dtype(op, "x", x);
  MAMBALM_CHECK(x.rank() >= 1, where(op), "x has shape " + shape_str(x.shape()) + ", expected [..., D]");
  need(op, "w", &w, {x.dim(-1)});
  MAMBALM_CHECK(std::isfinite(eps) && eps >= 0.0f, where(op), "eps is " + std::to_string(eps) + ", expected a finite value >= 0");
}

void conv_inputs(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                 const Tensor* state, bool x_bf16_on_cuda) {
  if (!(x_bf16_on_cuda && x.dtype() == DType::BF16 && x.device() == Device::CUDA)) need_dtype(op, "x", x);
  need_dtype(op, "w", w);
  need_rank(op, "x", x, 3, "[B, T, C]");
  need_rank(op, "w", w, 2, "[C, K]");
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  MAMBALM_CHECK(w.dim(0) == C && K >= 1, where(op), "w has shape " + shape_str(w.shape()) + " but x has shape " + shape_str(x.shape()),
                "w is [C, K] with K >= 1 and C equal to x's channel count");
  need(op, "bias", bias, {C});
  need(op, "seq_idx", seq_idx, {B, T}, DType::I32);
  need(op, "state", state, {B, C, K - 1});
}

void ssd_inputs(const char* op, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                const Tensor* D, const Tensor* seq_idx, bool bf16_on_cuda) {
  // x, Bm and Cm share a dtype: fp32, or bf16 on CUDA where allowed (mixed-precision training)
  const DType in = bf16_on_cuda && x.dtype() == DType::BF16 && x.device() == Device::CUDA ? DType::BF16 : DType::F32;
  need_dtype(op, "x", x, in);
  need_dtype(op, "Bm", Bm, in);
  need_rank(op, "x", x, 4, "[B, T, H, P]");
  need_rank(op, "Bm", Bm, 4, "[B, T, G, N]");
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), G = Bm.dim(2);
  need(op, "dt", &dt, {B, T, H});
  need(op, "A", &A, {H});
  MAMBALM_CHECK(Bm.dim(0) == B && Bm.dim(1) == T, where(op),
                "Bm has shape " + shape_str(Bm.shape()) + " but x has shape " + shape_str(x.shape()),
                "Bm is [B, T, G, N] with x's B and T");
  MAMBALM_CHECK(G >= 1 && H % G == 0, where(op),
                "x has " + std::to_string(H) + " heads and Bm " + std::to_string(G) + " groups (shapes " + shape_str(x.shape()) +
                    ", " + shape_str(Bm.shape()) + ")",
                "the head count must be a multiple of n_groups");
  need(op, "Cm", &Cm, Bm.shape(), in);
  need(op, "D", D, {H});
  need(op, "seq_idx", seq_idx, {B, T}, DType::I32);
}

Shape ssd_state_shape(const Tensor& x, const Tensor& Bm) { return {x.dim(0), x.dim(2), x.dim(3), Bm.dim(3)}; }

void chunk_size_positive(const char* op, int64_t chunk_size) {
  MAMBALM_CHECK(chunk_size >= 1, where(op), "chunk_size is " + std::to_string(chunk_size) + ", expected >= 1",
                "the config's chunk_size");
}

Shape scan_chunk_states_shape(const Tensor& u, const Tensor& A) {
  return {u.dim(0), (u.dim(1) + kScanStateChunk - 1) / kScanStateChunk, u.dim(2), A.dim(1)};
}

void scan_inputs(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx) {
  need_dtype(op, "u", u);
  need_dtype(op, "A", A);
  need_rank(op, "u", u, 3, "[B, T, Di]");
  need_rank(op, "A", A, 2, "[Di, N]");
  const int64_t B = u.dim(0), T = u.dim(1), Di = u.dim(2), N = A.dim(1);
  MAMBALM_CHECK(A.dim(0) == Di, where(op), "A has shape " + shape_str(A.shape()) + " but u has shape " + shape_str(u.shape()),
                "A is [Di, N] with u's channel count");
  need(op, "delta", &delta, u.shape());
  need(op, "Bm", &Bm, {B, T, N});
  need(op, "Cm", &Cm, {B, T, N});
  need(op, "D", D, {Di});
  need(op, "z", z, u.shape());
  need(op, "seq_idx", seq_idx, {B, T}, DType::I32);
}

void attention_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                      bool cpu_reads_bf16) {
  need_kv_dtype(op, "k", k);
  need_defined(op, "q", q);
  MAMBALM_CHECK(q.dtype() == DType::F32 || (q.dtype() == DType::BF16 && q.device() == Device::CUDA &&
                                            k.dtype() == DType::BF16),
                where(op),
                "q has dtype " + dtype_name(q.dtype()) + " on " + (q.device() == Device::CUDA ? "CUDA" : "the CPU") +
                    " with " + dtype_name(k.dtype()) + " keys",
                "q is F32, or BF16 on CUDA with BF16 keys and values (mixed precision)");
  need_kv_dtype(op, "v", v);
  MAMBALM_CHECK(k.dtype() != DType::BF16 || k.device() == Device::CUDA || (cpu_reads_bf16 && !seq_idx), where(op),
                std::string("k is BF16 on the CPU") + (cpu_reads_bf16 ? " with document ids" : ""),
                "the CPU reads BF16 keys and values only as a KV cache in the forward without documents");
  need_rank(op, "q", q, 4, "[B, T, Hq, Dh]");
  need_rank(op, "k", k, 4, "[B, S, Hkv, Dh]");
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  MAMBALM_CHECK(k.dim(0) == B && k.dim(3) == Dh, where(op),
                "k has shape " + shape_str(k.shape()) + " but q has shape " + shape_str(q.shape()),
                "k is [B, S, Hkv, Dh] with q's batch and head dim");
  MAMBALM_CHECK(Hkv >= 1 && Hq % Hkv == 0, where(op),
                "q has " + std::to_string(Hq) + " heads, not a multiple of k's " + std::to_string(Hkv) + " (shapes " +
                    shape_str(q.shape()) + ", " + shape_str(k.shape()) + ")");
  MAMBALM_CHECK(S >= T, where(op),
                "k has " + std::to_string(S) + " positions but q has " + std::to_string(T) + " (shapes " +
                    shape_str(k.shape()) + ", " + shape_str(q.shape()) + ")",
                "the keys must include every query position (S >= T)");
  need_shape(op, "v", v, k.shape());
  MAMBALM_CHECK(v.dtype() == k.dtype(), where(op), "k and v differ in dtype");
  need(op, "seq_idx", seq_idx, {B, S}, DType::I32);
}

void rope_inputs(const char* op, const Tensor& x, int64_t pos0, int64_t rotary_dim, double theta) {
  activation_tensors(op, {{"x", &x}});
  need_rank(op, "x", x, 4, "[B, T, H, Dh]");
  MAMBALM_CHECK(rotary_dim >= 0 && rotary_dim % 2 == 0 && rotary_dim <= x.dim(3), where(op),
                "rotary_dim " + std::to_string(rotary_dim) + " is not an even number <= head dim of x " + shape_str(x.shape()));
  MAMBALM_CHECK(pos0 >= 0, where(op), "pos0 is " + std::to_string(pos0) + ", expected >= 0");
  MAMBALM_CHECK(std::isfinite(theta) && theta > 0.0, where(op), "theta is " + std::to_string(theta) + ", expected a positive number",
                "rope_theta in the config");
}

}  // namespace mambalm::ops::checks
