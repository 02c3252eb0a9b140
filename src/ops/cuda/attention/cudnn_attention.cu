// Causal attention forward and backward through cuDNN's fused flash-attention engine, built
// with cuDNN's backend (graph) C API on a library opened at run time (cudnn_loader.h). The
// choice between this path and our own kernels is attention.cu's; here are the graphs, the
// plan cache and the layout glue.
//
// What the engine recognises: cuDNN 9 pattern-matches a graph of primitive operations (matmul,
// pointwise, reduction, reshape) and fuses it into its flash kernels (the SDPA operation that
// recent 9.x headers declare is newer than most installed libraries, and the frontend keeps it
// for special cases). The graphs below have the shape that NVIDIA's cudnn-frontend (v1.x)
// lowers its SDPA nodes to, as read in its source (2026), written here with our own code; the
// behaviour relied on is cuDNN 9.x's as that source documents it (9.0 to 9.19; the header this
// was compiled against is 9.19):
//  forward:  S = Q K^T (fp32); S *= scale; causal mask (row index >= column index, else -inf,
//            via two index generators, a comparison and a select); softmax spelled out as
//            max-reduce, subtract, exp, sum-reduce, divide, with the statistic max + log(sum)
//            written (training); P (bf16) V -> O.
//  backward: D = rowsum(dO * O) (times one: the engine's pattern has a dropout-scale slot);
//            P = exp(scale Q K^T - stats) under the same mask; dV = P^T dO; dP = dO V^T;
//            dS = P (dP - D) scale; dK = dS^T Q; dQ = dS K into an fp32 accumulator, then
//            converted to bf16. GQA: the K/V tensors carry Hkv heads (the engine broadcasts them
//            over each group) and dK/dV come from a full-head product summed over the group
//            by a reduction.
// Version-dependent details (from the loaded library's cudnnGetVersion): the mask value is
// -inf from 9.10 on and the lowest float before; before 9.6 the dQ accumulator must be zeroed
// by the caller; 9.10.0/9.10.1 have a known backward bug and below 9.16 the backward needs a
// key count that is a multiple of 128 (otherwise the frontend adds a padding-mask workaround we
// do not build): attention.cu routes those to our kernels.
// Checked without a GPU (`mambalm_cuda_conformance --cudnn-graphs`): every tensor and operation
// descriptor of both graphs finalizes against cuDNN 9.19.0. On the H200 (ncu, 2026-12-02) the
// plans run the same fprop / bprop kernels as PyTorch's SDPA on the same library, in the same
// times; what we add is the fp32 <-> bf16 glue below (bench/NOTES.md).
//
// Layouts: our q, out, dout, dq [B, T, Hq, D] and k, v, dk, dv [B, S, Hkv, D] are described to
// cuDNN as [B, H, T, D] tensors by strides, no transposes. The engine needs bf16 Q, O and dO
// and writes bf16 O, dQ, dK, dV: q, out and dout (F32 in our contract) are rounded to bf16 into
// scratch by one kernel, and the bf16 results widened into our F32 tensors by another (the
// extra rounding of the outputs is within the bf16 limits of docs/numerics.md). The statistic:
// cuDNN's is natural-log, ln sum_j exp(scale q.k_j) (max included); ours is base 2, so
// lse2 = stats * log2(e) and back.
//
// Plans: an execution plan per (device, direction, B, T, Hq, Hkv, D), built once per thread
// (ms to seconds; a runtime-compiled engine may compile) and kept for the life of the process,
// as are the handle and the descriptors (never destroyed: at exit cuDNN may already be gone).
// A shape whose plan fails is remembered with the reason and not tried again.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "ops/cuda/attention/common.cuh"
#include "ops/cuda/attention/cudnn_attention.h"
#include "ops/cuda/bf16_convert.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cudnn_loader.h"

namespace mambalm::ops::cuda {

#if MAMBALM_HAVE_CUDNN

namespace {

using Dims = std::array<int64_t, 4>;

// Thrown inside a plan build or an execution; turned into a reason string by the entry points.
struct CudnnFailure {
  std::string what;
};

// Unique ids of the tensors the caller binds (virtual tensors count up from kFirstVirtual).
enum Uid : int64_t {
  kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kScale, kMaskValue, kOne, kRowSum, kDQAccum,
  kFirstVirtual = 100
};

struct TensorRef {
  cudnnBackendDescriptor_t desc = nullptr;
  Dims dim{}, stride{};
};

// Builds one operation graph: every descriptor it creates is kept in `owned` (released to the
// plan on success, destroyed on failure).
class GraphBuilder {
 public:
  explicit GraphBuilder(const CudnnApi& api) : a_(api) {}
  ~GraphBuilder() {
    for (auto d : owned_) a_.destroy_descriptor(d);
  }
  GraphBuilder(const GraphBuilder&) = delete;
  GraphBuilder& operator=(const GraphBuilder&) = delete;

  cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type, const char* what) {
    cudnnBackendDescriptor_t d = nullptr;
    check(a_.create_descriptor(type, &d), "create descriptor", what);
    owned_.push_back(d);
    return d;
  }
  void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
           int64_t count, const void* value, const char* what) {
    check(a_.set_attribute(d, name, type, count, value), "set attribute", what);
  }
  void finalize(cudnnBackendDescriptor_t d, const char* what) { check(a_.finalize(d), "finalize", what); }

  TensorRef tensor(int64_t uid, cudnnDataType_t type, Dims dim, Dims stride, bool is_virtual,
                   bool by_value, const char* what) {
    TensorRef t;
    t.desc = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
    t.dim = dim;
    t.stride = stride;
    const int64_t alignment = 16;
    set(t.desc, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, what);
    set(t.desc, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim.data(), what);
    set(t.desc, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, stride.data(), what);
    set(t.desc, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what);
    set(t.desc, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, what);
    if (is_virtual) {
      const bool yes = true;
      set(t.desc, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes, what);
    }
    if (by_value) {
      const bool yes = true;
      set(t.desc, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes, what);
    }
    finalize(t.desc, what);
    return t;
  }
  TensorRef io(int64_t uid, cudnnDataType_t type, Dims dim, Dims stride, const char* what) {
    return tensor(uid, type, dim, stride, false, false, what);
  }
  TensorRef virt(cudnnDataType_t type, Dims dim, Dims stride, const char* what) {
    return tensor(next_uid_++, type, dim, stride, true, false, what);
  }
  // A float scalar passed by value at execution (a host pointer in the variant pack), as a
  // [1, 1, 1, 1] tensor: a pointwise operation needs operands of equal rank (cuDNN 9.19 refuses
  // a 1-d scalar beside a 4-d tensor with "xDesc.getNbDims() != bDesc.getNbDims()").
  TensorRef scalar(int64_t uid, const char* what) {
    return tensor(uid, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true, what);
  }

