// linear on CUDA and its backward.
// Forward, y[M, N] = x[M, K] w[N, K]^T (+ bias), x and y fp32:
//  - w F32: cuBLAS sgemm in true fp32 (TF32 off), the reference-grade path.
//  - w BF16, M <= 2 (batch-1/2 decode): a bandwidth-bound GEMV that streams each weight row once
//    with 16-byte loads and multiplies it by all M activation rows (fp32 accumulation).
//  - w BF16, larger M (prefill): x is rounded to bf16 and cuBLASLt runs a bf16 x bf16 -> fp32
//    GEMM on the tensor cores with fp32 accumulation.
// Backward, dx = dy w (assigned), dw += dy^T x, db += column sums of dy; precision follows w:
//  - w F32: two cuBLAS sgemms in true fp32 (dw with beta = 1), db by a deterministic column sum.
//  - w BF16 (mixed-precision training, F32 gradients): one pass over dy rounds it to bf16 into
//    scratch and, fused into the same read, sums its columns for db (fixed row chunks, double
//    partial sums added in a fixed order: bit-identical run to run, and from the unrounded dy);
//    x is rounded to bf16 the same way when dw is wanted; then cuBLASLt runs dx = dy w (beta 0)
//    and dw += dy^T x (beta 1, accumulated in place into the F32 gradient), bf16 operands with
//    fp32 accumulation. Shapes the tensor-core path cannot take (K % 8 != 0, unaligned tensors,
//    no cuBLASLt algorithm) run the exact fp32 GEMMs on the bf16-rounded operands instead.
// Everything runs on the per-thread default stream (see core/cuda_memory.cu). Scratch buffers
// grow to their high-water mark during warm-up and are never freed, so a captured decode step
// replays without allocating.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "core/device.h"
#include "ops/cuda/bf16_convert.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/column_sums.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/op_profile.h"

namespace mambalm::ops::cuda {

namespace {

// Largest M served by the GEMV kernel. From M = 3 on cuBLASLt reads the weights as fast (the
// GEMV's activation reads grow with M; measured at M = 4 and 8 it fell to 24-50% of bandwidth).
constexpr int64_t kGemvRows = 2;

void check_blas(cublasStatus_t s, const char* what, const char* op = "linear") {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail(std::string("op ") + op + " (cuda)",
         std::string(what) + " failed with cuBLAS status " + std::to_string(static_cast<int>(s)),
         "is libcublas(Lt) from CUDA 13 on the library path, and is a device visible?");
}

// One cuBLAS handle for the process on the per-thread stream. CUBLAS_DEFAULT_MATH keeps sgemm in
// true fp32 (TF32 would need CUBLAS_TF32_TENSOR_OP_MATH): the CPU comparison wants fp32.
cublasHandle_t blas() {
  static cublasHandle_t handle = nullptr;
  static std::once_flag once;
  static cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  std::call_once(once, [] {
    status = cublasCreate(&handle);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetStream(handle, cudaStreamPerThread);
  });
  check_blas(status, "cublasCreate");
  return handle;
}

cublasLtHandle_t blas_lt() {
  static cublasLtHandle_t handle = nullptr;
  static std::once_flag once;
  static cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  std::call_once(once, [] { status = cublasLtCreate(&handle); });
  check_blas(status, "cublasLtCreate");
  return handle;
}


__global__ void broadcast_rows(const float* __restrict__ bias, float* __restrict__ y, int64_t M, int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = bias ? bias[i % N] : 0.0f;
}

// ---- GEMV (decode) ------------------------------------------------------------------------
// A warp owns R consecutive output rows; each lane walks K in 8-element steps (one 16-byte load
// of bf16 weights per row) strided by the warp, multiplies them with the M activation rows
// (two float4 loads each, L1-resident: every warp of the block reads the same x) and keeps
// M x R fp32 partial sums, reduced across the warp at the end. K % 8 == 0 and 16-byte aligned
// rows are required (checked by the caller).
constexpr int kGemvWarps = 8;

__device__ __forceinline__ void bf16x8_to_f32(const uint4& v, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

// A block of 8 warps owns 8 / KS rows; KS warps share a row, each streaming one slice of K
// (KS = K / 2048 where that divides, so a warp's slice is one round of 8 loads per lane: ~4 KB
// in flight per warp and no long per-warp chains on the 8192- and 16384-wide rows). The first
// round is issued before pdl_wait(): weights do not depend on the previous kernel, so under
// programmatic dependent launch they stream while that kernel finishes; x is read after.
// Partial sums of the KS warps meet in shared memory.
template <int M, int KS>
__global__ void __launch_bounds__(kGemvWarps * 32)
gemv_bf16(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w, const float* __restrict__ bias,
          float* __restrict__ y, int N, int K) {
  constexpr int U = 8;                    // 16-byte loads in flight per lane
  constexpr int kRows = kGemvWarps / KS;  // rows per block
  __shared__ float partial[kGemvWarps][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row = blockIdx.x * kRows + warp / KS, ks = warp % KS;
  const int n = min(row, N - 1);  // rows past N recompute the last row; not stored
  const int slice = K / 8 / KS;   // 16-byte steps of this warp's K slice
  const uint4* wrow = reinterpret_cast<const uint4*>(w + int64_t(n) * K) + ks * slice;
  const float4* xrow = reinterpret_cast<const float4*>(x) + 2 * ks * slice;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  uint4 wv[U];
  auto load_round = [&](int s0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + 32 * u;
      wv[u] = s < slice ? __ldcs(wrow + s) : make_uint4(0, 0, 0, 0);  // streamed once: keep out of L2
    }
  };
  load_round(lane);
  pdl_launch_dependents();
  pdl_wait();
  for (int s0 = lane; s0 < slice; s0 += 32 * U) {
    if (s0 != lane) load_round(s0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + 32 * u;
      if (s >= slice) break;
      float wf[8];
      bf16x8_to_f32(wv[u], wf);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float4* xp = xrow + int64_t(m) * (K / 4) + 2 * s;
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
        const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[m] = fmaf(xv[i], wf[i], acc[m]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = warp_sum(acc[m]);
  if (KS > 1) {
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) partial[warp][m] = acc[m];
    __syncthreads();
    if (ks != 0) return;
#pragma unroll
    for (int m = 0; m < M; ++m) {
      acc[m] = 0.0f;
      for (int j = 0; j < KS; ++j) acc[m] += partial[warp + j][m];
    }
  }
  if (lane == 0 && row < N)
#pragma unroll
    for (int m = 0; m < M; ++m) y[int64_t(m) * N + row] = acc[m] + (bias ? bias[row] : 0.0f);
}

// Launched with programmatic stream serialization (MAMBALM_NO_PDL=1 turns it off, to measure).
// Measured on the H200 (ncu, 2026-11-29) with one warp per row: the 4096-row projections with
// K = 8192 / 16384 streamed at 2.0-3.1 TB/s, the 16384- and 18560-row ones at 3.4 TB/s.
template <int M, int KS>
void launch_gemv_ks(const float* x, const __nv_bfloat16* w, const float* bias, float* y, int N, int K) {
  static const bool pdl = [] {
    const char* v = std::getenv("MAMBALM_NO_PDL");
    return !(v && *v && *v != '0');
  }();
  constexpr int rows_per_block = kGemvWarps / KS;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>((N + rows_per_block - 1) / rows_per_block));
  cfg.blockDim = dim3(kGemvWarps * 32);
  cfg.stream = cudaStreamPerThread;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&cfg, gemv_bf16<M, KS>, x, w, bias, y, N, K), "linear", "GEMV launch");
}

template <int M>
void launch_gemv(const float* x, const __nv_bfloat16* w, const float* bias, float* y, int N, int K) {
  // Warps per row: one per 2048 columns (K a multiple of 2048), at most 8; else one.
  const int ks = K % 2048 == 0 ? K / 2048 : 1;
  if (ks >= 8) launch_gemv_ks<M, 8>(x, w, bias, y, N, K);
  else if (ks >= 4) launch_gemv_ks<M, 4>(x, w, bias, y, N, K);
  else if (ks >= 2) launch_gemv_ks<M, 2>(x, w, bias, y, N, K);
  else launch_gemv_ks<M, 1>(x, w, bias, y, N, K);
}

// Scalar fallback for bf16 weights whose rows are not 16-byte aligned (K % 8 != 0).
__global__ void linear_bf16_naive(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                  const float* __restrict__ bias, float* __restrict__ y, int64_t M, int64_t N,
                                  int64_t K) {
  const int lane = threadIdx.x & 31;
  for (int64_t o = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32; o < M * N;
       o += int64_t(gridDim.x) * blockDim.x / 32) {
    const int64_t m = o / N, n = o % N;
    float acc = 0.0f;
    for (int64_t k = lane; k < K; k += 32) acc += x[m * K + k] * __bfloat162float(w[n * K + k]);
    acc = warp_sum(acc);
    if (lane == 0) y[o] = acc + (bias ? bias[n] : 0.0f);
  }
}

// ---- GEMM (prefill) through cuBLASLt --------------------------------------------------------
// Row-major y[M, N] = x[M, K] w[N, K]^T is column-major Y'[N, M] = W'^T X': A = w (K x N col-major,
// transposed), B = x (K x M col-major). The heuristic's choice is cached per shape.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool out_of_place = false;  // the algorithm writes D apart from C (linear_onto's epilogue add)
};

constexpr size_t kLtWorkspace = size_t(64) << 20;

// The cuBLASLt workspace, shared by the forward and the backward GEMMs (one stream, so never in
// use twice at once). Always kLtWorkspace bytes: allocated once, its address never changes, so
// captured steps may keep it.
void* lt_workspace() {
  static GrowOnlyBuffer ws;
  return ws.get(kLtWorkspace, "linear");
}

// ---- Which algorithm each GEMM shape runs ------------------------------------------------
// The heuristic's top candidates are timed once per shape on the call's own operands (never
// inside a capture: the warm-up steps plan every decode shape first) and the fastest is kept.
// For skinny products (decode batches of 9..256 rows) the first heuristic choice was seen to be
// far from the best; at the training presets' shapes timing made the step 0.9-1.5% shorter (H200,
// bench/NOTES.md). Timing can choose differently from process to process, and algorithms sum in
// different orders, so every choice is recorded (gemm_choices) and a resumed training run pins
// its predecessor's (pin_gemm_choices): the same algorithms, the same bits.
constexpr int kLtCandidates = 8;

// Off: the heuristic's first choice, which depends only on the shape, device and library.
bool g_autotune = true;

struct Choice {
  cublasLtMatmulAlgo_t algo{};
  int rank = 0, of = 1;  // the chosen candidate's place in the heuristic's list, and the list's length
};
std::map<std::string, Choice>& chosen_algos() {  // every plan's, by shape key
  static std::map<std::string, Choice> m;
  return m;
}
std::map<std::string, Choice>& pinned_algos() {  // a resumed run's, by shape key
  static std::map<std::string, Choice> m;
  return m;
}

// The choice a new plan starts with: the pinned one where it is valid for the plan's
// descriptors (then `pinned`), else the heuristic's first of `found`.
Choice initial_choice(const std::string& key, const LtPlan& p, const cublasLtMatmulAlgo_t& first, int found,
                      bool& pinned) {
  pinned = false;
  auto it = pinned_algos().find(key);
  if (it == pinned_algos().end()) return Choice{first, 0, found};
  cublasLtMatmulHeuristicResult_t check_result = {};
  if (cublasLtMatmulAlgoCheck(blas_lt(), p.op, p.a, p.b, p.c, p.c, &it->second.algo, &check_result) !=
      CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "warning: the saved GEMM algorithm for %s does not run here; choosing again\n", key.c_str());
    return Choice{first, 0, found};
  }
  pinned = true;
  return it->second;
}

