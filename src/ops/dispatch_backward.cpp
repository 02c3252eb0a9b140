// Backend-neutral entry points of the backward ops (ops/ops_backward.h): the inputs are checked by
// the same functions as the forward's (ops/op_inputs.h), then each backward checks its gradient
// tensors (shapes, devices, aliasing) and calls the backend of the tensors' device.
#include <initializer_list>
#include <string>
#include <utility>

#include "core/error.h"
#include "ops/backend.h"
#include "ops/checks.h"
#include "ops/deferred_zero.h"
#include "ops/op_inputs.h"
#include "ops/ops_backward.h"

namespace mambalm::ops {

using namespace checks;

// ---- dense -------------------------------------------------------------------------------

namespace {
// A dw whose zero fill was deferred is written by the GEMM (beta 0) rather than filled and added
// onto, when the GEMM writes all of it (some rows of x: an empty product leaves dw to the fill).
bool take_fresh_dw(const Tensor* dw, const Tensor& x) {
  return dw && dw->numel() > 0 && x.numel() > 0 && take_deferred_zero(*dw);
}
}  // namespace

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw, Tensor* db,
                     bool accumulate_dx, bool assign_dw) {
  const char* op = "linear_backward";
  linear_inputs(op, x, w, nullptr);
  Shape ys = x.shape();
  ys.back() = w.dim(0);
  need_matrix_activation_dtype(op, "dy", dy, w);
  need_shape(op, "dy", dy, ys);
  if (dx) {
    need_matrix_activation_dtype(op, "dx", *dx, w);
    need_shape(op, "dx", *dx, x.shape());
    MAMBALM_CHECK(!(accumulate_dx && dx->dtype() == DType::BF16), where(op),
                  "accumulate_dx with a BF16 dx", "accumulate into an F32 dx (a bf16 sum would round every term)");
  }
  need(op, "dw", dw, w.shape());
  need(op, "db", db, {w.dim(0)});
  need_disjoint(op, {{"dx", dx}, {"dw", dw}, {"db", db}}, {{"dy", &dy}, {"x", &x}, {"w", &w}});
  assign_dw = take_fresh_dw(dw, x) || assign_dw;  // before on_cuda, which would fill it
  const bool gpu = on_cuda(op, {&dy, &x, &w, dx, dw, db});
  MAMBALM_BACKEND(gpu, linear_backward(dy, x, w, dx, dw, db, accumulate_dx, assign_dw));
}

void linear_backward_parts(std::initializer_list<const Tensor*> dy_parts, const Tensor& x, const Tensor& w, Tensor* dx,
                           Tensor* dw, Tensor* db, bool accumulate_dx, bool assign_dw) {
  const char* op = "linear_backward_parts";
  linear_inputs(op, x, w, nullptr);  // x F32, or BF16 on CUDA with BF16 weights
  column_parts(op, "dy", dy_parts, Shape(x.shape().begin(), x.shape().end() - 1), w.dim(0),
               w.dtype() == DType::BF16);  // as linear_parts' outputs
  need(op, "dx", dx, x.shape());
  need(op, "dw", dw, w.shape());
  need(op, "db", db, {w.dim(0)});
  for (const Tensor* p : dy_parts) need_disjoint(op, {{"dx", dx}, {"dw", dw}, {"db", db}}, {{"dy", p}});
  need_disjoint(op, {{"dx", dx}, {"dw", dw}, {"db", db}}, {{"x", &x}, {"w", &w}});
  assign_dw = take_fresh_dw(dw, x) || assign_dw;  // before on_cuda, which would fill it
  bool gpu = on_cuda(op, {&x, &w, dx, dw, db});
  for (const Tensor* p : dy_parts) gpu = on_cuda(op, {&x, p});
  MAMBALM_BACKEND(gpu, linear_backward_parts(dy_parts, x, w, dx, dw, db, accumulate_dx, assign_dw));
}

