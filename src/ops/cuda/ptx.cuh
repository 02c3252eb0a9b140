// Inline-PTX wrappers for the tensor-core kernels (attention, SSD): async copies, ldmatrix,
// mma.sync (bf16 and TF32), the Hopper wgmma instructions and their shared-memory descriptors,
// fences, and a fast exp2. sm_80 instructions unless marked; all of them run on sm_90.
//
// Every function is an inline __device__ function, so the header can be included by several
// .cu files (each is compiled whole-program; nothing here has a host symbol).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

// The wgmma instructions exist only in the architecture-specific sm_90a target. Device code
// compiled for that target sees MAMBALM_HAVE_WGMMA; elsewhere the wgmma wrappers below compile
// to nothing and the kernels that need them trap (their host code selects them on 9.x only).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MAMBALM_HAVE_WGMMA 1
#endif

namespace mambalm::ops::cuda {

// ---- addresses, async copies, ldmatrix (sm_80) --------------------------------------------

// Shared-memory address of a generic pointer into shared memory, as PTX instructions take it.
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; src_bytes 0 fills the 16 bytes with zeros.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}
// 4-byte async copy global -> shared (through L1); src_bytes 0 writes a zero.
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
// 8-byte async copy global -> shared (through L1): one thread's pair of fp32 values, or four
// bf16 values; src_bytes 0 fills the 8 bytes with zeros.
__device__ __forceinline__ void cp_async8(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async8(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
// Asks for the cache line holding p to be brought into L2 (no register is written, nothing
// waits for it): a register-staged stage loop warms the stage after the one it loads. Pays in
// the backward's dx kernel (0.856 -> 0.813 ms); the forward chunk scan was slower with it.
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}
// Closes the group of async copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N committed groups of async copies are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 b16 matrices from shared memory (lanes 8i..8i+7 give the row addresses of matrix i),
// in the mma.sync fragment layout.
__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                            uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
// The same, each 8x8 matrix transposed (a row-major tile read as a column-major operand).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// ---- mma.sync (sm_80) ---------------------------------------------------------------------

// c += a (16x16 bf16, row) * b (16x8 bf16, col), fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats to a bf16 pair (round to nearest even), the first in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
// Four floats to four bf16 (round to nearest even), 8 bytes in order.
__device__ __forceinline__ uint2 pack_bf16x4(float a, float b, float c, float d) {
  return make_uint2(pack_bf16(a, b), pack_bf16(c, d));
}

// fp32 to TF32 (round to nearest, ties away from zero), as the 32-bit operand mma_tf32 takes.
__device__ __forceinline__ uint32_t to_tf32(float v) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return r;
}

// c += a (16x8 tf32, row) * b (8x8 tf32, col), fp32 accumulators.
__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The MI x NI fragment products of one k-step, acc[mi][ni] += a[mi] b[ni], to about fp32
// accuracy ("3xTF32"; Fp32Products::Exact) from operand words that hold fp32 bits: each operand
// is v = hi + lo with hi = tf32(v) and lo = tf32(v - hi) (the difference is exact in fp32), and
// acc += a_lo b_hi + a_hi b_lo + a_hi b_hi, small terms first; the dropped a_lo b_lo is ~2^-22
// of the product, below fp32's rounding of the sum. Three tensor-core products instead of one.
template <int MI, int NI>
__device__ __forceinline__ void mma_split_fragments(float (&acc)[MI][NI][4], uint32_t (&a)[MI][4],
                                                    uint32_t (&b)[NI][2]) {
  uint32_t al[MI][4], bl[NI][2];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float v = __uint_as_float(a[mi][i]);
      a[mi][i] = to_tf32(v);
      al[mi][i] = to_tf32(v - __uint_as_float(a[mi][i]));
    }
#pragma unroll
  for (int ni = 0; ni < NI; ++ni)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const float v = __uint_as_float(b[ni][i]);
      b[ni][i] = to_tf32(v);
      bl[ni][i] = to_tf32(v - __uint_as_float(b[ni][i]));
    }
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
      mma_tf32(acc[mi][ni], al[mi], b[ni]);
      mma_tf32(acc[mi][ni], a[mi], bl[ni]);
      mma_tf32(acc[mi][ni], a[mi], b[ni]);
    }
}

// 2^x on the special-function unit (approximate, denormals flushed): the softmax exponent.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- wgmma (sm_90a) -----------------------------------------------------------------------
// Operands in shared memory use the 128-byte-swizzled K-major layout: rows of 128 B, 16-byte
// chunk c of row r stored at chunk c ^ (r % 8), atoms of 8 rows = 1024 B, 1024-aligned.

// wgmma shared-memory matrix descriptor of a 128-byte-swizzled K-major operand at `addr`.
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  uint64_t d = uint64_t((addr & 0x3FFFFu) >> 4);  // start address
  d |= uint64_t(1) << 16;                          // leading offset: unused for swizzled K-major
  d |= uint64_t(1024 >> 4) << 32;                  // stride offset: 8 rows x 128 B
  d |= uint64_t(1) << 62;                          // 128-byte swizzle
  return d;
}

// Byte offset of 16-byte chunk `chunk16` of row `row` in a 128-byte-swizzled tile.
__device__ __forceinline__ uint32_t sw128_offset(int row, int chunk16) {
  return uint32_t(row * 128 + ((chunk16 ^ (row & 7)) << 4));
}

// d (64x64 fp32, this thread's 32) += A (64x16, smem) * B (16x64, smem, K-major).
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[8][4], uint64_t da, uint64_t db) {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile(
      "{\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
      "%32, %33, 1, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(da), "l"(db));
#endif
}
// Orders the accumulator registers' earlier accesses before the wgmma instructions that follow.
__device__ __forceinline__ void wgmma_fence() {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
// Commits the issued wgmma instructions as one group and waits for all of them to complete.
__device__ __forceinline__ void wgmma_commit_wait() {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
// Makes generic-proxy shared-memory writes (st.shared, cp.async) visible to the async proxy
// that wgmma reads operands through.
__device__ __forceinline__ void fence_proxy_async() {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

}  // namespace mambalm::ops::cuda
