// Backend-neutral entry points of the backward ops (ops/ops_backward.h): dtype, shape, device and
// aliasing checks with messages that name the op and the tensor, then the backend.
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "core/error.h"
#include "ops/checks.h"
#include "ops/backend.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm::ops {

using namespace checks;

namespace {

void need_seq_idx(const char* op, const Tensor* seq_idx, int64_t B, int64_t T) {
  need(op, "seq_idx", seq_idx, {B, T}, DType::I32);
}
void same_shape(const char* op, const char* an, const Tensor& a, const char* bn, const Tensor& b) {
  need_dtype(op, an, a);
  need_dtype(op, bn, b);
  MAMBALM_CHECK(a.shape() == b.shape(), where(op),
                std::string(bn) + " has shape " + shape_str(b.shape()) + " but " + an +
                    " has shape " + shape_str(a.shape()),
                "elementwise ops need equal shapes (no broadcasting)");
}

}  // namespace

// ---- dense -------------------------------------------------------------------------------

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                     Tensor* db) {
  const char* op = "linear_backward";
  need_dtype(op, "dy", dy);
  need_dtype(op, "x", x);
  need_dtype(op, "w", w);
  need_rank(op, "w", w, 2, "[N, K]");
  MAMBALM_CHECK(x.rank() >= 1 && x.dim(-1) == w.dim(1), where(op),
                "x has shape " + shape_str(x.shape()) + " but w has shape " + shape_str(w.shape()));
  Shape ys = x.shape();
  ys.back() = w.dim(0);
  need_shape(op, "dy", dy, ys);
  need(op, "dx", dx, x.shape());
  need(op, "dw", dw, w.shape());
  need(op, "db", db, {w.dim(0)});
  need_cpu(op, {&dy, &x, &w, dx, dw, db});
  need_disjoint(op, {{"dx", dx}, {"dw", dw}, {"db", db}}, {{"dy", &dy}, {"x", &x}, {"w", &w}});
  cpu::linear_backward(dy, x, w, dx, dw, db);
}

void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const char* op = "embedding_backward";
  need_dtype(op, "ids", ids, DType::I32);
  need_dtype(op, "dy", dy);
  need_dtype(op, "dtable", dtable);
  need_rank(op, "ids", ids, 2, "[B, T]");
  need_rank(op, "dtable", dtable, 2, "[V, D]");
  need_shape(op, "dy", dy, {ids.dim(0), ids.dim(1), dtable.dim(1)});
  need_cpu(op, {&ids, &dy, &dtable});
  need_disjoint(op, {{"dtable", &dtable}}, {{"dy", &dy}, {"ids", &ids}});
  cpu::embedding_backward(ids, dy, dtable);
}

// ---- elementwise -------------------------------------------------------------------------

void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  same_shape("silu_backward", "x", x, "dy", dy);
  same_shape("silu_backward", "x", x, "dx", dx);
  need_cpu("silu_backward", {&x, &dy, &dx});
  cpu::silu_backward(x, dy, dx);
}
void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  same_shape("relu_squared_backward", "x", x, "dy", dy);
  same_shape("relu_squared_backward", "x", x, "dx", dx);
  need_cpu("relu_squared_backward", {&x, &dy, &dx});
  cpu::relu_squared_backward(x, dy, dx);
}
void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  same_shape("gelu_backward", "x", x, "dy", dy);
  same_shape("gelu_backward", "x", x, "dx", dx);
  need_cpu("gelu_backward", {&x, &dy, &dx});
  cpu::gelu_backward(x, dy, dx);
}
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate,
                     Tensor& dup) {
  const char* op = "swiglu_backward";
  same_shape(op, "gate", gate, "up", up);
  same_shape(op, "gate", gate, "dy", dy);
  same_shape(op, "gate", gate, "dgate", dgate);
  same_shape(op, "gate", gate, "dup", dup);
  need_cpu(op, {&gate, &up, &dy, &dgate, &dup});
  need_disjoint(op, {{"dgate", &dgate}, {"dup", &dup}}, {{"gate", &gate}, {"up", &up}});
  cpu::swiglu_backward(gate, up, dy, dgate, dup);
}

void neg_exp_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const char* op = "neg_exp_backward";
  same_shape(op, "y", y, "dy", dy);
  same_shape(op, "y", y, "dx", dx);
  need_cpu(op, {&y, &dy, &dx});
  need_disjoint(op, {{"dx", &dx}}, {{"y", &y}, {"dy", &dy}});
  cpu::neg_exp_backward(y, dy, dx);
}