void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const char* op = "embedding_backward";
  embedding_inputs(op, ids, dtable);
  need_dtype(op, "dtable", dtable);
  need(op, "dy", &dy, {ids.dim(0), ids.dim(1), dtable.dim(1)});
  const bool gpu = on_cuda(op, {&ids, &dy, &dtable});
  need_disjoint(op, {{"dtable", &dtable}}, {{"dy", &dy}, {"ids", &ids}});
  MAMBALM_BACKEND(gpu, embedding_backward(ids, dy, dtable));
}

// ---- elementwise -------------------------------------------------------------------------

namespace {
// x, dy and dx of one shape and dtype (F32, or BF16 on CUDA); dx may alias dy.
void check_pointwise(const char* op, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  activation_tensors(op, {{"x", &x}, {"dy", &dy}, {"dx", &dx}});
  need_disjoint(op, {{"dx", &dx}}, {{"x", &x}});
}
}  // namespace

void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  check_pointwise("silu_backward", x, dy, dx);
  const bool gpu = on_cuda("silu_backward", {&x, &dy, &dx});
  MAMBALM_BACKEND(gpu, silu_backward(x, dy, dx));
}

void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  check_pointwise("relu_squared_backward", x, dy, dx);
  const bool gpu = on_cuda("relu_squared_backward", {&x, &dy, &dx});
  MAMBALM_BACKEND(gpu, relu_squared_backward(x, dy, dx));
}

void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  check_pointwise("gelu_backward", x, dy, dx);
  const bool gpu = on_cuda("gelu_backward", {&x, &dy, &dx});
  MAMBALM_BACKEND(gpu, gelu_backward(x, dy, dx));
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate, Tensor& dup) {
  const char* op = "swiglu_backward";
  activation_tensors(op, {{"gate", &gate}, {"up", &up}, {"dy", &dy}, {"dgate", &dgate}, {"dup", &dup}});
  const bool gpu = on_cuda(op, {&gate, &up, &dy, &dgate, &dup});
  need_disjoint(op, {{"dgate", &dgate}, {"dup", &dup}}, {{"gate", &gate}, {"up", &up}});
  MAMBALM_BACKEND(gpu, swiglu_backward(gate, up, dy, dgate, dup));
}

void neg_exp_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const char* op = "neg_exp_backward";
  same_shape(op, "y", y, "dy", dy);
  same_shape(op, "y", y, "dx", dx);
  const bool gpu = on_cuda(op, {&y, &dy, &dx});
  need_disjoint(op, {{"dx", &dx}}, {{"y", &y}, {"dy", &dy}});
  MAMBALM_BACKEND(gpu, neg_exp_backward(y, dy, dx));
}

void softplus_dt_backward(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max, const Tensor& dy, Tensor& ddt,
                          Tensor* ddt_bias) {
  const char* op = "softplus_dt_backward";
  same_shape(op, "dt", dt, "dy", dy);
  same_shape(op, "dt", dt, "ddt", ddt);
  MAMBALM_CHECK(dt.rank() >= 1, where(op), "dt has shape " + shape_str(dt.shape()) + ", expected [..., H]");
  need(op, "dt_bias", &dt_bias, {dt.dim(-1)});
  need(op, "ddt_bias", ddt_bias, {dt.dim(-1)});
  const bool gpu = on_cuda(op, {&dt, &dt_bias, &dy, &ddt, ddt_bias});
  need_disjoint(op, {{"ddt", &ddt}, {"ddt_bias", ddt_bias}}, {{"dt", &dt}, {"dt_bias", &dt_bias}});
  MAMBALM_BACKEND(gpu, softplus_dt_backward(dt, dt_bias, dt_min, dt_max, dy, ddt, ddt_bias));
}

// ---- norms -------------------------------------------------------------------------------

namespace {
void check_norm_grads(const char* op, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor* dw) {
  same_shape(op, "x", x, "dy", dy);
  same_shape(op, "x", x, "dx", dx);
  need(op, "dw", dw, {x.dim(-1)});
  need_disjoint(op, {{"dx", &dx}, {"dw", dw}}, {{"x", &x}, {"w", &w}, {"dy", &dy}});
}
}  // namespace

void rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx, Tensor* dw,
                       bool accumulate_dx) {
  const char* op = "rms_norm_backward";
  norm_inputs(op, x, w, eps);
  check_norm_grads(op, x, w, dy, dx, dw);
  const bool gpu = on_cuda(op, {&x, &w, &dy, &dx, dw});
  MAMBALM_BACKEND(gpu, rms_norm_backward(x, w, eps, dy, dx, dw, accumulate_dx));
}

void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered, const Tensor& dy, Tensor& dx,
                         Tensor* dw, Tensor* db, bool accumulate_dx) {
  const char* op = "layer_norm_backward";
  norm_inputs(op, x, w, eps);
  check_norm_grads(op, x, w, dy, dx, dw);
  need(op, "db", db, {x.dim(-1)});
  const bool gpu = on_cuda(op, {&x, &w, &dy, &dx, dw, db});
  need_disjoint(op, {{"db", db}}, {{"x", &x}, {"dy", &dy}, {"dx", &dx}});
  MAMBALM_BACKEND(gpu, layer_norm_backward(x, w, eps, zero_centered, dy, dx, dw, db, accumulate_dx));
}

void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size, float eps,
                             const Tensor& dy, Tensor& dx, Tensor& dz, Tensor* dw, int64_t dz_col0) {
  const char* op = "gated_rms_norm_backward";
  norm_inputs(op, x, w, eps, /*x_bf16_on_cuda=*/true);
  // x, z, dy and dz all F32, or all BF16 on CUDA (mixed precision: the SSD's output, in_proj's z,
  // out_proj's backward's dx, in_proj's dy block); dx F32 (the SSD backward's dy)
  activation_tensors(op, {{"x", &x}, {"z", &z}, {"dy", &dy}});
  need_dtype(op, "dz", dz, x.dtype());
  need_columns(op, "dz", dz, x.shape(), dz_col0);
  need(op, "dx", &dx, x.shape());
  need(op, "dw", dw, {x.dim(-1)});
  MAMBALM_CHECK(group_size > 0 && x.dim(-1) % group_size == 0, where(op),
                "group_size " + std::to_string(group_size) + " does not divide the last dim of x " + shape_str(x.shape()),
                "group_size is d_inner / n_groups");
  const bool gpu = on_cuda(op, {&x, &z, &w, &dy, &dx, &dz, dw});
  need_disjoint(op, {{"dx", &dx}, {"dz", &dz}, {"dw", dw}}, {{"x", &x}, {"z", &z}, {"w", &w}, {"dy", &dy}});
  MAMBALM_BACKEND(gpu, gated_rms_norm_backward(x, z, w, group_size, eps, dy, dx, dz, dw, dz_col0));
}

// ---- conv --------------------------------------------------------------------------------

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                            const Tensor* initial_state, bool apply_silu, const Tensor& dy, Tensor& dx, Tensor* dw,
                            Tensor* dbias, Tensor* dinitial_state) {
  const char* op = "causal_conv1d_backward";
  conv_inputs(op, x, w, bias, seq_idx, initial_state);
  need(op, "dy", &dy, x.shape());
  need(op, "dx", &dx, x.shape());
  need(op, "dw", dw, w.shape());
  need(op, "dbias", dbias, {x.dim(2)});
  need(op, "dinitial_state", dinitial_state, {x.dim(0), x.dim(2), w.dim(1) - 1});
  const bool gpu = on_cuda(op, {&x, &w, bias, seq_idx, initial_state, &dy, &dx, dw, dbias, dinitial_state});
  need_disjoint(op, {{"dx", &dx}, {"dw", dw}, {"dbias", dbias}, {"dinitial_state", dinitial_state}},
                {{"x", &x}, {"w", &w}, {"bias", bias}, {"dy", &dy}, {"initial_state", initial_state}});
  MAMBALM_BACKEND(gpu, causal_conv1d_backward(x, w, bias, seq_idx, initial_state, apply_silu, dy, dx, dw, dbias, dinitial_state));
}