// Times each candidate with run(algo), which queues one GEMM (a warm-up, then two timed runs),
// and returns the index of the fastest that ran.
template <class Run>
int fastest(const std::vector<cublasLtMatmulAlgo_t>& candidates, Run run) {
  StreamTimer timer("linear (GEMM tuning)");
  float best = 1e30f;
  int best_i = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    float total = 0.0f;
    bool ok = true;
    for (int rep = 0; rep < 3 && ok; ++rep) {
      const float ms = timer.ms([&] { ok = run(candidates[i]) == CUBLAS_STATUS_SUCCESS; });
      if (rep > 0) total += ms;
    }
    if (ok && total < best) {
      best = total;
      best_i = int(i);
    }
  }
  return best_i;
}

std::vector<cublasLtMatmulAlgo_t> usable(const cublasLtMatmulHeuristicResult_t* results, int found) {
  std::vector<cublasLtMatmulAlgo_t> out;
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) out.push_back(results[i].algo);
  return out;
}

// yt: y's type, CUDA_R_32F or CUDA_R_16BF (bf16 activations of mixed-precision training).
// onto: linear_onto's residual (fp32 [M, N]), added by the epilogue (C = onto, beta 1, D = y
// apart from C). Such a plan is its own: its candidates are timed as it runs, reading C, and
// only algorithms that write D apart from C can win (others fail the timing run). The plain
// plan's choice, timed with beta 0 and D = C, had run these GEMMs at 600-690 TFLOP/s where the
// same shapes without the add ran at 750-800 (H100, bench/NOTES.md).
const LtPlan& lt_plan(int64_t M, int64_t N, int64_t K, const void* w, const void* xb, void* y, cudaDataType_t yt,
                      void* ws, const float* onto = nullptr) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int, bool>, LtPlan> plans;
  auto key = std::make_tuple(M, N, K, int(yt), onto != nullptr);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  check(!cuda_capturing(), "op linear (cuda)", "a new GEMM shape inside a captured step",
        "run the step once uncaptured first so that every shape is planned");
  LtPlan p;
  check_blas(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  check_blas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)), "set TRANSA");
  check_blas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)), "set TRANSB");
  check_blas(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(K), uint64_t(N), K), "layout A");
  check_blas(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(K), uint64_t(M), K), "layout B");
  check_blas(cublasLtMatrixLayoutCreate(&p.c, yt, uint64_t(N), uint64_t(M), N), "layout C");
  cublasLtMatmulPreference_t pref = nullptr;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const size_t wsb = kLtWorkspace;
  check_blas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)),
             "preference workspace");
  cublasLtMatmulHeuristicResult_t results[kLtCandidates] = {};
  int found = 0;
  check_blas(cublasLtMatmulAlgoGetHeuristic(blas_lt(), p.op, p.a, p.b, p.c, p.c, pref, kLtCandidates, results, &found),
             "cublasLtMatmulAlgoGetHeuristic");
  cublasLtMatmulPreferenceDestroy(pref);
  if (found == 0) fail("op linear (cuda)", "cuBLASLt has no bf16 algorithm for M " + std::to_string(M) + ", N " +
                                               std::to_string(N) + ", K " + std::to_string(K));
  const std::string shape =
      std::to_string(M) + "," + std::to_string(N) + "," + std::to_string(K) + "," + std::to_string(int(yt));
  const std::string name = (onto ? "o," : "f,") + shape;
  bool pinned = false;
  Choice choice = initial_choice(name, p, results[0].algo, found, pinned);
  // A run saved before the add had plans of its own ran it with the plain plan's algorithm: the
  // same one again, the same bits.
  if (onto && !pinned) choice = initial_choice("f," + shape, p, results[0].algo, found, pinned);
  p.algo = choice.algo;
  if (!pinned && found > 1 && g_autotune) {
    const std::vector<cublasLtMatmulAlgo_t> candidates = usable(results, found);
    const float alpha = 1.0f, beta = onto ? 1.0f : 0.0f;
    const void* c = onto ? static_cast<const void*>(onto) : y;
    choice.rank = fastest(candidates, [&](const cublasLtMatmulAlgo_t& algo) {
      return cublasLtMatmul(blas_lt(), p.op, &alpha, w, p.a, xb, p.b, &beta, c, p.c, y, p.c, &algo, ws, kLtWorkspace,
                            cudaStreamPerThread);
    });
    p.algo = choice.algo = candidates[size_t(choice.rank)];
  }
  chosen_algos()[name] = choice;
  int32_t out_of_place = 0;
  size_t written = 0;
  p.out_of_place = cublasLtMatmulAlgoCapGetAttribute(&p.algo, CUBLASLT_ALGO_CAP_OUT_OF_PLACE_RESULT_SUPPORT,
                                                     &out_of_place, sizeof(out_of_place), &written) ==
                       CUBLAS_STATUS_SUCCESS &&
                   out_of_place != 0;
  return plans.emplace(key, p).first->second;
}