  // y = mode(x [, b [, t]]); axis only for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t precision, const TensorRef& x, const TensorRef* b,
                 const TensorRef* t, const TensorRef& y, const char* what, int64_t axis = -1) {
    cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
    set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what);
    set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision, what);
    if (mode == CUDNN_POINTWISE_GEN_INDEX) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what);
    finalize(pw, what);
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, what);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x.desc, what);
    if (b) set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b->desc, what);
    if (t) set(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t->desc, what);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y.desc, what);
    const float one = 1.0f;
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, what);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, what);
    finalize(op, what);
    ops_.push_back(op);
  }
  // A virtual fp32 result of x's shape (x is the full-size operand of every binary op here).
  TensorRef pw(cudnnPointwiseMode_t mode, const TensorRef& x, const TensorRef* b, const char* what,
               cudnnDataType_t out = CUDNN_DATA_FLOAT) {
    TensorRef y = virt(out, x.dim, x.stride, what);
    pointwise(mode, CUDNN_DATA_FLOAT, x, b, nullptr, y, what);
    return y;
  }

  // c = a b over the last two dims, batched over the first two (b's head dim may divide a's).
  void matmul(const TensorRef& a, const TensorRef& b, const TensorRef& c, const char* what) {
    const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
    set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, what);
    finalize(mm, what);
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what);
    set(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a.desc, what);
    set(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b.desc, what);
    set(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c.desc, what);
    set(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm, what);
    finalize(op, what);
    ops_.push_back(op);
  }

  void reduction(cudnnReduceTensorOp_t mode, const TensorRef& x, const TensorRef& y, const char* what) {
    const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
    set(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, what);
    set(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, what);
    finalize(rd, what);
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what);
    set(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, what);
    set(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x.desc, what);
    set(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y.desc, what);
    finalize(op, what);
    ops_.push_back(op);
  }

  // A view of x with other dims / strides (no data movement: the transposes of P, dS and K).
  void reshape(const TensorRef& x, const TensorRef& y, const char* what) {
    cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
    set(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x.desc, what);
    set(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y.desc, what);
    finalize(op, what);
    ops_.push_back(op);
  }

  // The causal mask of a [B, H, T, T] score tensor (queries and keys aligned at 0, as q_len ==
  // k_len): keeps row >= column, puts `mask_value` elsewhere.
  TensorRef causal_mask(const TensorRef& s, const TensorRef& mask_value) {
    TensorRef row = virt(CUDNN_DATA_INT32, s.dim, s.stride, "row index");
    pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, nullptr, nullptr, row, "row index", 2);
    TensorRef col = virt(CUDNN_DATA_INT32, s.dim, s.stride, "column index");
    pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, nullptr, nullptr, col, "column index", 3);
    TensorRef keep = virt(CUDNN_DATA_BOOLEAN, s.dim, s.stride, "causal comparison");
    pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, &col, nullptr, keep, "causal comparison");
    TensorRef out = virt(CUDNN_DATA_FLOAT, s.dim, s.stride, "causal select");
    pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, &mask_value, &keep, out, "causal select");
    return out;
  }

  // Finalizes the operation graph and the first engine configuration (heuristics mode A, then
  // the fallback list) whose execution plan finalizes. Returns the plan; *workspace its bytes.
  cudnnBackendDescriptor_t plan(cudnnHandle_t handle, int64_t* workspace) {
    cudnnBackendDescriptor_t graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops_.size()), ops_.data(),
        "operation graph");
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "operation graph");
    finalize(graph, "operation graph");
    std::string tried;
    // MAMBALM_CUDNN_ATTN_CONFIG=N (a measurement knob, bench/NOTES.md): take the N-th configuration
    // that finalizes instead of the first, and say which engine it is.
    const char* pick_env = std::getenv("MAMBALM_CUDNN_ATTN_CONFIG");
    const int64_t pick = pick_env ? std::max<int64_t>(0, std::atoll(pick_env)) : 0;
    int64_t finalized = 0;
    cudnnBackendDescriptor_t first_plan = nullptr;
    int64_t first_workspace = 0;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      const char* mname = mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "heuristics fallback";
      cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, mname);
      set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph, mname);
      set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, mname);
      cudnnStatus_t s = a_.finalize(heur);
      if (s != CUDNN_STATUS_SUCCESS) {
        tried += std::string(tried.empty() ? "" : "; ") + mname + ": " + a_.describe(s);
        continue;
      }
      int64_t count = 0;
      check(a_.get_attribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
            "get attribute", "engine count");
      if (count <= 0) {
        tried += std::string(tried.empty() ? "" : "; ") + mname + ": no engine";
        continue;
      }
      count = std::min<int64_t>(count, 16);
      std::vector<cudnnBackendDescriptor_t> configs;
      for (int64_t i = 0; i < count; ++i) configs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config"));
      int64_t got = 0;
      check(a_.get_attribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                             configs.data()),
            "get attribute", "engine configs");
      for (int64_t i = 0; i < got; ++i) {
        cudnnBackendDescriptor_t p = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
        set(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "execution plan");
        set(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &configs[size_t(i)],
            "execution plan");
        s = a_.finalize(p);
        if (s != CUDNN_STATUS_SUCCESS) {
          tried += std::string(tried.empty() ? "" : "; ") + mname + " config " + std::to_string(i) + ": " +
                   a_.describe(s);
          continue;
        }
        int64_t ws = 0, n = 0;
        check(a_.get_attribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws),
              "get attribute", "workspace size");
        if (!first_plan) first_plan = p, first_workspace = ws;
        if (finalized++ < pick) continue;
        if (pick_env) {
          cudnnBackendDescriptor_t engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR, "engine");
          int64_t index = -1;
          if (a_.get_attribute(configs[size_t(i)], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                               &engine) == CUDNN_STATUS_SUCCESS)
            a_.get_attribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index);
          std::fprintf(stderr, "cudnn attention: configuration %lld (%s #%lld): engine %lld, workspace %lld bytes\n",
                       static_cast<long long>(pick), mname, static_cast<long long>(i), static_cast<long long>(index),
                       static_cast<long long>(ws));
        }
        *workspace = ws;
        return p;
      }
      if (got <= 0) tried += std::string(tried.empty() ? "" : "; ") + mname + ": no engine";
    }
    if (first_plan) {  // fewer configurations than asked for: the first
      if (pick_env) std::fprintf(stderr, "cudnn attention: only %lld configurations finalize\n", static_cast<long long>(finalized));
      *workspace = first_workspace;
      return first_plan;
    }
    throw CudnnFailure{"no engine config finalized an execution plan (" + tried + ")"};
  }

  // Hands the descriptors over to the caller (kept for the life of the process).
  std::vector<cudnnBackendDescriptor_t> release() {
    std::vector<cudnnBackendDescriptor_t> r;
    r.swap(owned_);
    return r;
  }

 private:
  void check(cudnnStatus_t s, const char* step, const char* what) {
    if (s != CUDNN_STATUS_SUCCESS) throw CudnnFailure{std::string(step) + " (" + what + "): " + a_.describe(s)};
  }
  const CudnnApi& a_;
  std::vector<cudnnBackendDescriptor_t> owned_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_uid_ = kFirstVirtual;
};

struct Shape {
  int64_t B, T, Hq, Hkv, D;
};

// [B, H, T, D] views of our [B, T, H, D] tensors, and K / V transposed to [B, H, D, T].
Dims bhtd(int64_t B, int64_t H, int64_t T, int64_t D) { return {B, H, T, D}; }
Dims bhtd_strides(int64_t H, int64_t T, int64_t D) { return {T * H * D, D, H * D, 1}; }
Dims bhdt(int64_t B, int64_t H, int64_t T, int64_t D) { return {B, H, D, T}; }
Dims bhdt_strides(int64_t H, int64_t T, int64_t D) { return {T * H * D, D, 1, H * D}; }
Dims contiguous(const Dims& d) { return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1}; }