void softplus_dt_backward(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                          const Tensor& dy, Tensor& ddt, Tensor* ddt_bias) {
  const char* op = "softplus_dt_backward";
  same_shape(op, "dt", dt, "dy", dy);
  same_shape(op, "dt", dt, "ddt", ddt);
  MAMBALM_CHECK(dt.rank() >= 1, where(op), "dt has shape " + shape_str(dt.shape()) + ", expected [..., H]");
  need(op, "dt_bias", &dt_bias, {dt.dim(-1)});
  need(op, "ddt_bias", ddt_bias, {dt.dim(-1)});
  need_cpu(op, {&dt, &dt_bias, &dy, &ddt, ddt_bias});
  need_disjoint(op, {{"ddt", &ddt}, {"ddt_bias", ddt_bias}}, {{"dt", &dt}, {"dt_bias", &dt_bias}});
  cpu::softplus_dt_backward(dt, dt_bias, dt_min, dt_max, dy, ddt, ddt_bias);
}

// ---- norms -------------------------------------------------------------------------------

namespace {
void check_norm(const char* op, const Tensor& x, const Tensor& w, float eps, const Tensor& dy,
                Tensor& dx, Tensor* dw) {
  same_shape(op, "x", x, "dy", dy);
  same_shape(op, "x", x, "dx", dx);
  MAMBALM_CHECK(x.rank() >= 1, where(op), "x has shape " + shape_str(x.shape()) + ", expected [..., D]");
  need(op, "w", &w, {x.dim(-1)});
  need(op, "dw", dw, {x.dim(-1)});
  MAMBALM_CHECK(std::isfinite(eps) && eps >= 0.0f, where(op),
                "eps is " + std::to_string(eps) + ", expected a finite value >= 0");
  need_disjoint(op, {{"dx", &dx}, {"dw", dw}}, {{"x", &x}, {"w", &w}, {"dy", &dy}});
}
}  // namespace

void rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx,
                       Tensor* dw) {
  check_norm("rms_norm_backward", x, w, eps, dy, dx, dw);
  need_cpu("rms_norm_backward", {&x, &w, &dy, &dx, dw});
  cpu::rms_norm_backward(x, w, eps, dy, dx, dw);
}

void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered,
                         const Tensor& dy, Tensor& dx, Tensor* dw, Tensor* db) {
  const char* op = "layer_norm_backward";
  check_norm(op, x, w, eps, dy, dx, dw);
  need(op, "db", db, {x.dim(-1)});
  need_cpu(op, {&x, &w, &dy, &dx, dw, db});
  need_disjoint(op, {{"db", db}}, {{"x", &x}, {"dy", &dy}, {"dx", &dx}});
  cpu::layer_norm_backward(x, w, eps, zero_centered, dy, dx, dw, db);
}

void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w,
                             int64_t group_size, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dz, Tensor* dw) {
  const char* op = "gated_rms_norm_backward";
  check_norm(op, x, w, eps, dy, dx, dw);
  same_shape(op, "x", x, "z", z);
  same_shape(op, "x", x, "dz", dz);
  MAMBALM_CHECK(group_size > 0 && x.dim(-1) % group_size == 0, where(op),
                "group_size " + std::to_string(group_size) +
                    " does not divide the last dim of x " + shape_str(x.shape()),
                "group_size is d_inner / n_groups");
  need_cpu(op, {&x, &z, &w, &dy, &dx, &dz, dw});
  need_disjoint(op, {{"dx", &dx}, {"dz", &dz}}, {{"z", &z}});
  cpu::gated_rms_norm_backward(x, z, w, group_size, eps, dy, dx, dz, dw);
}

// ---- conv --------------------------------------------------------------------------------

namespace {
void check_conv(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias,
                const Tensor* seq_idx, const Tensor* state) {
  need_dtype(op, "x", x);
  need_dtype(op, "w", w);
  need_rank(op, "x", x, 3, "[B, T, C]");
  need_rank(op, "w", w, 2, "[C, K]");
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  MAMBALM_CHECK(w.dim(0) == C && K >= 1, where(op),
                "w has shape " + shape_str(w.shape()) + " but x has shape " + shape_str(x.shape()),
                "w is [C, K] with K >= 1 and C equal to x's channel count");
  need(op, "bias", bias, {C});
  need(op, "state", state, {B, C, K - 1});
  need_seq_idx(op, seq_idx, B, T);
}
}  // namespace

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias,
                            const Tensor* seq_idx, const Tensor* initial_state, bool apply_silu,
                            const Tensor& dy, Tensor& dx, Tensor* dw, Tensor* dbias,
                            Tensor* dinitial_state) {
  const char* op = "causal_conv1d_backward";
  check_conv(op, x, w, bias, seq_idx, initial_state);
  need(op, "dy", &dy, x.shape());
  need(op, "dx", &dx, x.shape());
  need(op, "dw", dw, w.shape());
  need(op, "dbias", dbias, {x.dim(2)});
  need(op, "dinitial_state", dinitial_state, {x.dim(0), x.dim(2), w.dim(1) - 1});
  need_cpu(op, {&x, &w, bias, seq_idx, initial_state, &dy, &dx, dw, dbias, dinitial_state});
  need_disjoint(op, {{"dx", &dx}, {"dw", dw}, {"dbias", dbias}, {"dinitial_state", dinitial_state}},
                {{"x", &x}, {"w", &w}, {"bias", bias}, {"dy", &dy}, {"initial_state", initial_state}});
  cpu::causal_conv1d_backward(x, w, bias, seq_idx, initial_state, apply_silu, dy, dx, dw, dbias,
                              dinitial_state);
}

