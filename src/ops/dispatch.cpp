// The backend-neutral entry points of the forward ops (ops/ops.h): each checks dtypes, shapes,
// devices and aliasing once, with a message that names the op, the tensor and the shapes
// involved, then calls the backend of the tensors' device (ops/backend.h picks it). All tensors
// of a call share one device.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "ops/backend.h"
#include "ops/checks.h"
#include "ops/op_inputs.h"
#include "ops/ops.h"

namespace mambalm::ops {

using namespace checks;

namespace {
Shape with_last(const Shape& s, int64_t last) {
  Shape r = s;
  r.back() = last;
  return r;
}
}  // namespace


// ---- dense algebra -----------------------------------------------------------------------

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const char* op = "linear";
  linear_inputs(op, x, w, bias);
  need_matrix_activation_dtype(op, "y", y, w);
  need_shape(op, "y", y, with_last(x.shape(), w.dim(0)));
  const bool gpu = on_cuda(op, {&x, &w, bias, &y});
  need_disjoint(op, "y", y, "x", &x);
  need_disjoint(op, "y", y, "w", &w);
  MAMBALM_BACKEND(gpu, linear(x, w, bias, y));
}

void linear_onto(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& residual, Tensor& y) {
  const char* op = "linear_onto";
  linear_inputs(op, x, w, bias);
  need_dtype(op, "y", y);
  need_dtype(op, "residual", residual);
  need_shape(op, "y", y, with_last(x.shape(), w.dim(0)));
  same_shape(op, "residual", residual, "y", y);
  const bool gpu = on_cuda(op, {&x, &w, bias, &residual, &y});
  need_disjoint(op, "y", y, "x", &x);
  need_disjoint(op, "y", y, "w", &w);
  need_disjoint(op, "y", y, "residual", &residual);
  MAMBALM_BACKEND(gpu, linear_onto(x, w, bias, residual, y));
}

void linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::initializer_list<Tensor*> parts) {
  const char* op = "linear_parts";
  linear_inputs(op, x, w, bias);  // x F32, or BF16 on CUDA with BF16 weights
  // parts F32, or BF16 on CUDA with BF16 weights (mixed precision: Mamba-2's conv input)
  column_parts(op, "y", {parts.begin(), parts.end()}, Shape(x.shape().begin(), x.shape().end() - 1), w.dim(0),
               w.dtype() == DType::BF16);
  bool gpu = on_cuda(op, {&x, &w, bias});
  for (Tensor* p : parts) {
    gpu = on_cuda(op, {&x, p});
    need_disjoint(op, "y", *p, "x", &x);
    need_disjoint(op, "y", *p, "w", &w);
  }
  MAMBALM_BACKEND(gpu, linear_parts(x, w, bias, parts));
}

void embedding(const Tensor& ids, const Tensor& table, Tensor& y) {
  const char* op = "embedding";
  embedding_inputs(op, ids, table);
  need(op, "y", &y, {ids.dim(0), ids.dim(1), table.dim(1)});
  const bool gpu = on_cuda(op, {&ids, &table, &y});
  need_disjoint(op, "y", y, "table", &table);
  MAMBALM_BACKEND(gpu, embedding(ids, table, y));
}

// ---- elementwise -------------------------------------------------------------------------

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  same_shape("add", "b", b, "a", a);
  same_shape("add", "a", a, "y", y);
  const bool gpu = on_cuda("add", {&a, &b, &y});
  MAMBALM_BACKEND(gpu, add(a, b, y));
}

void neg_exp(const Tensor& x, Tensor& y) {
  same_shape("neg_exp", "x", x, "y", y);
  const bool gpu = on_cuda("neg_exp", {&x, &y});
  MAMBALM_BACKEND(gpu, neg_exp(x, y));
}

void silu(const Tensor& x, Tensor& y) {
  activation_tensors("silu", {{"x", &x}, {"y", &y}});
  const bool gpu = on_cuda("silu", {&x, &y});
  MAMBALM_BACKEND(gpu, silu(x, y));
}

void relu_squared(const Tensor& x, Tensor& y) {
  activation_tensors("relu_squared", {{"x", &x}, {"y", &y}});
  const bool gpu = on_cuda("relu_squared", {&x, &y});
  MAMBALM_BACKEND(gpu, relu_squared(x, y));
}