// Queues the GEMM of `launch`; while profiling (ops/op_profile.h) also times it alone with CUDA
// events and books it by shape: kind, rows x columns of its output x the summed dimension, the
// output's type, "+=" when it adds onto C.
template <class Launch>
void profiled_gemm(const char* kind, int64_t rows, int64_t cols, int64_t inner, bool out16, bool adds, Launch launch) {
  if (!op_profiling() || cuda_capturing()) {
    launch();
    return;
  }
  static StreamTimer timer("linear (profile)");
  const float ms = timer.ms(launch);
  const std::string key = std::string(kind) + " " + std::to_string(rows) + "x" + std::to_string(cols) + "x" +
                          std::to_string(inner) + (out16 ? " bf16" : " f32") + (adds ? " +=" : "");
  add_gemm_time(key, 1e-3 * ms, 2.0 * double(rows) * double(cols) * double(inner));
}

// x [M, K] rounded to bf16 into a scratch buffer (reused by the next call).
const __nv_bfloat16* rounded_x(const Tensor& x) {
  static GrowOnlyBuffer xb_scratch;
  const int64_t n = x.numel();
  auto* xb = xb_scratch.get<__nv_bfloat16>(size_t(n), "linear");
  f32_to_bf16({{x.f32(), reinterpret_cast<uint16_t*>(xb), n}});
  return xb;
}

// y [M, N] = xb [M, K] wb [N, K]^T (+ b) on cuBLASLt: bf16 operands, fp32 accumulation, y fp32
// or (yt CUDA_R_16BF, no bias) bf16. With `onto` (fp32 [M, N], no bias) y = onto + the product,
// added by the epilogue (C = onto, beta 1): D = acc + C in fp32, the rounding of a separate add.
void lt_forward(const __nv_bfloat16* xb, const __nv_bfloat16* wb, const float* b, void* y, int64_t M, int64_t N,
                int64_t K, cudaDataType_t yt = CUDA_R_32F, const float* onto = nullptr) {
  void* ws = lt_workspace();
  const LtPlan& p = lt_plan(M, N, K, wb, xb, y, yt, ws, onto);  // may tune: before y gets its bias
  float beta = 0.0f;
  const void* c = y;
  if (b) {  // the bias broadcast into y first, accumulated onto (beta = 1), as on the CPU
    broadcast_rows<<<blocks_for(M * N), kThreads>>>(b, static_cast<float*>(y), M, N);
    check_launch("linear");
    beta = 1.0f;
  } else if (onto) {
    c = onto;
    beta = 1.0f;
  }
  const float alpha = 1.0f;
  profiled_gemm("fwd", M, N, K, yt == CUDA_R_16BF, beta != 0.0f, [&] {
    check_blas(cublasLtMatmul(blas_lt(), p.op, &alpha, wb, p.a, xb, p.b, &beta, c, p.c, y, p.c, &p.algo, ws,
                              kLtWorkspace, cudaStreamPerThread),
               "cublasLtMatmul");
  });
}

// Whether the tensor-core GEMM can take y[M, N] = x[M, K] w[N, K]^T as far as w and x go: BF16
// w, K a multiple of 8 (16-byte rows), more rows than the GEMV serves, 32-bit dimensions, both
// tensors 16-byte aligned. Each caller adds what its own outputs need (N % 8, y's alignment).
bool lt_takes(const Tensor& x, const Tensor& w, int64_t M, int64_t N, int64_t K) {
  return w.dtype() == DType::BF16 && K > 0 && K % 8 == 0 && M > kGemvRows && M <= INT_MAX && N <= INT_MAX &&
         K <= INT_MAX && aligned16(w.raw()) && aligned16(x.raw());
}

