// A dense row-major tensor: dtype, shape, device, and a shared buffer plus byte offset, so a
// tensor is either the owner of its memory or a view into another tensor or a mapped file.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace mambalm {

using Shape = std::vector<int64_t>;

// Q8: 8-bit block weights of the CPU backend (a 2-D [N, K] matrix only; format in
// docs/file-formats.md and ops/cpu/q8_format.h): each row is ceil(K / 32) blocks of 34 bytes.
// Element-wise helpers (dtype_size, fill, to) do not apply to it; ops::convert makes and reads it.
enum class DType { F32, F64, BF16, F16, I32, I64, Q8 };
enum class Device { CPU, CUDA };

constexpr int64_t kQ8BlockSize = 32;                 // weights per Q8 block
constexpr int64_t kQ8BlockBytes = 2 + kQ8BlockSize;  // fp16 scale + 32 int8

// Bytes per element; an error for Q8 (a block format: use storage_bytes).
size_t dtype_size(DType t);
// Bytes a dense tensor of this shape and dtype occupies (Q8: rows * ceil(last dim / 32) * 34).
size_t storage_bytes(const Shape& shape, DType t);
std::string dtype_name(DType t);  // safetensors spelling: F32, BF16, ...

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3]"

// A number never handed out before (process-wide, from 1): a buffer's first version, and each
// new one Tensor::mark_written gives it.
uint64_t new_buffer_version();

// Raw memory. `owner` keeps alive whatever the bytes belong to (a heap block, a mapping).
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  std::shared_ptr<void> owner;
  std::atomic<uint64_t> version{new_buffer_version()};  // see Tensor::version
};

class Tensor {
 public:
  Tensor() = default;
  // A new zero-filled CPU tensor.
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  // A new CPU tensor whose contents are left uninitialised (fast path for outputs).
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  // Uninitialised, for a forward's or backward's intermediate values on the CPU: large ones come
  // from core/host_blocks.h (freed blocks reused by size, not faulted in again each layer).
  // Long-lived tensors (weights, caches, states) use empty().
  static Tensor scratch(const Shape& shape, DType dtype = DType::F32);
  // A non-owning view of external memory kept alive by `owner`. `device` says where the bytes
  // live (core/device.h makes CUDA tensors this way; core itself never touches CUDA).
  static Tensor view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner,
                        Device device = Device::CPU);

  bool defined() const { return buffer_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return buffer_ ? buffer_->device : Device::CPU; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return storage_bytes(shape_, dtype_); }

  void* raw() const;
  template <class T> T* data() const { return static_cast<T*>(raw()); }
  float* f32() const;  // checks dtype == F32

  // Same bytes, new shape (numel must match).
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the first dimension, sharing memory.
  Tensor slice0(int64_t begin, int64_t end) const;
  // A deep copy converted to `dtype` (F32/BF16/F16/F64 among themselves). CPU tensors only
  // (to_device in core/device.h moves data between devices).
  Tensor to(DType dtype) const;
  Tensor clone() const { return to(dtype_); }
  void fill(float value);  // CPU tensors only (marks the tensor written)

  // The write generation of the bytes: a number no other buffer has had, and that this one had
  // only until its last mark_written(). Views (reshape, slice0) share their buffer's. A value
  // derived from a parameter and kept between calls (Mamba-1's -exp(A_log), model/mamba1.h) is
  // keyed on (raw(), version()) instead of comparing contents. Writes through raw()/data() do not
  // change it: code that changes a parameter in place calls mark_written() after the write.
  // fill, copy_tensor (core/device.h), ops::fill / fill_each, the AdamW ops (so AdamW and
  // ShardedAdamW steps) and the parameter initialisers do it themselves; a load or init that
  // assigns a new tensor needs nothing (a new buffer is a new version). A replayed CUDA graph
  // does not mark what it writes (no cache keys on CUDA tensors). 0 for an undefined tensor.
  uint64_t version() const { return buffer_ ? buffer_->version.load(std::memory_order_acquire) : 0; }
  void mark_written() const;
  // Keeps this tensor's memory alive (for views made with view_of into the same bytes).
  std::shared_ptr<void> buffer_owner() const { return buffer_; }

 private:
  static Tensor allocate(const Shape& shape, DType dtype, bool scratch);
  std::shared_ptr<Buffer> buffer_;
  size_t offset_ = 0;  // bytes into buffer_
  Shape shape_;
  DType dtype_ = DType::F32;
};

// Half-precision conversions (round to nearest even on the way down).
float bf16_to_f32(uint16_t v);
// NaN is kept and made quiet. Inline and without branches so that loops over arrays vectorise
// (the CPU KV-cache append and x's rounding for the bf16 GEMM run it per element).
inline uint16_t f32_to_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);  // not std::bit_cast: nvcc includes this header as C++17
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);

}  // namespace mambalm