void gelu(const Tensor& x, Tensor& y) {
  activation_tensors("gelu", {{"x", &x}, {"y", &y}});
  const bool gpu = on_cuda("gelu", {&x, &y});
  MAMBALM_BACKEND(gpu, gelu(x, y));
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& y) {
  activation_tensors("swiglu", {{"gate", &gate}, {"up", &up}, {"y", &y}});
  const bool gpu = on_cuda("swiglu", {&gate, &up, &y});
  MAMBALM_BACKEND(gpu, swiglu(gate, up, y));
}

// ---- norms -------------------------------------------------------------------------------


void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  norm_inputs("rms_norm", x, w, eps);
  activation_tensors("rms_norm", {{"y", &y}});  // y F32, or BF16 on CUDA (mixed precision: the mixers' input)
  need_shape("rms_norm", "y", y, x.shape());
  if (y.dtype() != x.dtype()) need_disjoint("rms_norm", "y", y, "x", &x);  // rows of another width: no aliasing
  const bool gpu = on_cuda("rms_norm", {&x, &w, &y});
  MAMBALM_BACKEND(gpu, rms_norm(x, w, eps, y));
}

void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, bool zero_centered,
                Tensor& y) {
  const char* op = "layer_norm";
  norm_inputs(op, x, w, eps);
  activation_tensors(op, {{"y", &y}});  // y F32, or BF16 on CUDA (mixed precision: the mixers' input)
  need_shape(op, "y", y, x.shape());
  if (y.dtype() != x.dtype()) need_disjoint(op, "y", y, "x", &x);  // rows of another width: no aliasing
  need(op, "b", b, {x.dim(-1)});
  const bool gpu = on_cuda(op, {&x, &w, b, &y});
  MAMBALM_BACKEND(gpu, layer_norm(x, w, b, eps, zero_centered, y));
}

void gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size,
                    float eps, Tensor& y) {
  const char* op = "gated_rms_norm";
  norm_inputs(op, x, w, eps, /*x_bf16_on_cuda=*/true);
  // x and z both F32, or both BF16 on CUDA (mixed precision: the SSD's output and in_proj's)
  activation_tensors(op, {{"x", &x}, {"z", &z}});
  activation_tensors(op, {{"y", &y}});  // y F32, or BF16 on CUDA (mixed precision: out_proj's input)
  need_shape(op, "y", y, x.shape());
  MAMBALM_CHECK(group_size > 0 && x.dim(-1) % group_size == 0, where(op),
        "group_size " + std::to_string(group_size) + " does not divide the last dim of x " +
            shape_str(x.shape()),
        "group_size is d_inner / n_groups");
  const bool gpu = on_cuda(op, {&x, &z, &w, &y});
  MAMBALM_BACKEND(gpu, gated_rms_norm(x, z, w, group_size, eps, y));
}

// ---- convolution -------------------------------------------------------------------------

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                   bool apply_silu, Tensor& y) {
  const char* op = "causal_conv1d";
  conv_inputs(op, x, w, bias, seq_idx, state);
  need(op, "y", &y, x.shape());
  const bool gpu = on_cuda(op, {&x, &w, bias, seq_idx, state, &y});
  need_disjoint(op, {{"y", &y}, {"state", state}}, {{"x", &x}, {"w", &w}, {"bias", bias}, {"seq_idx", seq_idx}});
  MAMBALM_BACKEND(gpu, causal_conv1d(x, w, bias, seq_idx, state, apply_silu, y));
}

void causal_conv1d_parts(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                         bool apply_silu, std::initializer_list<Tensor*> parts) {
  const char* op = "causal_conv1d_parts";
  // x and the outputs (the SSD's inputs) may be BF16 on CUDA, but not with a state (causal_conv1d's):
  // mixed-precision training's; bf16 outputs take a bf16 x.
  conv_inputs(op, x, w, bias, seq_idx, state, /*x_bf16_on_cuda=*/state == nullptr);
  column_parts(op, "y", {parts.begin(), parts.end()}, {x.dim(0), x.dim(1)}, x.dim(2),
               /*bf16_on_cuda=*/state == nullptr && x.dtype() == DType::BF16);
  bool gpu = on_cuda(op, {&x, &w, bias, seq_idx, state});
  for (Tensor* p : parts) {
    gpu = on_cuda(op, {&x, p});
    need_disjoint(op, {{"y", p}, {"state", state}}, {{"x", &x}, {"w", &w}, {"bias", bias}, {"seq_idx", seq_idx}});
  }
  MAMBALM_BACKEND(gpu, causal_conv1d_parts(x, w, bias, seq_idx, state, apply_silu, parts));
}