// linear with bf16 x and/or y (BF16 w): the tensor-core GEMM reads x and writes y as they are;
// shapes it cannot take go through fp32 copies of them and the fp32-activation paths below
// (x is exact in fp32, and y's only extra step is its rounding to bf16).
void linear_bf16_activations(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, int64_t M, int64_t N,
                             int64_t K) {
  const bool y16 = y.dtype() == DType::BF16;
  const bool gemm = lt_takes(x, w, M, N, K) && N % 8 == 0 && aligned16(y.raw()) && !(bias && y16);
  if (gemm) {
    const auto* wb = w.data<__nv_bfloat16>();
    const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : rounded_x(x);
    lt_forward(xb, wb, bias ? bias->f32() : nullptr, y.raw(), M, N, K, y16 ? CUDA_R_16BF : CUDA_R_32F);
    return;
  }
  static GrowOnlyBuffer x32_buf, y32_buf;
  const Tensor x32 = as_f32(x, x32_buf, "linear");
  Tensor y32 = y16 ? f32_scratch(y32_buf, y.shape(), "linear") : y;
  linear(x32, w, bias, y32);
  if (y16) f32_to_bf16({{y32.f32(), y.data<uint16_t>(), y.numel()}});
}

}  // namespace

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const int64_t K = x.dim(-1);
  const int64_t N = w.dim(0);
  const int64_t M = K > 0 ? x.numel() / K : y.numel() / (N > 0 ? N : 1);
  if (M == 0 || N == 0) return;
  MAMBALM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "op linear (cuda)",
                "dimensions beyond 2^31 are not supported by this path");
  if (x.dtype() == DType::BF16 || y.dtype() == DType::BF16) return linear_bf16_activations(x, w, bias, y, M, N, K);
  const float* b = bias ? bias->f32() : nullptr;
  if (K == 0) {
    broadcast_rows<<<blocks_for(M * N), kThreads>>>(b, y.f32(), M, N);
    check_launch("linear");
    return;
  }

  // GEMM paths broadcast the bias into y first and accumulate onto it (beta = 1), as on the CPU.
  auto bias_then_beta = [&]() -> float {
    if (!bias) return 0.0f;
    broadcast_rows<<<blocks_for(M * N), kThreads>>>(b, y.f32(), M, N);
    check_launch("linear");
    return 1.0f;
  };
  if (w.dtype() == DType::F32) {
    const float beta = bias_then_beta(), alpha = 1.0f;
    check_blas(cublasSgemm(blas(), CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha, w.f32(), int(K), x.f32(),
                           int(K), &beta, y.f32(), int(N)),
               "cublasSgemm");
    return;
  }

  const auto* wb = w.data<__nv_bfloat16>();
  const bool vector_ok = K % 8 == 0 && reinterpret_cast<uintptr_t>(wb) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(x.f32()) % 16 == 0;
  if (M <= kGemvRows && vector_ok) {
    if (M == 1) launch_gemv<1>(x.f32(), wb, b, y.f32(), int(N), int(K));
    else launch_gemv<2>(x.f32(), wb, b, y.f32(), int(N), int(K));
    check_launch("linear (gemv)");
    return;
  }
  if (!vector_ok) {
    linear_bf16_naive<<<blocks_for(M * N * 32), kThreads>>>(x.f32(), wb, b, y.f32(), M, N, K);
    check_launch("linear (bf16, unaligned)");
    return;
  }

  lt_forward(rounded_x(x), wb, b, y.f32(), M, N, K);
}

// The tensor-core GEMM adds the residual in its epilogue where it takes the shape (BF16 w, no
// bias) and its algorithm writes D apart from C; elsewhere the product and then a separate add,
// as on the CPU.
void linear_onto(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& residual, Tensor& y) {
  const int64_t K = x.dim(-1);
  const int64_t N = w.dim(0);
  const int64_t M = K > 0 ? x.numel() / K : y.numel() / (N > 0 ? N : 1);
  if (M == 0 || N == 0) return;
  const bool gemm = !bias && lt_takes(x, w, M, N, K) && N % 8 == 0 && aligned16(y.raw()) && aligned16(residual.raw());
  if (!gemm) {
    linear(x, w, bias, y);
    add(residual, y, y);
    return;
  }
  const auto* wb = w.data<__nv_bfloat16>();
  const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : rounded_x(x);  // rounded once
  const bool fused = lt_plan(M, N, K, wb, xb, y.raw(), CUDA_R_32F, lt_workspace(), residual.f32()).out_of_place;
  lt_forward(xb, wb, nullptr, y.raw(), M, N, K, CUDA_R_32F, fused ? residual.f32() : nullptr);
  if (!fused) add(residual, y, y);
}

// Each part is the GEMM of its block of w's rows (16-byte aligned when K % 8 == 0) with x, which
// is rounded to bf16 once for all of them (or read as it is when it is bf16 already), written in
// the part's dtype (F32, or BF16: mixed precision's conv input); elsewhere
// (F32 weights, GEMV-sized M, unaligned rows) one linear per part on row views of w and bias.
void linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::initializer_list<Tensor*> parts) {
  const int64_t K = x.dim(-1), N = w.dim(0);
  const int64_t M = K > 0 ? x.numel() / K : 0;
  const bool shared_x = lt_takes(x, w, M, N, K);
  if (!shared_x) {
    int64_t row = 0;
    for (Tensor* p : parts) {
      const int64_t n = p->dim(-1);
      const Tensor w_rows = w.slice0(row, row + n);  // [n, K]
      const Tensor b_rows = bias ? bias->slice0(row, row + n) : Tensor();
      linear(x, w_rows, bias ? &b_rows : nullptr, *p);
      row += n;
    }
    return;
  }
  const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : rounded_x(x);
  const auto* wb = w.data<__nv_bfloat16>();
  int64_t row = 0;
  for (Tensor* p : parts) {
    const int64_t n = p->dim(-1);
    const bool p16 = p->dtype() == DType::BF16;
    if (n > 0 && p16 && (bias || n % 8 != 0 || !aligned16(p->raw()))) {  // linear's fp32 copy path
      const Tensor w_rows = w.slice0(row, row + n);  // [n, K]
      const Tensor b_rows = bias ? bias->slice0(row, row + n) : Tensor();
      linear(x, w_rows, bias ? &b_rows : nullptr, *p);
    } else if (n > 0) {
      lt_forward(xb, wb + row * K, bias ? bias->f32() + row : nullptr, p->raw(), M, n, K, p16 ? CUDA_R_16BF : CUDA_R_32F);
    }
    row += n;
  }
}

// ---- backward --------------------------------------------------------------------------------