// ---- SSD ---------------------------------------------------------------------------------

namespace {
void check_ssd(const char* op, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
               const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size) {
  need_dtype(op, "x", x);
  need_dtype(op, "Bm", Bm);
  need_rank(op, "x", x, 4, "[B, T, H, P]");
  need_rank(op, "Bm", Bm, 4, "[B, T, G, N]");
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), G = Bm.dim(2);
  need(op, "dt", &dt, {B, T, H});
  need(op, "A", &A, {H});
  MAMBALM_CHECK(Bm.dim(0) == B && Bm.dim(1) == T, where(op),
                "Bm has shape " + shape_str(Bm.shape()) + " but x has shape " + shape_str(x.shape()),
                "Bm is [B, T, G, N] with x's B and T");
  MAMBALM_CHECK(G >= 1 && H % G == 0, where(op),
                "x has " + std::to_string(H) + " heads and Bm " + std::to_string(G) + " groups",
                "the head count must be a multiple of n_groups");
  need(op, "Cm", &Cm, Bm.shape());
  need(op, "D", D, {H});
  need_seq_idx(op, seq_idx, B, T);
  MAMBALM_CHECK(chunk_size >= 1, where(op),
                "chunk_size is " + std::to_string(chunk_size) + ", expected >= 1",
                "the config's chunk_size");
}
Shape state_shape(const Tensor& x, const Tensor& Bm) { return {x.dim(0), x.dim(2), x.dim(3), Bm.dim(3)}; }
}  // namespace

void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                          int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt,
                          Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                          Tensor* dinitial_state) {
  const char* op = "ssd_chunked_backward";
  check_ssd(op, x, dt, A, Bm, Cm, D, seq_idx, chunk_size);
  const Shape ss = state_shape(x, Bm);
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
  need_cpu(op, {&x, &dt, &A, &Bm, &Cm, D, seq_idx, initial_state, dfinal_state, &dy, &dx, &ddt, dA,
                &dBm, &dCm, dD, dinitial_state});
  need_disjoint(op,
                {{"dx", &dx}, {"ddt", &ddt}, {"dA", dA}, {"dBm", &dBm}, {"dCm", &dCm}, {"dD", dD},
                 {"dinitial_state", dinitial_state}},
                {{"x", &x}, {"dt", &dt}, {"A", &A}, {"Bm", &Bm}, {"Cm", &Cm}, {"D", D},
                 {"initial_state", initial_state}, {"dfinal_state", dfinal_state}, {"dy", &dy}});
  cpu::ssd_chunked_backward(x, dt, A, Bm, Cm, D, seq_idx, chunk_size, initial_state, dfinal_state,
                            dy, dx, ddt, dA, dBm, dCm, dD, dinitial_state);
}

// ---- selective scan ----------------------------------------------------------------------