// ---- Mamba-2 (SSD) -----------------------------------------------------------------------

void softplus_dt(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                 Tensor& dt_out) {
  const char* op = "softplus_dt";
  same_shape(op, "dt", dt, "dt_out", dt_out);
  need_dtype(op, "dt_bias", dt_bias);
  MAMBALM_CHECK(dt.rank() >= 1, where(op), "dt has shape " + shape_str(dt.shape()) + ", expected [B, T, H]");
  need_shape(op, "dt_bias", dt_bias, {dt.dim(-1)});
  MAMBALM_CHECK(!(dt_min > dt_max), where(op),
        "dt_min " + std::to_string(dt_min) + " > dt_max " + std::to_string(dt_max),
        "check time_step_limit in the config");
  const bool gpu = on_cuda(op, {&dt, &dt_bias, &dt_out});
  MAMBALM_BACKEND(gpu, softplus_dt(dt, dt_bias, dt_min, dt_max, dt_out));
}

namespace {
// Returns true when the tensors live on the CUDA device.
// y_bf16_on_cuda: y, and x | Bm | Cm, may be BF16 on CUDA (mixed-precision training: the conv
// writes the inputs so, the gated norm reads y so)
bool check_ssd(const char* op, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
               const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, const Tensor* state, const Tensor& y,
               bool y_bf16_on_cuda = false) {
  ssd_inputs(op, x, dt, A, Bm, Cm, D, seq_idx, /*bf16_on_cuda=*/y_bf16_on_cuda);
  need(op, "state", state, ssd_state_shape(x, Bm));
  const bool y16 = y_bf16_on_cuda && y.dtype() == DType::BF16 && y.device() == Device::CUDA;
  need(op, "y", &y, x.shape(), y16 ? DType::BF16 : DType::F32);
  const bool gpu = on_cuda(op, {&x, &dt, &A, &Bm, &Cm, D, seq_idx, state, &y});
  need_disjoint(op, {{"y", &y}, {"state", state}},
                {{"x", &x}, {"dt", &dt}, {"A", &A}, {"Bm", &Bm}, {"Cm", &Cm}, {"D", D}, {"seq_idx", seq_idx}});
  return gpu;
}
}  // namespace

void ssd_sequential(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, Tensor* state, Tensor& y) {
  const bool gpu = check_ssd("ssd_sequential", x, dt, A, Bm, Cm, D, nullptr, state, y);
  MAMBALM_BACKEND(gpu, ssd_sequential(x, dt, A, Bm, Cm, D, state, y));
}

void ssd_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, Tensor* state, Tensor& y,
                 Fp32Products products) {
  const bool gpu = check_ssd("ssd_chunked", x, dt, A, Bm, Cm, D, seq_idx, state, y, /*y_bf16_on_cuda=*/true);
  chunk_size_positive("ssd_chunked", chunk_size);
  MAMBALM_BACKEND(gpu, ssd_chunked(x, dt, A, Bm, Cm, D, seq_idx, chunk_size, state, y, products));
}

// ---- Mamba-1 selective scan ----------------------------------------------------------------

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx, Tensor* state, Tensor& y,
                    Tensor* chunk_states) {
  const char* op = "selective_scan";
  scan_inputs(op, u, delta, A, Bm, Cm, D, z, seq_idx);
  need(op, "state", state, {u.dim(0), u.dim(2), A.dim(1)});
  need(op, "y", &y, u.shape());
  need(op, "chunk_states", chunk_states, scan_chunk_states_shape(u, A));
  const bool gpu = on_cuda(op, {&u, &delta, &A, &Bm, &Cm, D, z, seq_idx, state, &y, chunk_states});
  need_disjoint(op, {{"y", &y}, {"state", state}, {"chunk_states", chunk_states}},
                {{"u", &u}, {"delta", &delta}, {"A", &A}, {"Bm", &Bm}, {"Cm", &Cm}, {"D", D}, {"z", z}, {"seq_idx", seq_idx}});
  MAMBALM_BACKEND(gpu, selective_scan(u, delta, A, Bm, Cm, D, z, seq_idx, state, y, chunk_states));
}

// ---- attention ---------------------------------------------------------------------------

void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta) {
  rope_inputs("rope", x, pos0, rotary_dim, theta);
  const bool gpu = on_cuda("rope", {&x});
  MAMBALM_BACKEND(gpu, rope(x, pos0, rotary_dim, theta));
}