void causal_conv1d_backward_parts(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                                  bool apply_silu, std::initializer_list<const Tensor*> dy_parts, Tensor& dx, Tensor* dw,
                                  Tensor* dbias, int64_t dx_col0) {
  const char* op = "causal_conv1d_backward_parts";
  conv_inputs(op, x, w, bias, seq_idx, nullptr, /*x_bf16_on_cuda=*/true);  // dy parts F32, dx in x's dtype
  column_parts(op, "dy", dy_parts, {x.dim(0), x.dim(1)}, x.dim(2));
  need_dtype(op, "dx", dx, x.dtype());
  need_columns(op, "dx", dx, x.shape(), dx_col0);
  need(op, "dw", dw, w.shape());
  need(op, "dbias", dbias, {x.dim(2)});
  bool gpu = on_cuda(op, {&x, &w, bias, seq_idx, &dx, dw, dbias});
  for (const Tensor* p : dy_parts) {
    gpu = on_cuda(op, {&x, p});
    need_disjoint(op, {{"dx", &dx}, {"dw", dw}, {"dbias", dbias}}, {{"dy", p}});
  }
  need_disjoint(op, {{"dx", &dx}, {"dw", dw}, {"dbias", dbias}}, {{"x", &x}, {"w", &w}, {"bias", bias}});
  MAMBALM_BACKEND(gpu, causal_conv1d_backward_parts(x, w, bias, seq_idx, apply_silu, dy_parts, dx, dw, dbias, dx_col0));
}

// ---- SSD ---------------------------------------------------------------------------------

void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                          const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt, Tensor* dA, Tensor& dBm,
                          Tensor& dCm, Tensor* dD, Tensor* dinitial_state, Fp32Products products) {
  const char* op = "ssd_chunked_backward";
  ssd_inputs(op, x, dt, A, Bm, Cm, D, seq_idx, /*bf16_on_cuda=*/true);
  chunk_size_positive(op, chunk_size);
  const Shape ss = ssd_state_shape(x, Bm);
  need(op, "initial_state", initial_state, ss);
  need(op, "dfinal_state", dfinal_state, ss);
  need(op, "dy", &dy, x.shape());
  need(op, "dx", &dx, x.shape());
  need(op, "ddt", &ddt, dt.shape());
  need(op, "dA", dA, A.shape());
  need(op, "dBm", &dBm, Bm.shape());
  need(op, "dCm", &dCm, Bm.shape());
  need(op, "dD", dD, {x.dim(2)});
  need(op, "dinitial_state", dinitial_state, ss);
  const bool gpu = on_cuda(op, {&x, &dt, &A, &Bm, &Cm, D, seq_idx, initial_state, dfinal_state, &dy, &dx, &ddt, dA, &dBm, &dCm, dD,
                dinitial_state});
  need_disjoint(op,
                {{"dx", &dx}, {"ddt", &ddt}, {"dA", dA}, {"dBm", &dBm}, {"dCm", &dCm}, {"dD", dD},
                 {"dinitial_state", dinitial_state}},
                {{"x", &x}, {"dt", &dt}, {"A", &A}, {"Bm", &Bm}, {"Cm", &Cm}, {"D", D}, {"initial_state", initial_state},
                 {"dfinal_state", dfinal_state}, {"dy", &dy}});
  MAMBALM_BACKEND(gpu, ssd_chunked_backward(x, dt, A, Bm, Cm, D, seq_idx, chunk_size, initial_state, dfinal_state, dy, dx, ddt, dA, dBm, dCm,
                            dD, dinitial_state, products));
}