namespace {
void check_scan(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A,
                const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                const Tensor* seq_idx) {
  need_dtype(op, "u", u);
  need_dtype(op, "A", A);
  need_rank(op, "u", u, 3, "[B, T, Di]");
  need_rank(op, "A", A, 2, "[Di, N]");
  const int64_t B = u.dim(0), T = u.dim(1), Di = u.dim(2), N = A.dim(1);
  MAMBALM_CHECK(A.dim(0) == Di, where(op),
                "A has shape " + shape_str(A.shape()) + " but u has shape " + shape_str(u.shape()),
                "A is [Di, N] with u's channel count");
  need(op, "delta", &delta, u.shape());
  need(op, "Bm", &Bm, {B, T, N});
  need(op, "Cm", &Cm, {B, T, N});
  need(op, "D", D, {Di});
  need(op, "z", z, u.shape());
  need_seq_idx(op, seq_idx, B, T);
}
}  // namespace

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A,
                             const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                             const Tensor* seq_idx, const Tensor* initial_state,
                             const Tensor* dfinal_state, int64_t chunk_size, const Tensor& dy,
                             Tensor& du, Tensor& ddelta, Tensor* dA, Tensor& dBm, Tensor& dCm,
                             Tensor* dD, Tensor* dz, Tensor* dinitial_state) {
  const char* op = "selective_scan_backward";
  check_scan(op, u, delta, A, Bm, Cm, D, z, seq_idx);
  const Shape ss{u.dim(0), u.dim(2), A.dim(1)};
  MAMBALM_CHECK(chunk_size >= 1, where(op), "chunk_size is " + std::to_string(chunk_size) + ", expected >= 1");
  MAMBALM_CHECK(!z || dz, where(op), "z is given but dz is null", "pass a [B, T, Di] dz tensor");
  need(op, "initial_state", initial_state, ss);
  need(op, "dfinal_state", dfinal_state, ss);
  need(op, "dy", &dy, u.shape());
  need(op, "du", &du, u.shape());
  need(op, "ddelta", &ddelta, u.shape());
  need(op, "dA", dA, A.shape());
  need(op, "dBm", &dBm, Bm.shape());
  need(op, "dCm", &dCm, Cm.shape());
  need(op, "dD", dD, {u.dim(2)});
  need(op, "dz", z ? dz : nullptr, u.shape());
  need(op, "dinitial_state", dinitial_state, ss);
  need_cpu(op, {&u, &delta, &A, &Bm, &Cm, D, z, seq_idx, initial_state, dfinal_state, &dy, &du,
                &ddelta, dA, &dBm, &dCm, dD, dz, dinitial_state});
  need_disjoint(op,
                {{"du", &du}, {"ddelta", &ddelta}, {"dA", dA}, {"dBm", &dBm}, {"dCm", &dCm},
                 {"dD", dD}, {"dz", z ? dz : nullptr}, {"dinitial_state", dinitial_state}},
                {{"u", &u}, {"delta", &delta}, {"A", &A}, {"Bm", &Bm}, {"Cm", &Cm}, {"D", D},
                 {"z", z}, {"initial_state", initial_state}, {"dfinal_state", dfinal_state},
                 {"dy", &dy}});
  cpu::selective_scan_backward(u, delta, A, Bm, Cm, D, z, seq_idx, initial_state, dfinal_state,
                               chunk_size, dy, du, ddelta, dA, dBm, dCm, dD, z ? dz : nullptr,
                               dinitial_state);
}

// ---- attention ---------------------------------------------------------------------------

void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta) {
  const char* op = "rope_backward";
  need_dtype(op, "dx", dx);
  need_rank(op, "dx", dx, 4, "[B, T, H, Dh]");
  MAMBALM_CHECK(rotary_dim >= 0 && rotary_dim % 2 == 0 && rotary_dim <= dx.dim(3), where(op),
                "rotary_dim " + std::to_string(rotary_dim) +
                    " is not an even number <= head dim of dx " + shape_str(dx.shape()));
  MAMBALM_CHECK(pos0 >= 0, where(op), "pos0 is " + std::to_string(pos0) + ", expected >= 0");
  MAMBALM_CHECK(std::isfinite(theta) && theta > 0.0, where(op),
                "theta is " + std::to_string(theta) + ", expected a positive number");
  need_cpu(op, {&dx});
  cpu::rope_backward(dx, pos0, rotary_dim, theta);
}

namespace {
void check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor* seq_idx) {
  need_dtype(op, "q", q);
  need_dtype(op, "k", k);
  need_rank(op, "q", q, 4, "[B, T, Hq, Dh]");
  need_rank(op, "k", k, 4, "[B, S, Hkv, Dh]");
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  MAMBALM_CHECK(k.dim(0) == B && k.dim(3) == Dh, where(op),
                "k has shape " + shape_str(k.shape()) + " but q has shape " + shape_str(q.shape()),
                "k is [B, S, Hkv, Dh] with q's batch and head dim");
  MAMBALM_CHECK(Hkv >= 1 && Hq % Hkv == 0, where(op),
                "q has " + std::to_string(Hq) + " heads, not a multiple of k's " + std::to_string(Hkv));
  MAMBALM_CHECK(S >= T, where(op),
                "k has " + std::to_string(S) + " positions but q has " + std::to_string(T),
                "the keys must include every query position (S >= T)");
  need(op, "v", &v, k.shape());
  need_seq_idx(op, seq_idx, B, S);
}
}  // namespace

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) {
  const char* op = "attention_backward";
  check_attention(op, q, k, v, seq_idx);
  need(op, "dout", &dout, q.shape());
  need(op, "dq", &dq, q.shape());
  need(op, "dk", &dk, k.shape());
  need(op, "dv", &dv, k.shape());
  need_cpu(op, {&q, &k, &v, seq_idx, &dout, &dq, &dk, &dv});
  need_disjoint(op, {{"dq", &dq}, {"dk", &dk}, {"dv", &dv}},
                {{"q", &q}, {"k", &k}, {"v", &v}, {"dout", &dout}});
  cpu::attention_backward(q, k, v, seq_idx, scale, dout, dq, dk, dv);
}

}  // namespace mambalm::ops