float mask_value(const CudnnApi& a) {
  return a.version >= 91000 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::lowest();
}

void build_forward(GraphBuilder& g, const Shape& s) {
  const int64_t B = s.B, T = s.T, Hq = s.Hq, Hkv = s.Hkv, D = s.D;
  TensorRef q = g.io(kQ, CUDNN_DATA_BFLOAT16, bhtd(B, Hq, T, D), bhtd_strides(Hq, T, D), "Q");
  TensorRef kt = g.io(kK, CUDNN_DATA_BFLOAT16, bhdt(B, Hkv, T, D), bhdt_strides(Hkv, T, D), "K^T");
  TensorRef v = g.io(kV, CUDNN_DATA_BFLOAT16, bhtd(B, Hkv, T, D), bhtd_strides(Hkv, T, D), "V");
  TensorRef o = g.io(kO, CUDNN_DATA_BFLOAT16, bhtd(B, Hq, T, D), bhtd_strides(Hq, T, D), "O");
  const Dims row_dims{B, Hq, T, 1}, row_strides{Hq * T, T, 1, 1};
  TensorRef stats = g.io(kStats, CUDNN_DATA_FLOAT, row_dims, row_strides, "stats");
  TensorRef scale = g.scalar(kScale, "scale");
  TensorRef maskv = g.scalar(kMaskValue, "mask value");

  const Dims sdims{B, Hq, T, T};
  TensorRef s0 = g.virt(CUDNN_DATA_FLOAT, sdims, contiguous(sdims), "Q K^T");
  g.matmul(q, kt, s0, "Q K^T");
  TensorRef s1 = g.pw(CUDNN_POINTWISE_MUL, s0, &scale, "scale");
  TensorRef s2 = g.causal_mask(s1, maskv);
  TensorRef mx = g.virt(CUDNN_DATA_FLOAT, row_dims, row_strides, "row max");
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s2, mx, "row max");
  TensorRef sub = g.pw(CUDNN_POINTWISE_SUB, s2, &mx, "minus max");
  TensorRef ex = g.pw(CUDNN_POINTWISE_EXP, sub, nullptr, "exp");
  TensorRef sum = g.virt(CUDNN_DATA_FLOAT, row_dims, row_strides, "row sum");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, ex, sum, "row sum");
  TensorRef lg = g.pw(CUDNN_POINTWISE_LOG, sum, nullptr, "log sum");
  g.pointwise(CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, mx, &lg, nullptr, stats, "stats");
  TensorRef p = g.virt(CUDNN_DATA_BFLOAT16, sdims, ex.stride, "softmax");
  g.pointwise(CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, ex, &sum, nullptr, p, "softmax");
  g.matmul(p, v, o, "P V");
}