namespace {
void need_positions(const char* op, const char* name, const Tensor& t, int64_t B) {
  need_dtype(op, name, t, DType::I32);
  need_shape(op, name, t, {B});
}
}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx, float scale, Tensor& out,
               Tensor* lse2) {
  const char* op = "attention";
  attention_inputs(op, q, k, v, seq_idx, /*cpu_reads_bf16=*/true);
  need(op, "out", &out, q.shape(), q.dtype());
  need(op, "lse2", lse2, {q.dim(0), q.dim(2), q.dim(1)});
  const bool gpu = on_cuda(op, {&q, &k, &v, seq_idx, &out, lse2});
  need_disjoint(op, {{"out", &out}, {"lse2", lse2}}, {{"q", &q}, {"k", &k}, {"v", &v}, {"seq_idx", seq_idx}});
  MAMBALM_BACKEND(gpu, attention(q, k, v, seq_idx, scale, out, lse2));
}

void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y) {
  const char* op = "add_rms_norm";
  same_shape(op, "r", r, "x", x);
  same_shape(op, "x", x, "sum", sum);
  same_shape(op, "x", x, "y", y);
  need_dtype(op, "w", w);
  need_shape(op, "w", w, {x.dim(-1)});
  const bool gpu = on_cuda(op, {&x, &r, &w, &sum, &y});
  need_disjoint(op, "y", y, "x", &x);
  need_disjoint(op, "y", y, "r", &r);
  need_disjoint(op, "sum", sum, "r", &r);
  MAMBALM_BACKEND(gpu, add_rms_norm(x, r, w, eps, sum, y));
}

void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w, const Tensor* conv_b, const Tensor& dt_bias,
                        const Tensor& A_log, const Tensor* D, float dt_min, float dt_max, int64_t n_groups,
                        Tensor& conv_state, Tensor& ssm_state, Tensor& ys, Tensor& z) {
  const char* op = "mamba2_decode_step";
  for (auto [name, t] : {std::pair{"zxbcdt", &zxbcdt}, {"conv_w", &conv_w}, {"dt_bias", &dt_bias}, {"A_log", &A_log},
                         {"conv_state", &conv_state}, {"ssm_state", &ssm_state}, {"ys", &ys}, {"z", &z}})
    need_dtype(op, name, *t);
  need_rank(op, "zxbcdt", zxbcdt, 2, "[B, W]");
  need_rank(op, "ssm_state", ssm_state, 4, "[B, H, P, N]");
  need_rank(op, "conv_w", conv_w, 2, "[C, K]");
  const int64_t B = zxbcdt.dim(0), H = dt_bias.numel(), P = ssm_state.dim(2), N = ssm_state.dim(3), G = n_groups;
  const int64_t Di = H * P, C = conv_w.dim(0), K = conv_w.dim(1);
  MAMBALM_CHECK(G >= 1 && H % G == 0 && C == Di + 2 * G * N && zxbcdt.dim(1) == Di + C + H && K >= 1, where(op),
                "zxbcdt " + shape_str(zxbcdt.shape()) + ", conv_w " + shape_str(conv_w.shape()) + ", ssm_state " +
                    shape_str(ssm_state.shape()) + " and " + std::to_string(G) + " groups do not describe one Mamba-2 layer");
  need_shape(op, "ssm_state", ssm_state, {B, H, P, N});
  need_shape(op, "conv_state", conv_state, {B, C, K - 1});
  need_shape(op, "A_log", A_log, {H});
  if (conv_b) need_shape(op, "conv_b", *conv_b, {C});
  if (D) need_shape(op, "D", *D, {H});
  need_shape(op, "ys", ys, {B, H, P});
  need_shape(op, "z", z, {B, Di});
  const bool gpu = on_cuda(op, {&zxbcdt, &conv_w, conv_b, &dt_bias, &A_log, D, &conv_state, &ssm_state, &ys, &z});
  MAMBALM_BACKEND(gpu, mamba2_decode_step(zxbcdt, conv_w, conv_b, dt_bias, A_log, D, dt_min, dt_max, n_groups, conv_state,
                                          ssm_state, ys, z));
}

void argmax(const Tensor& x, int64_t limit, Tensor& out) {
  const char* op = "argmax";
  need_dtype(op, "x", x);
  need_rank(op, "x", x, 2, "[M, V]");
  need_dtype(op, "out", out, DType::I32);
  need_shape(op, "out", out, {x.dim(0)});
  MAMBALM_CHECK(limit >= 1 && limit <= x.dim(1), where(op),
                "limit " + std::to_string(limit) + " is outside [1, " + std::to_string(x.dim(1)) + "]");
  const bool gpu = on_cuda(op, {&x, &out});
  MAMBALM_BACKEND(gpu, argmax(x, limit, out));
}