namespace {

constexpr int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Column pass over a row-major [rows, cols] fp32 matrix: 256 threads = 32 column threads (VEC
// adjacent columns each, one 16-byte load when VEC = 4) x 8 row groups; blockIdx.y picks a chunk
// of `rows_per_chunk` rows, walked by row group g as rows g, g + 8, ... Optionally (kRound) every
// element is rounded to bf16 into dst [rows, ldd]; optionally (kSum) each column of the chunk is
// summed in double (per row group, then the 8 groups in order) into partial[chunk, cols]. The
// order depends on rows and cols only (never on VEC, the device or timing), so sums are
// bit-identical run to run; add_chunk_sums() finishes them.

template <int VEC, bool kRound, bool kSum>
__global__ void __launch_bounds__(kColThreads * kRowGroups)
round_colsum(const float* __restrict__ src, int64_t rows, int64_t cols, __nv_bfloat16* __restrict__ dst, int64_t ldd,
             int64_t rows_per_chunk, double* __restrict__ partial) {
  __shared__ double red[kSum ? kRowGroups : 1][kColThreads * VEC];
  const int tx = threadIdx.x % kColThreads, ty = threadIdx.x / kColThreads;
  const int64_t c = (int64_t(blockIdx.x) * kColThreads + tx) * VEC;  // VEC = 4 needs cols % 4 == 0
  const bool active = c < cols;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = min(rows, r0 + rows_per_chunk);
  double acc[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) acc[k] = 0.0;
  if (active) {
    for (int64_t r = r0 + ty; r < r1; r += kRowGroups) {
      float v[VEC];
      if constexpr (VEC == 4) {
        const float4 q = *reinterpret_cast<const float4*>(src + r * cols + c);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
      } else {
        v[0] = src[r * cols + c];
      }
      if constexpr (kRound) {
        if constexpr (VEC == 4) {
          __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
          uint2 packed;
          packed.x = *reinterpret_cast<const uint32_t*>(&lo);
          packed.y = *reinterpret_cast<const uint32_t*>(&hi);
          *reinterpret_cast<uint2*>(dst + r * ldd + c) = packed;  // ldd % 4 == 0: 8-byte aligned
        } else {
          dst[r * ldd + c] = __float2bfloat16_rn(v[0]);
        }
      }
      if constexpr (kSum) {
#pragma unroll
        for (int k = 0; k < VEC; ++k) acc[k] += double(v[k]);
      }
    }
  }
  if constexpr (kSum) {
#pragma unroll
    for (int k = 0; k < VEC; ++k) red[ty][tx * VEC + k] = acc[k];
    __syncthreads();
    if (ty == 0 && active) {
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        double s = 0.0;
#pragma unroll
        for (int g = 0; g < kRowGroups; ++g) s += red[g][tx * VEC + k];
        partial[int64_t(blockIdx.y) * cols + c + k] = s;
      }
    }
  }
}


// One column pass (see round_colsum) over src [rows, cols]: bf16 copy into dst (if given, leading
// dim ldd) and/or column sums added to sum_out (if given).
void column_pass(const float* src, int64_t rows, int64_t cols, __nv_bfloat16* dst, int64_t ldd, float* sum_out,
                 const char* op) {
  if (rows == 0 || cols == 0 || (!dst && !sum_out)) return;
  if (dst && !sum_out && ldd == cols) {  // a dense copy: the bandwidth-bound conversion kernel
    f32_to_bf16({{src, reinterpret_cast<uint16_t*>(dst), rows * cols}});
    return;
  }
  const int64_t rpc = rows_per_chunk(rows, cols), chunks = (rows + rpc - 1) / rpc;
  static GrowOnlyBuffer partial_buf;
  double* partial = sum_out ? partial_buf.get<double>(size_t(chunks * cols), op) : nullptr;
  const bool vec = cols % 4 == 0 && aligned16(src) && (!dst || (ldd % 4 == 0 && reinterpret_cast<uintptr_t>(dst) % 8 == 0));
  const int per_block = kColThreads * (vec ? 4 : 1);
  const dim3 grid(unsigned((cols + per_block - 1) / per_block), unsigned(chunks));
  const int threads = kColThreads * kRowGroups;
#define MAMBALM_COLUMN_PASS(V)                                                                                   \
  if (dst && sum_out) round_colsum<V, true, true><<<grid, threads>>>(src, rows, cols, dst, ldd, rpc, partial);   \
  else if (dst) round_colsum<V, true, false><<<grid, threads>>>(src, rows, cols, dst, ldd, rpc, partial);        \
  else round_colsum<V, false, true><<<grid, threads>>>(src, rows, cols, dst, ldd, rpc, partial);
  if (vec) {
    MAMBALM_COLUMN_PASS(4)
  } else {
    MAMBALM_COLUMN_PASS(1)
  }
#undef MAMBALM_COLUMN_PASS
  check_launch(op);
  if (sum_out) {
    add_chunk_sums<<<blocks_for(cols), kThreads>>>(partial, chunks, cols, sum_out);
    check_launch(op);
  }
}

// bf16 -> fp32 (exact) and fp32 -> bf16 -> fp32 (the rounding the tensor-core path applies), for
// the fp32 fallback of bf16 weights.
__global__ void widen_bf16(const __nv_bfloat16* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}
__global__ void round_trip_bf16(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(__float2bfloat16_rn(x[i]));
}

// Largest power of two (<= 256) dividing the address: cuBLASLt's heuristic assumes 256-byte
// aligned operands unless told otherwise, and weights or gradients may be views at smaller
// alignment.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

// A column-major cuBLASLt GEMM D[m, n] = op(A) op(B) (+ beta C, C = D), A and B bf16, C/D fp32
// (or bf16: ct), fp32 compute. Its algorithm is chosen as the forward's (timed or the
// heuristic's first, or pinned), keyed by everything the heuristic sees: shape, alignment, type.
struct LtGemm {
  cublasOperation_t ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  uint32_t align_a, align_b, align_c;
  cudaDataType_t ct = CUDA_R_32F;
  auto key() const {
    return std::make_tuple(int(ta), int(tb), m, n, k, lda, ldb, ldc, align_a, align_b, align_c, int(ct));
  }
};

struct LtBackwardPlan {
  LtPlan p;
  bool ok = false;  // false: cuBLASLt has no algorithm for this GEMM (use the fp32 fallback)
  std::string name;                              // the shape's key in chosen_algos
  std::vector<cublasLtMatmulAlgo_t> candidates;  // to time at the first run (tuning, nothing pinned)
  int64_t c_bytes = 0;                           // C's size: the timing's scratch output
  int64_t m = 0, n = 0, k = 0;                   // the column-major GEMM's (for the profile)
  bool dw = false, c16 = false;                  // B transposed: the weight gradient; C bf16
};

// The plan for g, made at its first call; its first run (lt_run) may still time its algorithm.
LtBackwardPlan& lt_plan_backward(const LtGemm& g) {
  static std::map<decltype(g.key()), LtBackwardPlan> plans;
  auto it = plans.find(g.key());
  if (it != plans.end()) return it->second;
  check(!cuda_capturing(), "op linear_backward (cuda)", "a new GEMM shape inside a captured step",
        "run the step once uncaptured first so that every shape is planned");
  const char* op = "linear_backward";
  LtBackwardPlan bp;
  LtPlan& p = bp.p;
  check_blas(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate", op);
  check_blas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &g.ta, sizeof(g.ta)), "set TRANSA", op);
  check_blas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &g.tb, sizeof(g.tb)), "set TRANSB", op);
  const bool an = g.ta == CUBLAS_OP_N, bn = g.tb == CUBLAS_OP_N;
  check_blas(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(an ? g.m : g.k), uint64_t(an ? g.k : g.m), g.lda),
             "layout A", op);
  check_blas(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(bn ? g.k : g.n), uint64_t(bn ? g.n : g.k), g.ldb),
             "layout B", op);
  check_blas(cublasLtMatrixLayoutCreate(&p.c, g.ct, uint64_t(g.m), uint64_t(g.n), g.ldc), "layout C", op);
  cublasLtMatmulPreference_t pref = nullptr;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "preference", op);
  const size_t wsb = kLtWorkspace;
  check_blas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)),
             "preference workspace", op);
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, g.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, g.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, g.align_c},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, g.align_c}};
  for (const auto& [attr, bytes] : aligns)
    check_blas(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)), "preference alignment", op);
  cublasLtMatmulHeuristicResult_t results[kLtCandidates] = {};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(blas_lt(), p.op, p.a, p.b, p.c, p.c, pref, kLtCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  bp.ok = st == CUBLAS_STATUS_SUCCESS && found > 0 && results[0].state == CUBLAS_STATUS_SUCCESS;
  bp.m = g.m, bp.n = g.n, bp.k = g.k, bp.dw = g.tb == CUBLAS_OP_T, bp.c16 = g.ct == CUDA_R_16BF;
  if (bp.ok) {
    const auto k = g.key();
    bp.name = "b";
    std::apply([&](auto... v) { ((bp.name += "," + std::to_string(int64_t(v))), ...); }, k);
    bool pinned = false;
    const Choice choice = initial_choice(bp.name, p, results[0].algo, found, pinned);
    p.algo = choice.algo;
    chosen_algos()[bp.name] = choice;
    if (!pinned && found > 1 && g_autotune) bp.candidates = usable(results, found);
    bp.c_bytes = g.ldc * g.n * (g.ct == CUDA_R_16BF ? 2 : 4);
  }
  return plans.emplace(g.key(), bp).first->second;
}