// variant 0 describes the transposed view of K that dQ = dS K reads as an fp32 virtual tensor,
// as cudnn-frontend does (its views take the graph's intermediate type); variant 1, tried when
// cuDNN refuses the first, keeps it bf16 like the K it views.
void build_backward(GraphBuilder& g, const Shape& s, int variant) {
  const int64_t B = s.B, T = s.T, Hq = s.Hq, Hkv = s.Hkv, D = s.D;
  TensorRef q = g.io(kQ, CUDNN_DATA_BFLOAT16, bhtd(B, Hq, T, D), bhtd_strides(Hq, T, D), "Q");
  TensorRef kt = g.io(kK, CUDNN_DATA_BFLOAT16, bhdt(B, Hkv, T, D), bhdt_strides(Hkv, T, D), "K^T");
  TensorRef vt = g.io(kV, CUDNN_DATA_BFLOAT16, bhdt(B, Hkv, T, D), bhdt_strides(Hkv, T, D), "V^T");
  TensorRef o = g.io(kO, CUDNN_DATA_BFLOAT16, bhtd(B, Hq, T, D), bhtd_strides(Hq, T, D), "O");
  TensorRef dout = g.io(kDO, CUDNN_DATA_BFLOAT16, bhtd(B, Hq, T, D), bhtd_strides(Hq, T, D), "dO");
  TensorRef dq = g.io(kDQ, CUDNN_DATA_BFLOAT16, bhtd(B, Hq, T, D), bhtd_strides(Hq, T, D), "dQ");
  TensorRef dk = g.io(kDK, CUDNN_DATA_BFLOAT16, bhtd(B, Hkv, T, D), bhtd_strides(Hkv, T, D), "dK");
  TensorRef dv = g.io(kDV, CUDNN_DATA_BFLOAT16, bhtd(B, Hkv, T, D), bhtd_strides(Hkv, T, D), "dV");
  const Dims row_dims{B, Hq, T, 1}, row_strides{Hq * T, T, 1, 1};
  TensorRef stats = g.io(kStats, CUDNN_DATA_FLOAT, row_dims, row_strides, "stats");
  TensorRef scale = g.scalar(kScale, "scale");
  TensorRef maskv = g.scalar(kMaskValue, "mask value");
  TensorRef one = g.scalar(kOne, "one");
  // Workspace tensors of the engine's pattern: D = rowsum(dO * O) and the fp32 dQ accumulator.
  TensorRef rowsum = g.io(kRowSum, CUDNN_DATA_FLOAT, row_dims, row_strides, "rowsum(dO O)");
  const Dims qdims = bhtd(B, Hq, T, D);
  TensorRef dq_acc = g.io(kDQAccum, CUDNN_DATA_FLOAT, qdims, contiguous(qdims), "dQ accumulator");

  // D = rowsum(dO * O) * 1
  TensorRef prod = g.virt(CUDNN_DATA_FLOAT, qdims, {Hq * T * D, T * D, Hq * D, 1}, "dO * O");
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dout, &o, nullptr, prod, "dO * O");
  TensorRef red = g.virt(CUDNN_DATA_FLOAT, row_dims, row_strides, "rowsum");
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, prod, red, "rowsum");
  g.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, red, &one, nullptr, rowsum, "rowsum * 1");

  // P = exp(scale Q K^T - stats), masked
  const Dims sdims{B, Hq, T, T};
  TensorRef s0 = g.virt(CUDNN_DATA_FLOAT, sdims, contiguous(sdims), "Q K^T");
  g.matmul(q, kt, s0, "Q K^T");
  TensorRef s1 = g.pw(CUDNN_POINTWISE_MUL, s0, &scale, "scale");
  TensorRef s2 = g.pw(CUDNN_POINTWISE_SUB, s1, &stats, "minus stats");
  TensorRef s3 = g.causal_mask(s2, maskv);
  TensorRef p = g.pw(CUDNN_POINTWISE_EXP, s3, nullptr, "P");

  // dV = P^T dO (summed over the group for GQA)
  const Dims tdims{B, Hq, T, T}, tstrides{Hq * T * T, T * T, 1, T};
  TensorRef pt = g.virt(CUDNN_DATA_BFLOAT16, tdims, tstrides, "P^T");
  g.reshape(p, pt, "P^T");
  const Dims full{B, Hq, T, D};
  if (Hq == Hkv) {
    g.matmul(pt, dout, dv, "P^T dO");
  } else {
    TensorRef dv_full = g.virt(CUDNN_DATA_BFLOAT16, full, contiguous(full), "P^T dO (all heads)");
    g.matmul(pt, dout, dv_full, "P^T dO");
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, dv_full, dv, "dV group sum");
  }

  // dS = P (dO V^T - D) scale
  TensorRef dp = g.virt(CUDNN_DATA_FLOAT, sdims, contiguous(sdims), "dO V^T");
  g.matmul(dout, vt, dp, "dO V^T");
  TensorRef dp1 = g.pw(CUDNN_POINTWISE_SUB, dp, &rowsum, "dP - D");
  TensorRef ds0 = g.pw(CUDNN_POINTWISE_MUL, dp1, &p, "P (dP - D)");
  TensorRef ds = g.pw(CUDNN_POINTWISE_MUL, ds0, &scale, "dS scale");

  // dK = dS^T Q (summed over the group for GQA)
  TensorRef dst = g.virt(CUDNN_DATA_BFLOAT16, tdims, tstrides, "dS^T");
  g.reshape(ds, dst, "dS^T");
  if (Hq == Hkv) {
    g.matmul(dst, q, dk, "dS^T Q");
  } else {
    TensorRef dk_full = g.virt(CUDNN_DATA_BFLOAT16, full, contiguous(full), "dS^T Q (all heads)");
    g.matmul(dst, q, dk_full, "dS^T Q");
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, dk_full, dk, "dK group sum");
  }

  // dQ = dS K (fp32 accumulator, then bf16)
  TensorRef k = g.virt(variant == 0 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16, bhtd(B, Hkv, T, D),
                       bhtd_strides(Hkv, T, D), "K");
  g.reshape(kt, k, "K");
  g.matmul(ds, k, dq_acc, "dS K");
  g.pointwise(CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, dq_acc, nullptr, nullptr, dq, "dQ");
}

struct Plan {
  bool ok = false;
  std::string why;  // when !ok
  cudnnBackendDescriptor_t plan = nullptr;
  int64_t workspace = 0;
};

struct Session {
  const CudnnApi* api = nullptr;
  cudnnHandle_t handle = nullptr;
  std::map<std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t>, Plan*> plans;  // one device
};

