// The argument checks every backend-neutral op entry point makes (ops/dispatch.cpp,
// ops/dispatch_backward.cpp): each names the op and the tensor and says what was expected.
// The messages are built only on failure (MAMBALM_CHECK), so the checks cost nothing on the
// decode path.
#pragma once
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/deferred_zero.h"

namespace mambalm::ops::checks {

inline std::string where(const char* op) { return std::string("op ") + op; }

inline void need_defined(const char* op, const char* name, const Tensor& t) {
  MAMBALM_CHECK(t.defined(), where(op), std::string(name) + " is an undefined tensor",
        "allocate it with the documented shape before the call");
}

inline void need_dtype(const char* op, const char* name, const Tensor& t, DType want = DType::F32) {
  need_defined(op, name, t);
  MAMBALM_CHECK(t.dtype() == want, where(op),
        std::string(name) + " has dtype " + dtype_name(t.dtype()) + ", expected " + dtype_name(want));
}

// Stored operands (weights, embedding tables, KV caches): F32, or BF16 when on CUDA, whose
// kernels read bf16 and accumulate in fp32.
inline void need_storage_dtype(const char* op, const char* name, const Tensor& t) {
  need_defined(op, name, t);
  MAMBALM_CHECK(t.dtype() == DType::F32 || (t.dtype() == DType::BF16 && t.device() == Device::CUDA), where(op),
                std::string(name) + " has dtype " + dtype_name(t.dtype()) + ", expected F32 (or BF16 on CUDA)");
}

// KV caches (kv_append, attention_decode, the forward attention's keys and values): F32 or BF16
// on either device; both backends widen bf16 to fp32 and accumulate in fp32.
inline void need_kv_dtype(const char* op, const char* name, const Tensor& t) {
  need_defined(op, name, t);
  MAMBALM_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, where(op),
                std::string(name) + " has dtype " + dtype_name(t.dtype()) + ", expected F32 or BF16");
}

// Weight matrices and embedding tables (linear, embedding): F32 or BF16 on either device, or Q8
// (8-bit blocks, ops/cpu/q8_format.h) on the CPU.
inline void need_weight_dtype(const char* op, const char* name, const Tensor& t) {
  need_defined(op, name, t);
  const bool ok = t.dtype() == DType::F32 || t.dtype() == DType::BF16 || (t.dtype() == DType::Q8 && t.device() == Device::CPU);
  MAMBALM_CHECK(ok, where(op), std::string(name) + " has dtype " + dtype_name(t.dtype()) + " on " +
                (t.device() == Device::CUDA ? "CUDA" : "the CPU") + ", expected F32, BF16 (or Q8 on the CPU)");
}

inline void need_shape(const char* op, const char* name, const Tensor& t, const Shape& want) {
  MAMBALM_CHECK(t.shape() == want, where(op),
        std::string(name) + " has shape " + shape_str(t.shape()) + ", expected " + shape_str(want));
}

inline void need_rank(const char* op, const char* name, const Tensor& t, int rank, const char* layout) {
  MAMBALM_CHECK(t.rank() == rank, where(op),
        std::string(name) + " has shape " + shape_str(t.shape()) + ", expected rank " +
            std::to_string(rank) + " " + layout);
}

// Every tensor of a call must live on one device; true when that device is CUDA (which needs
// a build with the CUDA backend).
template <class Tensors>
inline bool on_cuda_of(const char* op, const Tensors& tensors) {
  bool any_cuda = false, any_cpu = false;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    (t->device() == Device::CUDA ? any_cuda : any_cpu) = true;
  }
#ifndef MAMBALM_HAVE_CUDA
  if (any_cuda)
    fail(where(op), "CUDA backend not built",
         "this build has only the CPU backend; keep the tensors on the CPU");
#endif
  if (any_cuda && any_cpu)
    fail(where(op), "tensors on different devices (some CPU, some CUDA)",
         "move them all to one device first (to_device in core/device.h)");
  // Every op names all its operands here, so this is where a gradient whose zero fill was
  // deferred (ops/deferred_zero.h) gets it before the op reads or adds to it.
  if (any_deferred_zero())
    for (const Tensor* t : tensors)
      if (t) settle_deferred_zero(*t);
  return any_cuda;
}
inline bool on_cuda(const char* op, std::initializer_list<const Tensor*> tensors) { return on_cuda_of(op, tensors); }
inline bool on_cuda(const char* op, const std::vector<const Tensor*>& tensors) { return on_cuda_of(op, tensors); }

// Outputs that the kernels write while still reading inputs must not share memory with them.
inline void need_disjoint(const char* op, const char* out_name, const Tensor& out, const char* in_name,
                   const Tensor* in) {
  if (!in || !in->defined() || out.numel() == 0 || in->numel() == 0) return;
  const char* a = static_cast<const char*>(out.raw());
  const char* b = static_cast<const char*>(in->raw());
  bool overlap = a < b + in->nbytes() && b < a + out.nbytes();
  MAMBALM_CHECK(!overlap, where(op), std::string(out_name) + " overlaps " + in_name + " in memory",
        "this op does not support aliasing its output with an input");
}


// dtype + shape, for an optional tensor (null passes).
inline void need(const char* op, const char* name, const Tensor* t, const Shape& want,
          DType dt = DType::F32) {
  if (!t) return;
  need_dtype(op, name, *t, dt);
  need_shape(op, name, *t, want);
}
// An output of shape `want`, or with col0 >= 0 a wider one whose columns [col0, col0 + the last
// dim of want) take it: the same leading dims, room for the columns.
inline void need_columns(const char* op, const char* name, const Tensor& t, const Shape& want, int64_t col0) {
  if (col0 < 0) return need_shape(op, name, t, want);
  bool ok = t.rank() == static_cast<int>(want.size()) && !want.empty() && col0 + want.back() <= t.dim(-1);
  for (size_t i = 0; ok && i + 1 < want.size(); ++i) ok = t.dim(static_cast<int>(i)) == want[i];
  MAMBALM_CHECK(ok, where(op),
                std::string(name) + " " + shape_str(t.shape()) + " has no columns [" + std::to_string(col0) + ", " +
                    std::to_string(col0 + (want.empty() ? 0 : want.back())) + ") for " + shape_str(want));
}

inline bool overlap(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || b.numel() == 0) return false;
  const char* pa = static_cast<const char*>(a.raw());
  const char* pb = static_cast<const char*>(b.raw());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}
// Each output must be disjoint from every input and every other output.
inline void need_disjoint(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> outs,
                   std::initializer_list<std::pair<const char*, const Tensor*>> ins) {
  for (auto o = outs.begin(); o != outs.end(); ++o) {
    if (!o->second) continue;
    for (auto [n, t] : ins)
      if (t)
        MAMBALM_CHECK(!overlap(*o->second, *t), where(op),
                      std::string(o->first) + " overlaps " + n + " in memory",
                      "this op does not support aliasing an output with an input");
    for (auto o2 = std::next(o); o2 != outs.end(); ++o2)
      if (o2->second)
        MAMBALM_CHECK(!overlap(*o->second, *o2->second), where(op),
                      std::string(o->first) + " overlaps " + o2->first + " in memory");
  }
}

}  // namespace mambalm::ops::checks