// ---- selective scan ----------------------------------------------------------------------

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                             const Tensor* D, const Tensor* z, const Tensor* seq_idx, const Tensor* initial_state,
                             const Tensor* dfinal_state, int64_t chunk_size, const Tensor& dy, Tensor& du, Tensor& ddelta,
                             Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD, Tensor* dz, Tensor* dinitial_state,
                             const Tensor* chunk_states, Tensor* ddelta_bias) {
  const char* op = "selective_scan_backward";
  scan_inputs(op, u, delta, A, Bm, Cm, D, z, seq_idx);
  chunk_size_positive(op, chunk_size);
  MAMBALM_CHECK(!z || dz, where(op), "z is given but dz is null", "pass a [B, T, Di] dz tensor");
  const Shape ss{u.dim(0), u.dim(2), A.dim(1)};
  need(op, "initial_state", initial_state, ss);
  need(op, "dfinal_state", dfinal_state, ss);
  need(op, "dy", &dy, u.shape());
  need(op, "du", &du, u.shape());
  need(op, "ddelta", &ddelta, u.shape());
  need(op, "dA", dA, A.shape());
  need(op, "dBm", &dBm, Bm.shape());
  need(op, "dCm", &dCm, Cm.shape());
  need(op, "dD", dD, {u.dim(2)});
  if (!z) dz = nullptr;
  need(op, "dz", dz, u.shape());
  need(op, "dinitial_state", dinitial_state, ss);
  need(op, "chunk_states", chunk_states, scan_chunk_states_shape(u, A));
  need(op, "ddelta_bias", ddelta_bias, {u.dim(2)});
  const bool gpu = on_cuda(op, {&u, &delta, &A, &Bm, &Cm, D, z, seq_idx, initial_state, dfinal_state, &dy, &du, &ddelta, dA, &dBm, &dCm, dD,
                dz, dinitial_state, chunk_states, ddelta_bias});
  need_disjoint(op,
                {{"du", &du}, {"ddelta", &ddelta}, {"dA", dA}, {"dBm", &dBm}, {"dCm", &dCm}, {"dD", dD}, {"dz", dz},
                 {"dinitial_state", dinitial_state}, {"ddelta_bias", ddelta_bias}},
                {{"u", &u}, {"delta", &delta}, {"A", &A}, {"Bm", &Bm}, {"Cm", &Cm}, {"D", D}, {"z", z},
                 {"initial_state", initial_state}, {"dfinal_state", dfinal_state}, {"dy", &dy},
                 {"chunk_states", chunk_states}});
  MAMBALM_BACKEND(gpu, selective_scan_backward(u, delta, A, Bm, Cm, D, z, seq_idx, initial_state, dfinal_state, chunk_size, dy, du, ddelta,
                               dA, dBm, dCm, dD, dz, dinitial_state, chunk_states, ddelta_bias));
}

// ---- attention ---------------------------------------------------------------------------

void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta) {
  rope_inputs("rope_backward", dx, pos0, rotary_dim, theta);
  const bool gpu = on_cuda("rope_backward", {&dx});
  MAMBALM_BACKEND(gpu, rope_backward(dx, pos0, rotary_dim, theta));
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx, float scale,
                        const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv, const Tensor* out, const Tensor* lse2) {
  const char* op = "attention_backward";
  attention_inputs(op, q, k, v, seq_idx, /*cpu_reads_bf16=*/false);
  // out, dout and the gradients take q's dtype (F32, or BF16 in mixed precision)
  need(op, "out", out, q.shape(), q.dtype());
  need(op, "lse2", lse2, {q.dim(0), q.dim(2), q.dim(1)});
  need(op, "dout", &dout, q.shape(), q.dtype());
  need(op, "dq", &dq, q.shape(), q.dtype());
  need(op, "dk", &dk, k.shape(), q.dtype());
  need(op, "dv", &dv, k.shape(), q.dtype());
  const bool gpu = on_cuda(op, {&q, &k, &v, seq_idx, &dout, &dq, &dk, &dv, out, lse2});
  need_disjoint(op, {{"dq", &dq}, {"dk", &dk}, {"dv", &dv}},
                {{"q", &q}, {"k", &k}, {"v", &v}, {"dout", &dout}, {"out", out}, {"lse2", lse2}});
  MAMBALM_BACKEND(gpu, attention_backward(q, k, v, seq_idx, scale, dout, dq, dk, dv, out, lse2));
}

}  // namespace mambalm::ops