// The calling thread's handle for the current device (on the thread's default stream) and its
// plans. Never freed.
Session* session(std::string* why) {
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "attention (cudnn)", "cudaGetDevice");
  static thread_local std::map<int, Session*> sessions;
  static thread_local std::string failed;
  auto it = sessions.find(dev);
  if (it != sessions.end()) return it->second;
  if (!failed.empty()) {
    *why = failed;
    return nullptr;
  }
  if (cuda_capturing()) {  // cudnnCreate allocates: the uncaptured warm-up creates the handle
    *why = "no cuDNN handle yet and a CUDA graph is being captured";
    return nullptr;
  }
  const CudnnApi* api = cudnn_api(why);
  if (!api) return nullptr;
  cudnnHandle_t h = nullptr;
  cudnnStatus_t st = api->create(&h);
  if (st == CUDNN_STATUS_SUCCESS) st = api->set_stream(h, cudaStreamPerThread);
  if (st != CUDNN_STATUS_SUCCESS) {
    failed = "cudnnCreate / cudnnSetStream: " + api->describe(st);
    *why = failed;
    return nullptr;
  }
  Session* s = new Session;
  s->api = api;
  s->handle = h;
  sessions.emplace(dev, s);
  return s;
}

const Plan& plan_for(Session& ses, bool backward, const Shape& sh) {
  const auto key = std::make_tuple(backward, sh.B, sh.T, sh.Hq, sh.Hkv, sh.D);
  auto it = ses.plans.find(key);
  if (it != ses.plans.end()) return *it->second;
  if (cuda_capturing()) {
    // Building a plan may allocate and synchronise; the uncaptured warm-up step builds it.
    static thread_local Plan capturing;
    capturing.why = "no plan for this shape yet and a CUDA graph is being captured";
    return capturing;  // not cached: the next uncaptured call builds it
  }
  Plan* p = new Plan;
  const auto t0 = std::chrono::steady_clock::now();
  std::string why;
  for (int variant = 0; variant < (backward ? 2 : 1) && !p->ok; ++variant) {
    try {
      GraphBuilder g(*ses.api);
      if (backward) build_backward(g, sh, variant);
      else build_forward(g, sh);
      p->plan = g.plan(ses.handle, &p->workspace);
      p->ok = true;
      (void)g.release();  // kept alive with the plan
    } catch (const CudnnFailure& f) {
      why += std::string(why.empty() ? "" : "; with a bf16 K view: ") + f.what;
    }
  }
  if (!p->ok) p->why = std::string(backward ? "backward" : "forward") + " plan: " + why;
  const char* dbg = std::getenv("MAMBALM_ATTN_DEBUG");
  if (p->ok && dbg && *dbg && std::string(dbg) != "0") {
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr,
                 "mambalm: cuDNN %zu attention %s plan for B %ld T %ld heads %ld/%ld D %ld: built in %.0f ms, "
                 "workspace %ld bytes\n",
                 ses.api->version, backward ? "backward" : "forward", long(sh.B), long(sh.T), long(sh.Hq),
                 long(sh.Hkv), long(sh.D), ms, long(p->workspace));
  }
  ses.plans.emplace(key, p);
  return *p;
}

// A plan whose execution failed is not tried again (the shape takes our kernels from now on).
void mark_failed(const Plan& p, const std::string& why) {
  Plan& m = const_cast<Plan&>(p);  // every Plan is a heap object owned by the cache
  m.ok = false;
  m.why = why;
}

void execute(Session& ses, const Plan& p, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs,
             void* workspace) {
  const CudnnApi& a = *ses.api;
  cudnnBackendDescriptor_t vp = nullptr;
  cudnnStatus_t s = a.create_descriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
  if (s != CUDNN_STATUS_SUCCESS) throw CudnnFailure{"variant pack: " + a.describe(s)};
  const int64_t n = int64_t(uids.size());
  if (s == CUDNN_STATUS_SUCCESS)
    s = a.set_attribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids.data());
  if (s == CUDNN_STATUS_SUCCESS)
    s = a.set_attribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs.data());
  if (s == CUDNN_STATUS_SUCCESS)
    s = a.set_attribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (s == CUDNN_STATUS_SUCCESS) s = a.finalize(vp);
  if (s == CUDNN_STATUS_SUCCESS) s = a.execute(ses.handle, p.plan, vp);
  const std::string err = s == CUDNN_STATUS_SUCCESS ? "" : a.describe(s);
  a.destroy_descriptor(vp);
  if (!err.empty()) throw CudnnFailure{"execute: " + err};
}

// ---- layout glue ----------------------------------------------------------------------------
// fp32 <-> bf16 conversions: bf16_convert.cuh. The statistic changes base by one scaling pass.
__global__ void scale_kernel(const float* x, float* y, int64_t n, float f) {  // x may be y
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] * f;
}

void scale_rows(const float* x, float* y, int64_t n, float f) {
  scale_kernel<<<unsigned((n + kThreads - 1) / kThreads), kThreads>>>(x, y, n, f);
}

constexpr float kLn2 = 0.6931471805599453f;
size_t up256(size_t b) { return (b + 255) & ~size_t(255); }

Shape shape_of(const Tensor& q, const Tensor& k) { return {q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3)}; }