// ---- inference ops -------------------------------------------------------------------------
// Positions and lengths are read by the kernels, not here: on CUDA they live in device memory
// and change between replays of a captured decode step, so only their shapes are checked.

void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta) {
  const char* op = "rope_at";
  need_dtype(op, "x", x);
  need_rank(op, "x", x, 4, "[B, T, H, Dh]");
  need_positions(op, "positions", positions, x.dim(0));
  MAMBALM_CHECK(rotary_dim >= 0 && rotary_dim % 2 == 0 && rotary_dim <= x.dim(3), where(op),
                "rotary_dim " + std::to_string(rotary_dim) + " is not an even number <= head dim of x " +
                    shape_str(x.shape()));
  MAMBALM_CHECK(std::isfinite(theta) && theta > 0.0, where(op),
                "theta is " + std::to_string(theta) + ", expected a positive number", "rope_theta in the config");
  const bool gpu = on_cuda(op, {&x, &positions});
  MAMBALM_BACKEND(gpu, rope_at(x, positions, rotary_dim, theta));
}

void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache) {
  const char* op = "kv_append";
  need_dtype(op, "x", x);
  need_rank(op, "x", x, 4, "[B, T, Hkv, Dh]");
  need_kv_dtype(op, "cache", cache);
  need_rank(op, "cache", cache, 4, "[B, capacity, Hkv, Dh]");
  MAMBALM_CHECK(cache.dim(0) == x.dim(0) && cache.dim(2) == x.dim(2) && cache.dim(3) == x.dim(3) &&
                    cache.dim(1) >= x.dim(1),
                where(op), "cache " + shape_str(cache.shape()) + " cannot hold x " + shape_str(x.shape()));
  need_positions(op, "positions", positions, x.dim(0));
  const bool gpu = on_cuda(op, {&x, &positions, &cache});
  need_disjoint(op, "cache", cache, "x", &x);
  MAMBALM_BACKEND(gpu, kv_append(x, positions, cache));
}

void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                      float scale, Tensor& out) {
  const char* op = "attention_decode";
  need_dtype(op, "q", q);
  need_dtype(op, "out", out);
  need_rank(op, "q", q, 3, "[B, Hq, Dh]");
  need_kv_dtype(op, "k_cache", k_cache);
  need_kv_dtype(op, "v_cache", v_cache);
  need_rank(op, "k_cache", k_cache, 4, "[B, capacity, Hkv, Dh]");
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2), Hkv = k_cache.dim(2);
  MAMBALM_CHECK(k_cache.dim(0) == B && k_cache.dim(3) == Dh && Hkv >= 1 && Hq % Hkv == 0, where(op),
                "k_cache has shape " + shape_str(k_cache.shape()) + " but q has shape " + shape_str(q.shape()),
                "the cache is [B, capacity, Hkv, Dh] with q's batch and head dim and Hq a multiple of Hkv");
  need_shape(op, "v_cache", v_cache, k_cache.shape());
  MAMBALM_CHECK(v_cache.dtype() == k_cache.dtype(), where(op), "k_cache and v_cache differ in dtype");
  need_positions(op, "lengths", lengths, B);
  need_shape(op, "out", out, q.shape());
  const bool gpu = on_cuda(op, {&q, &k_cache, &v_cache, &lengths, &out});
  need_disjoint(op, "out", out, "q", &q);
  MAMBALM_BACKEND(gpu, attention_decode(q, k_cache, v_cache, lengths, scale, out));
}

// ---- data movement -------------------------------------------------------------------------

namespace {
// F32 tensors of one rank whose leading dims agree (the rows); true when on CUDA.
// dst F32, or with bf16_dst_on_cuda also BF16 on CUDA.
bool check_column_pair(const char* op, const Tensor& src, const Tensor& dst, bool bf16_dst_on_cuda = false) {
  need_dtype(op, "src", src);
  if (!(bf16_dst_on_cuda && dst.defined() && dst.dtype() == DType::BF16 && dst.device() == Device::CUDA))
    need_dtype(op, "dst", dst);
  MAMBALM_CHECK(src.rank() >= 1 && dst.rank() == src.rank(), where(op),
                "rank mismatch " + shape_str(src.shape()) + " vs " + shape_str(dst.shape()));
  for (int i = 0; i + 1 < src.rank(); ++i)
    MAMBALM_CHECK(src.dim(i) == dst.dim(i), where(op),
                  "leading dims differ: " + shape_str(src.shape()) + " vs " + shape_str(dst.shape()));
  const bool gpu = on_cuda(op, {&src, &dst});
  need_disjoint(op, "dst", dst, "src", &src);
  return gpu;
}
}  // namespace