// Times bp's candidates on the call's operands into a scratch C (the real C may be a gradient
// being accumulated), once; without memory for the scratch, the heuristic's first stays.
void lt_tune_backward(LtBackwardPlan& bp, const void* a, const void* b, float beta) {
  std::vector<cublasLtMatmulAlgo_t> candidates;
  candidates.swap(bp.candidates);
  void* scratch = nullptr;
  if (cudaMalloc(&scratch, size_t(bp.c_bytes)) != cudaSuccess) {
    cudaGetLastError();  // clears the failed allocation's error
    return;
  }
  const float alpha = 1.0f;
  const int rank = fastest(candidates, [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(blas_lt(), bp.p.op, &alpha, a, bp.p.a, b, bp.p.b, &beta, scratch, bp.p.c, scratch, bp.p.c,
                          &algo, lt_workspace(), kLtWorkspace, cudaStreamPerThread);
  });
  check_cuda(cudaFree(scratch), "linear_backward", "cudaFree");
  bp.p.algo = candidates[size_t(rank)];
  chosen_algos()[bp.name] = Choice{bp.p.algo, rank, int(candidates.size())};
}

void lt_run(LtBackwardPlan& bp, const void* a, const void* b, float beta, void* c) {
  if (!bp.candidates.empty() && !cuda_capturing()) lt_tune_backward(bp, a, b, beta);
  const float alpha = 1.0f;
  // Column-major D [m, n]: the row-major output is [n, m] (dx [M, K], dw [N, K]), summed over k.
  profiled_gemm(bp.dw ? "dw" : "dx", bp.n, bp.m, bp.k, bp.c16, beta != 0.0f, [&] {
    check_blas(cublasLtMatmul(blas_lt(), bp.p.op, &alpha, a, bp.p.a, b, bp.p.b, &beta, c, bp.p.c, c, bp.p.c,
                              &bp.p.algo, lt_workspace(), kLtWorkspace, cudaStreamPerThread),
               "cublasLtMatmul", "linear_backward");
  });
}

}  // namespace

// Row-major operands seen column-major (as the forward): dy [M, N] is dy' [N x M] (ld N), w [N, K]
// is w' [K x N] (ld K), x [M, K] is x' [K x M] (ld K). Then
//   dx' [K x M] = w' dy'              (no transposes),
//   dw' [K x N] = x' (dy')^T + dw'    (B transposed, beta 1).
namespace {

// dst row r = src row r, n 16-byte vectors each (a bf16 column block of dy into its columns of
// the GEMM's operand; row strides in vectors). blockIdx.x walks the rows; each thread loads up to
// four vectors of a row before it stores them, so that a warp has 2 KiB in flight.
__global__ void copy_row_vectors(const uint4* __restrict__ src, int64_t src_ld, uint4* __restrict__ dst,
                                 int64_t dst_ld, int64_t rows, int n) {
  constexpr int kAhead = 4;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const uint4* s = src + r * src_ld;
    uint4* d = dst + r * dst_ld;
    uint4 v[kAhead];
#pragma unroll
    for (int k = 0; k < kAhead; ++k) {
      const int c = threadIdx.x + k * blockDim.x;
      if (c < n) v[k] = __ldg(s + c);
    }
#pragma unroll
    for (int k = 0; k < kAhead; ++k) {
      const int c = threadIdx.x + k * blockDim.x;
      if (c < n) d[c] = v[k];
    }
    for (int c = threadIdx.x + kAhead * blockDim.x; c < n; c += blockDim.x) d[c] = __ldg(s + c);
  }
}

// rows x cols bf16 from src (rows of cols) into dst's columns (rows of ldd): 16-byte vectors when
// widths, strides and both bases allow, else cudaMemcpy2DAsync (which moved Mamba-2's dz and dxBC
// blocks at about half the copy bandwidth, before its backward wrote them into one tensor).
void copy_bf16_block(const void* src, int64_t rows, int64_t cols, __nv_bfloat16* dst, int64_t ldd, const char* op) {
  if (rows == 0 || cols == 0) return;
  if (cols % 8 == 0 && ldd % 8 == 0 && cols / 8 <= INT_MAX && aligned16(src) && aligned16(dst)) {
    const unsigned grid = unsigned(std::min<int64_t>(rows, 132 * 16));
    copy_row_vectors<<<grid, 256>>>(static_cast<const uint4*>(src), cols / 8, reinterpret_cast<uint4*>(dst), ldd / 8,
                                    rows, int(cols / 8));
    check_launch(op);
    return;
  }
  check_cuda(cudaMemcpy2DAsync(dst, size_t(ldd) * 2, src, size_t(cols) * 2, size_t(cols) * 2, size_t(rows),
                               cudaMemcpyDeviceToDevice, cudaStreamPerThread),
             op, "cudaMemcpy2DAsync");
}

// dy as consecutive column blocks of one [M, N] matrix: (pointer, width) per block, each block
// fp32, or bf16 (mixed precision: Mamba-2's conv input gradient).
struct DyBlock {
  const void* p;
  int64_t cols;
  bool bf16 = false;
};

// The blocks with every bf16 one widened to fp32 in scratch (the paths that sum dy's columns or
// run the fp32 GEMMs; the values are exact in fp32).
std::vector<DyBlock> widened(const std::vector<DyBlock>& blocks, int64_t M, const char* op) {
  int64_t total = 0;
  for (const DyBlock& b : blocks) total += b.bf16 ? M * b.cols : 0;
  static GrowOnlyBuffer buf;
  float* wide = total > 0 ? buf.get<float>(size_t(total), op) : nullptr;
  std::vector<DyBlock> out;
  for (const DyBlock& b : blocks) {
    if (!b.bf16) {
      out.push_back(b);
      continue;
    }
    bf16_to_f32({{static_cast<const uint16_t*>(b.p), wide, M * b.cols}});
    out.push_back({wide, b.cols});
    wide += M * b.cols;
  }
  return out;
}

bool any_bf16(const std::vector<DyBlock>& blocks) {
  return std::any_of(blocks.begin(), blocks.end(), [](const DyBlock& b) { return b.bf16; });
}