// Runs the forward plan: q16 and k, v in; o16 and stats (natural log) out.
void run_forward(Session& ses, const Plan& p, const uint16_t* q16, const Tensor& k, const Tensor& v, uint16_t* o16,
                 float* stats, float scale, void* workspace) {
  float sc = scale, mv = mask_value(*ses.api);
  execute(ses, p, {kQ, kK, kV, kO, kStats, kScale, kMaskValue},
          {const_cast<uint16_t*>(q16), const_cast<uint16_t*>(k.data<uint16_t>()),
           const_cast<uint16_t*>(v.data<uint16_t>()), o16, stats, &sc, &mv},
          workspace);
}

}  // namespace

bool attention_cudnn(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out, float* lse2,
                     std::string* why) {
  Session* ses = session(why);
  if (!ses) return false;
  const Shape sh = shape_of(q, k);
  const Plan& p = plan_for(*ses, false, sh);
  if (!p.ok) {
    *why = p.why;
    return false;
  }
  const int64_t n = sh.B * sh.T * sh.Hq * sh.D, rows = sh.B * sh.Hq * sh.T;
  // The statistic goes straight into lse2 (then rescaled in place) when it is aligned.
  const bool direct = lse2 && aligned16(lse2);
  const size_t b_half = up256(size_t(n) * 2), b_rows = direct ? 0 : up256(size_t(rows) * 4);
  static thread_local GrowOnlyBuffer scratch;
  char* base = scratch.get<char>(2 * b_half + b_rows + up256(size_t(p.workspace)), "attention (cudnn)");
  // bf16 q and out (mixed precision) are cuDNN's own operands; fp32 ones go through bf16 copies.
  const bool q_bf16 = q.dtype() == DType::BF16, o_bf16 = out.dtype() == DType::BF16;
  uint16_t* q16 = q_bf16 ? q.data<uint16_t>() : reinterpret_cast<uint16_t*>(base);
  uint16_t* o16 = o_bf16 ? out.data<uint16_t>() : reinterpret_cast<uint16_t*>(base + b_half);
  float* stats = direct ? lse2 : reinterpret_cast<float*>(base + 2 * b_half);
  void* ws = base + 2 * b_half + b_rows;
  if (!q_bf16) f32_to_bf16({{q.f32(), q16, n}});
  try {
    run_forward(*ses, p, q16, k, v, o16, stats, scale, ws);
  } catch (const CudnnFailure& f) {
    *why = "forward " + f.what;
    mark_failed(p, *why);
    return false;
  }
  if (!o_bf16) bf16_to_f32({{o16, out.f32(), n}});
  if (lse2) {
    scale_rows(stats, lse2, rows, kLog2e);
    check_launch("attention (cudnn)");
  }
  return true;
}