void copy_columns(const Tensor& src, int64_t col0, Tensor& dst) {
  const bool gpu = check_column_pair("copy_columns", src, dst);
  MAMBALM_CHECK(col0 >= 0 && col0 + dst.dim(-1) <= src.dim(-1), where("copy_columns"),
                "columns [" + std::to_string(col0) + ", " + std::to_string(col0 + dst.dim(-1)) + ") of " + shape_str(src.shape()));
  MAMBALM_BACKEND(gpu, copy_columns(src, col0, dst));
}

void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts) {
  const char* op = "split_columns";
  MAMBALM_CHECK(parts.size() >= 1 && parts.size() <= 4, where(op), std::to_string(parts.size()) + " parts, expected 1 to 4");
  int64_t cols = 0;
  bool gpu = false;
  for (Tensor* p : parts) {
    gpu = check_column_pair(op, src, *p);
    cols += p->dim(-1);
  }
  MAMBALM_CHECK(cols <= src.dim(-1), where(op), "the parts are " + std::to_string(cols) + " columns wide, the source " +
                                                    std::to_string(src.dim(-1)));
  MAMBALM_BACKEND(gpu, split_columns(src, parts));
}

void write_columns(const Tensor& src, Tensor& dst, int64_t col0) {
  const bool gpu = check_column_pair("write_columns", src, dst, /*bf16_dst_on_cuda=*/true);
  MAMBALM_CHECK(col0 >= 0 && col0 + src.dim(-1) <= dst.dim(-1), where("write_columns"),
                "columns [" + std::to_string(col0) + ", " + std::to_string(col0 + src.dim(-1)) + ") of " + shape_str(dst.shape()));
  MAMBALM_BACKEND(gpu, write_columns(src, dst, col0));
}

void copy_rows(const Tensor& src, int64_t n, Tensor& dst) {
  const char* op = "copy_rows";
  need_defined(op, "src", src);
  need_defined(op, "dst", dst);
  MAMBALM_CHECK(src.dtype() == dst.dtype(), where(op), "src is " + dtype_name(src.dtype()) + ", dst " + dtype_name(dst.dtype()));
  MAMBALM_CHECK(src.rank() >= 1 && dst.rank() >= 1 && n >= 0 && n <= src.dim(0) && n <= dst.dim(0), where(op),
                std::to_string(n) + " rows of " + shape_str(src.shape()) + " into " + shape_str(dst.shape()));
  const int64_t row = src.numel() / (src.dim(0) ? src.dim(0) : 1);
  MAMBALM_CHECK(row == dst.numel() / (dst.dim(0) ? dst.dim(0) : 1), where(op),
                "row sizes differ: " + shape_str(src.shape()) + " vs " + shape_str(dst.shape()));
  const bool gpu = on_cuda(op, {&src, &dst});
  need_disjoint(op, "dst", dst, "src", &src);
  MAMBALM_BACKEND(gpu, copy_rows(src, n, dst));
}

void fill(Tensor& t, float value) {
  need_dtype("fill", "t", t);
  const bool gpu = on_cuda("fill", {&t});
  MAMBALM_BACKEND(gpu, fill(t, value));
  t.mark_written();
}

void convert(const Tensor& x, Tensor& y) {
  const char* op = "convert";
  need_defined(op, "x", x);
  need_defined(op, "y", y);
  auto convertible = [](DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::Q8; };
  const bool q8 = x.dtype() == DType::Q8 || y.dtype() == DType::Q8;
  const bool ok = convertible(x.dtype()) && convertible(y.dtype()) && (!q8 || x.dtype() == DType::F32 || y.dtype() == DType::F32);
  MAMBALM_CHECK(ok, where(op), "converts between F32 and BF16 (or F32 and Q8 on the CPU), got " + dtype_name(x.dtype()) + " -> " + dtype_name(y.dtype()));
  MAMBALM_CHECK(!q8 || (x.device() == Device::CPU && y.device() == Device::CPU && x.rank() >= 1), where(op),
                "Q8 tensors live on the CPU and have a last dimension", "convert on the CPU before moving a model");
  need_shape(op, "y", y, x.shape());
  const bool gpu = on_cuda(op, {&x, &y});
  if (x.raw() != y.raw()) need_disjoint(op, "y", y, "x", &x);
  MAMBALM_BACKEND(gpu, convert(x, y));
  y.mark_written();  // y may be a parameter converted in place (Tensor::version), as fill marks
}