// dy [M, N] in one piece: the blocks copied side by side into scratch (the paths below that
// need a contiguous dy).
const float* joined_dy(const std::vector<DyBlock>& blocks, int64_t M, int64_t N, const char* op) {
  if (blocks.size() == 1) return static_cast<const float*>(blocks[0].p);
  static GrowOnlyBuffer buf;
  float* dy = buf.get<float>(size_t(M * N), op);
  int64_t col = 0;
  for (const DyBlock& b : blocks) {
    if (b.cols > 0 && M > 0)
      check_cuda(cudaMemcpy2DAsync(dy + col, size_t(N) * 4, b.p, size_t(b.cols) * 4, size_t(b.cols) * 4, size_t(M),
                                   cudaMemcpyDeviceToDevice, cudaStreamPerThread),
                 op, "cudaMemcpy2DAsync");
    col += b.cols;
  }
  return dy;
}

// M: the rows of dy and x (leading dims flattened). x is F32, or BF16 (with BF16 w: mixed
// precision's block norms write the mixers' input in bf16), which the tensor-core GEMM reads as it
// is and the fp32 GEMMs through an exact fp32 copy.
void linear_backward_blocks(std::vector<DyBlock> blocks, int64_t M, const Tensor& x, const Tensor& w,
                            Tensor* dx, Tensor* dw, Tensor* db, bool accumulate_dx, bool assign_dw, const char* op) {
  const int64_t N = w.dim(0), K = w.dim(1);
  MAMBALM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, std::string("op ") + op + " (cuda)",
                "dimensions beyond 2^31 are not supported by this path");
  bool want_dx = dx && dx->numel() > 0;  // then M > 0 and K > 0
  const bool want_dw = dw && M > 0 && N > 0 && K > 0;
  const bool want_db = db && M > 0 && N > 0;
  if (want_dx && N == 0) {  // an empty sum: dx = 0 (or unchanged)
    if (!accumulate_dx) check_cuda(cudaMemsetAsync(dx->f32(), 0, dx->nbytes(), cudaStreamPerThread), op, "cudaMemsetAsync");
    want_dx = false;
  }
  const float dx_beta = accumulate_dx ? 1.0f : 0.0f, dw_beta = assign_dw ? 0.0f : 1.0f;
  if (!want_dx && !want_dw && !want_db) return;
  float* dbp = want_db ? db->f32() : nullptr;
  if (want_db && any_bf16(blocks)) blocks = widened(blocks, M, op);  // db sums fp32 columns

  if (w.dtype() == DType::BF16 && (want_dx || want_dw)) {
    const auto* wb = w.data<__nv_bfloat16>();
    // dy is rounded into rows of Npad bf16 (16-byte aligned rows whatever N is); K % 8 == 0
    // keeps w's rows, dx and dw 16-byte aligned, as the tensor cores' loads and stores want.
    const int64_t Npad = round_up(N, 8);
    const bool x16 = x.dtype() == DType::BF16;  // read in place by the dw GEMM
    bool lt = K % 8 == 0 && aligned16(wb) && (!want_dx || aligned16(dx->raw())) &&
              (!want_dw || (aligned16(dw->raw()) && (!x16 || aligned16(x.raw()))));
    LtBackwardPlan* pdx = nullptr;
    LtBackwardPlan* pdw = nullptr;
    if (lt && want_dx) {
      pdx = &lt_plan_backward({CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, K, Npad, K, alignment_of(wb), 256,
                               alignment_of(dx->raw())});
      lt = pdx->ok;
    }
    if (lt && want_dw) {
      pdw = &lt_plan_backward({CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, K, Npad, K, x16 ? alignment_of(x.raw()) : 256, 256,
                               alignment_of(dw->raw())});
      lt = pdw->ok;
    }
    if (lt) {
      static GrowOnlyBuffer dyb_buf, xb_buf;
      auto* dyb = dyb_buf.get<__nv_bfloat16>(size_t(M * Npad), op);
      profiled_gemm("dy gather", M, Npad, 0, true, false, [&] {
        int64_t col = 0;
        for (const DyBlock& b : blocks) {  // each block of dy -> its columns of the bf16 dy, and db
          if (b.bf16) copy_bf16_block(b.p, M, b.cols, dyb + col, Npad, op);
          else column_pass(static_cast<const float*>(b.p), M, b.cols, dyb + col, Npad, dbp ? dbp + col : nullptr, op);
          col += b.cols;
        }
      });
      if (want_dx) lt_run(*pdx, wb, dyb, dx_beta, dx->f32());
      if (want_dw) {
        const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : nullptr;
        if (!xb) {
          auto* r = xb_buf.get<__nv_bfloat16>(size_t(M * K), op);
          column_pass(x.f32(), M, K, r, K, nullptr, op);
          xb = r;
        }
        lt_run(*pdw, xb, dyb, dw_beta, dw->f32());
      }
      return;
    }
  }

  // Exact fp32 GEMMs (cuBLAS sgemm, TF32 off): F32 weights, or bf16 weights whose shape the
  // tensor-core path cannot take, with dy, x and w rounded to bf16 and widened so that the
  // arithmetic is the tensor-core path's (bf16 products summed in fp32).
  if (any_bf16(blocks)) blocks = widened(blocks, M, op);
  const float* dyp = joined_dy(blocks, M, N, op);
  if (want_db) column_pass(dyp, M, N, nullptr, 0, dbp, op);
  if (!want_dx && !want_dw) return;
  const float* wf = nullptr;
  const float* dyf = dyp;
  static GrowOnlyBuffer x_wide_buf;
  const float* xf = want_dw ? as_f32(x, x_wide_buf, op).f32() : nullptr;
  if (w.dtype() == DType::BF16) {
    static GrowOnlyBuffer w32_buf, dy32_buf, x32_buf;
    float* w32 = w32_buf.get<float>(size_t(N * K), op);
    widen_bf16<<<blocks_for(N * K), kThreads>>>(w.data<__nv_bfloat16>(), w32, N * K);
    check_launch(op);
    float* dy32 = dy32_buf.get<float>(size_t(M * N), op);
    round_trip_bf16<<<blocks_for(M * N), kThreads>>>(dyp, dy32, M * N);
    check_launch(op);
    if (want_dw) {
      float* x32 = x32_buf.get<float>(size_t(M * K), op);
      round_trip_bf16<<<blocks_for(M * K), kThreads>>>(xf, x32, M * K);
      check_launch(op);
      xf = x32;
    }
    wf = w32;
    dyf = dy32;
  } else {
    wf = w.f32();
  }
  const float one = 1.0f;
  if (want_dx)
    check_blas(cublasSgemm(blas(), CUBLAS_OP_N, CUBLAS_OP_N, int(K), int(M), int(N), &one, wf, int(K), dyf, int(N),
                           &dx_beta, dx->f32(), int(K)),
               "cublasSgemm (dx)", op);
  if (want_dw)
    check_blas(cublasSgemm(blas(), CUBLAS_OP_N, CUBLAS_OP_T, int(K), int(N), int(M), &one, xf, int(K), dyf, int(N),
                           &dw_beta, dw->f32(), int(K)),
               "cublasSgemm (dw)", op);
}

}  // namespace