bool attention_backward_cudnn(const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& dout,
                              Tensor& dq, Tensor& dk, Tensor& dv, const Tensor* out, const Tensor* lse2,
                              std::string* why) {
  Session* ses = session(why);
  if (!ses) return false;
  const Shape sh = shape_of(q, k);
  const size_t ver = ses->api->version;
  if (ver == 91000 || ver == 91001) {
    *why = "cuDNN 9.10.0 / 9.10.1 have a known bug in the attention backward";
    return false;
  }
  if (ver < 91600 && sh.T % 128 != 0) {
    *why = "cuDNN before 9.16 needs a sequence length that is a multiple of 128 for this graph";
    return false;
  }
  const bool saved = out && lse2;
  const Plan* fwd = nullptr;
  if (!saved) {
    fwd = &plan_for(*ses, false, sh);
    if (!fwd->ok) {
      *why = fwd->why;
      return false;
    }
  }
  const Plan& p = plan_for(*ses, true, sh);
  if (!p.ok) {
    *why = p.why;
    return false;
  }
  const int64_t n = sh.B * sh.T * sh.Hq * sh.D, nk = sh.B * sh.T * sh.Hkv * sh.D, rows = sh.B * sh.Hq * sh.T;
  // Scratch: q16, o16, do16, dq16 [n] bf16; dk16, dv16 [nk] bf16; stats and D [rows] fp32; the
  // fp32 dQ accumulator [n]; then the plan's own workspace (the forward's when it runs here).
  const size_t b_half = up256(size_t(n) * 2), b_kv = up256(size_t(nk) * 2), b_rows = up256(size_t(rows) * 4);
  const size_t b_acc = up256(size_t(n) * 4);
  const size_t b_ws = up256(size_t(std::max<int64_t>(p.workspace, fwd ? fwd->workspace : 0)));
  static thread_local GrowOnlyBuffer scratch;
  char* base = scratch.get<char>(4 * b_half + 2 * b_kv + 2 * b_rows + b_acc + b_ws, "attention_backward (cudnn)");
  // With bf16 activations (mixed precision: q, out, dout and the gradients all bf16) cuDNN reads
  // and writes them in place; fp32 ones go through the bf16 copies here.
  const bool bf16 = q.dtype() == DType::BF16;
  uint16_t* q16 = bf16 ? q.data<uint16_t>() : reinterpret_cast<uint16_t*>(base);
  uint16_t* o16 = bf16 && saved ? out->data<uint16_t>() : reinterpret_cast<uint16_t*>(base + b_half);
  uint16_t* do16 = bf16 ? dout.data<uint16_t>() : reinterpret_cast<uint16_t*>(base + 2 * b_half);
  uint16_t* dq16 = bf16 ? dq.data<uint16_t>() : reinterpret_cast<uint16_t*>(base + 3 * b_half);
  uint16_t* dk16 = bf16 ? dk.data<uint16_t>() : reinterpret_cast<uint16_t*>(base + 4 * b_half);
  uint16_t* dv16 = bf16 ? dv.data<uint16_t>() : reinterpret_cast<uint16_t*>(base + 4 * b_half + b_kv);
  float* stats = reinterpret_cast<float*>(base + 4 * b_half + 2 * b_kv);
  float* rowsum = reinterpret_cast<float*>(base + 4 * b_half + 2 * b_kv + b_rows);
  float* acc = reinterpret_cast<float*>(base + 4 * b_half + 2 * b_kv + 2 * b_rows);
  void* ws = base + 4 * b_half + 2 * b_kv + 2 * b_rows + b_acc;
  const char* op = "attention_backward (cudnn)";
  try {
    if (saved) {
      if (!bf16) f32_to_bf16({{q.f32(), q16, n}, {dout.f32(), do16, n}, {out->f32(), o16, n}});
      scale_rows(lse2->f32(), stats, rows, kLn2);
      check_launch(op);
    } else {
      if (!bf16) f32_to_bf16({{q.f32(), q16, n}, {dout.f32(), do16, n}});
      run_forward(*ses, *fwd, q16, k, v, o16, stats, scale, ws);
    }
    if (ses->api->version < 90600) check_cuda(cudaMemsetAsync(acc, 0, size_t(n) * 4), op, "memset (dQ accumulator)");
    float sc = scale, mv = mask_value(*ses->api), one = 1.0f;
    execute(*ses, p, {kQ, kK, kV, kO, kDO, kStats, kDQ, kDK, kDV, kRowSum, kDQAccum, kScale, kMaskValue, kOne},
            {q16, const_cast<uint16_t*>(k.data<uint16_t>()), const_cast<uint16_t*>(v.data<uint16_t>()), o16, do16,
             stats, dq16, dk16, dv16, rowsum, acc, &sc, &mv, &one},
            ws);
  } catch (const CudnnFailure& f) {
    *why = "backward " + f.what;
    mark_failed(p, *why);
    return false;
  }
  if (!bf16) bf16_to_f32({{dq16, dq.f32(), n}, {dk16, dk.f32(), nk}, {dv16, dv.f32(), nk}});
  return true;
}

size_t cudnn_version() {
  std::string why;
  const CudnnApi* a = cudnn_api(&why);
  return a ? a->version : 0;
}

std::string cudnn_attention_graph_check() {
  std::string why;
  const CudnnApi* a = cudnn_api(&why);
  if (!a) return "cuDNN not available: " + why;
  std::string report;
  for (const Shape& sh : {Shape{2, 256, 32, 8, 128}, Shape{2, 256, 8, 8, 64}, Shape{1, 77, 6, 2, 64}}) {
    for (bool backward : {false, true}) {
      std::string line = std::string(backward ? "backward" : "forward ") + " B " + std::to_string(sh.B) + " T " +
                         std::to_string(sh.T) + " heads " + std::to_string(sh.Hq) + "/" + std::to_string(sh.Hkv) +
                         " D " + std::to_string(sh.D) + ": ";
      try {
        GraphBuilder g(*a);
        if (backward) build_backward(g, sh, 0);
        else build_forward(g, sh);
        if (backward) {  // and the variant with a bf16 K view
          GraphBuilder g1(*a);
          build_backward(g1, sh, 1);
        }
        line += "every descriptor finalized";
      } catch (const CudnnFailure& f) {
        line += "FAILED " + f.what;
      }
      report += line + "\n";
    }
  }
  return "cuDNN " + std::to_string(a->version) + "\n" + report;
}

#else  // built without cuDNN's headers

bool attention_cudnn(const Tensor&, const Tensor&, const Tensor&, float, Tensor&, float*, std::string* why) {
  *why = "built without cuDNN headers (cudnn_graph.h was not found at configure time)";
  return false;
}
bool attention_backward_cudnn(const Tensor&, const Tensor&, const Tensor&, float, const Tensor&, Tensor&, Tensor&,
                              Tensor&, const Tensor*, const Tensor*, std::string* why) {
  *why = "built without cuDNN headers (cudnn_graph.h was not found at configure time)";
  return false;
}
size_t cudnn_version() { return 0; }
std::string cudnn_attention_graph_check() {
  return "cuDNN not available: built without cuDNN headers (cudnn_graph.h was not found at configure time)";
}

#endif

}  // namespace mambalm::ops::cuda