double measure_matmul_tflops(Device device) {
  if (device == Device::CUDA) {
    on_cuda("measure_matmul_tflops", {});
    MAMBALM_CHECK(cuda_built(), "measure_matmul_tflops", "this binary was built without the CUDA backend");
#ifdef MAMBALM_HAVE_CUDA
    return cuda::measure_matmul_tflops();
#endif
  }
  constexpr int64_t n = 1024;
  Tensor x = Tensor::empty({n, n}), w = Tensor::empty({n, n}), y = Tensor::empty({n, n});
  for (int64_t i = 0; i < n * n; ++i) x.f32()[i] = w.f32()[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  linear(x, w, nullptr, y);  // warm-up (thread pool, page faults)
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    linear(x, w, nullptr, y);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * double(n) * double(n) * double(n) / best / 1e12;
}

void set_gemm_autotune(bool on) {
#ifdef MAMBALM_HAVE_CUDA
  cuda::set_gemm_autotune(on);
#else
  (void)on;
#endif
}

GemmChoices gemm_choices() {
#ifdef MAMBALM_HAVE_CUDA
  return cuda::gemm_choices();
#else
  return {};
#endif
}

std::string pin_gemm_choices(const GemmChoices& choices) {
#ifdef MAMBALM_HAVE_CUDA
  return cuda::pin_gemm_choices(choices);
#else
  (void)choices;
  return "";
#endif
}

// ---- loss --------------------------------------------------------------------------------

void cross_entropy(const Tensor& logits, const Tensor& targets, float grad_scale, Tensor& loss, Tensor* dlogits) {
  const char* op = "cross_entropy";
  need_dtype(op, "logits", logits);
  need_rank(op, "logits", logits, 2, "[N, V]");
  MAMBALM_CHECK(logits.dim(1) >= 1, where(op), "logits has no classes: " + shape_str(logits.shape()));
  need(op, "targets", &targets, {logits.dim(0)}, DType::I32);
  need(op, "loss", &loss, {logits.dim(0)});
  // dlogits F32, or BF16 on CUDA (what mixed precision's head GEMM reads: one rounding, no pass)
  const bool dlogits_bf16 = dlogits && dlogits->dtype() == DType::BF16;
  need(op, "dlogits", dlogits, logits.shape(), dlogits_bf16 ? DType::BF16 : DType::F32);
  const bool gpu = on_cuda(op, {&logits, &targets, &loss, dlogits});
  MAMBALM_CHECK(!dlogits_bf16 || gpu, where(op), "a BF16 dlogits on the CPU", "pass an F32 dlogits");
  // dlogits may be exactly logits (same buffer, F32), but not a partial overlap.
  if (dlogits && (dlogits->raw() != logits.raw() || dlogits_bf16))
    need_disjoint(op, {{"dlogits", dlogits}}, {{"logits", &logits}});
  need_disjoint(op, {{"dlogits", dlogits}, {"loss", &loss}}, {{"targets", &targets}});
  need_disjoint(op, {{"loss", &loss}}, {{"logits", &logits}});
  MAMBALM_BACKEND(gpu, cross_entropy(logits, targets, grad_scale, loss, dlogits));
}

CrossEntropyResult cross_entropy_mean(const Tensor& logits, const Tensor& targets, Tensor* dlogits, float grad_scale) {
  need_dtype("cross_entropy", "targets", targets, DType::I32);
  const Tensor host_targets = to_host(targets);
  CrossEntropyResult r;
  for (int64_t i = 0; i < host_targets.numel(); ++i) r.n_valid += host_targets.data<int32_t>()[i] != -1;
  const float scale = r.n_valid > 0 ? grad_scale / static_cast<float>(r.n_valid) : 0.0f;
  Tensor loss = empty_on(logits.device(), {logits.rank() == 2 ? logits.dim(0) : 0});
  Tensor targets_there = targets.device() == logits.device() ? targets : to_device(targets, logits.device());
  cross_entropy(logits, targets_there, scale, loss, dlogits);
  const Tensor host_loss = to_host(loss);
  for (int64_t i = 0; i < host_loss.numel(); ++i) r.sum_loss += host_loss.f32()[i];
  r.mean_loss = r.n_valid > 0 ? r.sum_loss / static_cast<double>(r.n_valid) : 0.0;
  return r;
}

// ---- optimizer ---------------------------------------------------------------------------

namespace {
// One parameter's AdamW tensors: dtypes, shapes, m and v apart from the master and the gradient.
void adamw_slot_inputs(const char* op, const Tensor& master, const Tensor* copy, const Tensor& grad, const Tensor& m,
                       const Tensor& v) {
  need_dtype(op, "master", master);
  for (auto [name, t] : {std::pair{"grad", &grad}, {"m", &m}, {"v", &v}}) need(op, name, t, master.shape());
  if (copy && copy->raw() != master.raw()) {
    need_storage_dtype(op, "copy", *copy);
    need_shape(op, "copy", *copy, master.shape());
  }
  need_disjoint(op, {{"m", &m}, {"v", &v}}, {{"master", &master}, {"grad", &grad}});
}
}  // namespace

void adamw_update(Tensor& master, Tensor* copy, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  const char* op = "adamw_update";
  adamw_slot_inputs(op, master, copy, grad, m, v);
  const bool gpu = on_cuda(op, {&master, copy, &grad, &m, &v});
  MAMBALM_BACKEND(gpu, adamw_update(master, copy, grad, m, v, s));
  master.mark_written();  // parameters changed in place (Tensor::version)
  if (copy) copy->mark_written();
}

void squared_norm(const Tensor& x, Tensor& out) {
  need_dtype("squared_norm", "x", x);
  need("squared_norm", "out", &out, {1}, DType::F64);
  const bool gpu = on_cuda("squared_norm", {&x, &out});
  MAMBALM_BACKEND(gpu, squared_norm(x, out));
}

void fill_each(const std::vector<Tensor*>& ts, float value) {
  if (ts.empty()) return;
  std::vector<const Tensor*> all;
  for (Tensor* t : ts) {
    need_dtype("fill_each", "t", *t);
    all.push_back(t);
  }
  const bool gpu = on_cuda("fill_each", all);
  MAMBALM_BACKEND(gpu, fill_each(ts, value));
  for (Tensor* t : ts) t->mark_written();
}

void squared_norm_each(const std::vector<const Tensor*>& xs, Tensor& out) {
  need("squared_norm_each", "out", &out, {static_cast<int64_t>(xs.size())}, DType::F64);
  if (xs.empty()) return;
  std::vector<const Tensor*> all{&out};
  for (const Tensor* x : xs) {
    need_dtype("squared_norm_each", "x", *x);
    all.push_back(x);
  }
  const bool gpu = on_cuda("squared_norm_each", all);
  MAMBALM_BACKEND(gpu, squared_norm_each(xs, out));
}

void adamw_update_each(const std::vector<AdamWSlot>& slots, const AdamWStep& s) {
  const char* op = "adamw_update_each";
  if (slots.empty()) return;
  std::vector<const Tensor*> all;
  for (const AdamWSlot& slot : slots) {
    MAMBALM_CHECK(slot.master && slot.grad && slot.m && slot.v, std::string("op ") + op, "a slot lacks a tensor");
    adamw_slot_inputs(op, *slot.master, slot.copy, *slot.grad, *slot.m, *slot.v);
    for (const Tensor* t : {static_cast<const Tensor*>(slot.master), static_cast<const Tensor*>(slot.copy), slot.grad,
                            static_cast<const Tensor*>(slot.m), static_cast<const Tensor*>(slot.v)})
      if (t) all.push_back(t);
  }
  const bool gpu = on_cuda(op, all);
  MAMBALM_BACKEND(gpu, adamw_update_each(slots, s));
  for (const AdamWSlot& slot : slots) {  // parameters changed in place (Tensor::version)
    slot.master->mark_written();
    if (slot.copy) slot.copy->mark_written();
  }
}

void nonfinite_flag(const Tensor& x, Tensor& out) {
  need_dtype("nonfinite_flag", "x", x);
  need("nonfinite_flag", "out", &out, {1}, DType::I32);
  const bool gpu = on_cuda("nonfinite_flag", {&x, &out});
  MAMBALM_BACKEND(gpu, nonfinite_flag(x, out));
}

}  // namespace mambalm::ops