namespace {

// linear_backward with bf16 dy, x and/or dx (BF16 w; a bf16 dx is assigned, an fp32 one may be
// accumulated onto): the tensor-core GEMMs read dy and x and write dx as they are (an fp32 dy or
// x is rounded as in linear_backward_blocks).
// db, and shapes the tensor cores cannot take, go through fp32 copies of the bf16 tensors and
// linear_backward_blocks, whose arithmetic is the same (it rounds its operands to bf16).
void linear_backward_bf16_activations(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                                      Tensor* db, bool accumulate_dx, bool assign_dw, int64_t M) {
  const char* op = "linear_backward";
  const int64_t N = w.dim(0), K = w.dim(1);
  MAMBALM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "op linear_backward (cuda)",
                "dimensions beyond 2^31 are not supported by this path");
  const auto* wb = w.data<__nv_bfloat16>();
  const bool want_dx = dx && dx->numel() > 0, want_dw = dw && M > 0 && N > 0 && K > 0;
  const bool want_db = db && M > 0 && N > 0;
  bool lt = !want_db && M > 0 && N > 0 && K > 0 && K % 8 == 0 && N % 8 == 0 && aligned16(wb) && aligned16(dy.raw()) &&
            (!want_dx || aligned16(dx->raw())) && (!want_dw || (aligned16(x.raw()) && aligned16(dw->raw())));
  LtBackwardPlan* pdx = nullptr;
  LtBackwardPlan* pdw = nullptr;
  if (lt && want_dx) {
    pdx = &lt_plan_backward({CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, K, N, K, alignment_of(wb), alignment_of(dy.raw()),
                             alignment_of(dx->raw()), dx->dtype() == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F});
    lt = pdx->ok;
  }
  if (lt && want_dw) {
    pdw = &lt_plan_backward({CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, K, N, K, alignment_of(x.raw()), alignment_of(dy.raw()),
                             alignment_of(dw->raw())});
    lt = pdw->ok;
  }
  if (lt) {
    static GrowOnlyBuffer dyb_buf, xb_buf;
    const __nv_bfloat16* dyb = dy.data<__nv_bfloat16>();
    if (dy.dtype() == DType::F32) {
      auto* r = dyb_buf.get<__nv_bfloat16>(size_t(M * N), op);
      f32_to_bf16({{dy.f32(), reinterpret_cast<uint16_t*>(r), M * N}});
      dyb = r;
    }
    if (want_dx) lt_run(*pdx, wb, dyb, accumulate_dx ? 1.0f : 0.0f, dx->raw());
    if (want_dw) {
      const __nv_bfloat16* xb = x.data<__nv_bfloat16>();
      if (x.dtype() == DType::F32) {
        auto* r = xb_buf.get<__nv_bfloat16>(size_t(M * K), op);
        f32_to_bf16({{x.f32(), reinterpret_cast<uint16_t*>(r), M * K}});
        xb = r;
      }
      lt_run(*pdw, xb, dyb, assign_dw ? 0.0f : 1.0f, dw->f32());
    }
    return;
  }
  static GrowOnlyBuffer dy32_buf, x32_buf, dx32_buf;
  const Tensor dy32 = as_f32(dy, dy32_buf, op);
  const Tensor x32 = want_dw ? as_f32(x, x32_buf, op) : x;
  const bool dx16 = want_dx && dx->dtype() == DType::BF16;
  Tensor dx32 = dx16 ? f32_scratch(dx32_buf, dx->shape(), op) : (dx ? *dx : Tensor());
  linear_backward_blocks({{dy32.f32(), N}}, M, x32, w, dx ? &dx32 : nullptr, dw, db, accumulate_dx && !dx16, assign_dw,
                         op);
  if (dx16) f32_to_bf16({{dx32.f32(), dx->data<uint16_t>(), dx->numel()}});
}

}  // namespace

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw, Tensor* db,
                     bool accumulate_dx, bool assign_dw) {
  const int64_t N = w.dim(0), K = w.dim(1);
  const int64_t M = N > 0 ? dy.numel() / N : (K > 0 ? x.numel() / K : 0);
  if (dy.dtype() == DType::BF16 || x.dtype() == DType::BF16 || (dx && dx->dtype() == DType::BF16))
    return linear_backward_bf16_activations(dy, x, w, dx, dw, db, accumulate_dx, assign_dw, M);
  linear_backward_blocks({{dy.f32(), N}}, M, x, w, dx, dw, db, accumulate_dx, assign_dw, "linear_backward");
}

// The blocks are rounded into their columns of the one bf16 dy the GEMMs read: no fp32 copy.
void linear_backward_parts(std::initializer_list<const Tensor*> dy_parts, const Tensor& x, const Tensor& w, Tensor* dx,
                           Tensor* dw, Tensor* db, bool accumulate_dx, bool assign_dw) {
  std::vector<DyBlock> blocks;
  for (const Tensor* p : dy_parts) blocks.push_back({p->raw(), p->dim(-1), p->dtype() == DType::BF16});
  const Tensor& first = **dy_parts.begin();
  const int64_t M = first.rank() > 0 && first.dim(-1) > 0 ? first.numel() / first.dim(-1)
                                                           : (x.dim(-1) > 0 ? x.numel() / x.dim(-1) : 0);
  linear_backward_blocks(blocks, M, x, w, dx, dw, db, accumulate_dx, assign_dw, "linear_backward_parts");
}

void set_gemm_autotune(bool on) { g_autotune = on; }

namespace {
// What the saved choices are valid for: the GPU's name and cuBLASLt's version.
std::string gemm_device_line() {
  int dev = 0;
  cudaDeviceProp prop{};
  check_cuda(cudaGetDevice(&dev), "gemm choices", "cudaGetDevice");
  check_cuda(cudaGetDeviceProperties(&prop, dev), "gemm choices", "cudaGetDeviceProperties");
  std::string name = prop.name;
  std::replace(name.begin(), name.end(), ' ', '_');
  return "device " + name + " cublasLt " + std::to_string(cublasLtGetVersion());
}
static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(GemmChoice::algo), "cuBLASLt's algorithm is 8 opaque words");
}  // namespace

GemmChoices gemm_choices() {
  GemmChoices out;
  if (chosen_algos().empty()) return out;
  out.device = gemm_device_line();
  for (const auto& [key, c] : chosen_algos()) {
    GemmChoice& g = out.by_shape[key];
    std::memcpy(g.algo.data(), &c.algo, sizeof g.algo);
    g.rank = c.rank;
    g.of = c.of;
  }
  return out;
}

std::string pin_gemm_choices(const GemmChoices& choices) {
  const std::string here = gemm_device_line();
  if (choices.device != here) return "they were made on " + choices.device + ", this is " + here;
  std::map<std::string, Choice> pinned;
  for (const auto& [key, g] : choices.by_shape) {
    Choice& c = pinned[key];
    std::memcpy(&c.algo, g.algo.data(), sizeof g.algo);
    c.rank = g.rank;
    c.of = g.of;
  }
  pinned_algos() = std::move(pinned);
  return "";
}

}  // namespace mambalm::ops::cuda
