#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/host_blocks.h"
#include "core/host_memory.h"
#include "core/limits.h"

namespace mambalm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: case DType::I64: return 8;
    case DType::BF16: case DType::F16: return 2;
    case DType::Q8: fail("tensor", "Q8 has no per-element size (a block format)", "use storage_bytes(shape, dtype)");
  }
  return 0;
}

size_t storage_bytes(const Shape& shape, DType t) {
  if (t != DType::Q8) return static_cast<size_t>(shape_numel(shape)) * dtype_size(t);
  MAMBALM_CHECK(!shape.empty(), "tensor", "a Q8 tensor needs a last dimension (rows of 32-weight blocks)");
  const int64_t K = shape.back();
  const int64_t rows = K > 0 ? shape_numel(shape) / K : 0;
  return static_cast<size_t>(limits::checked_mul(rows, (K + kQ8BlockSize - 1) / kQ8BlockSize * kQ8BlockBytes, "tensor",
                                                 "Q8 shape " + shape_str(shape) + " in bytes", limits::kMaxTensorBytes));
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::Q8: return "Q8";
  }
  return "?";
}

uint64_t new_buffer_version() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void Tensor::mark_written() const {
  if (buffer_) buffer_->version.store(new_buffer_version(), std::memory_order_release);
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : s) overflow |= d < 0 || __builtin_mul_overflow(n, d, &n);
  MAMBALM_CHECK(!overflow, "tensor", "shape " + shape_str(s) + " has a negative dimension or too many elements");
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

static std::shared_ptr<Buffer> allocate_cpu(size_t bytes, bool scratch) {
  // Refused up front: with overcommit a too-large block "succeeds" and the first touch of it
  // ends the process in the OOM killer, with no word of why.
  if (bytes > static_cast<size_t>(host_memory_bytes()))
    check_fits_host_memory(static_cast<int64_t>(bytes), "tensor", "allocating a tensor",
                           "the model, batch or sequence is too large for this machine");
  auto b = std::make_shared<Buffer>();
  b->bytes = bytes;
  // Large scratch blocks come from host_blocks (freed blocks reused, never faulted in twice), except
  // under AddressSanitizer, which checks only what malloc hands out.
  if (scratch && bytes >= host_blocks::kMinBytes && !kAddressSanitizer) {
    size_t block_bytes = 0;
    void* p = host_blocks::take(bytes, &block_bytes);
    MAMBALM_CHECK(p != nullptr, "tensor", "out of memory allocating " + std::to_string(bytes) + " bytes");
    b->data = p;
    b->owner = std::shared_ptr<void>(p, [block_bytes](void* q) { host_blocks::give(q, block_bytes); });
    return b;
  }
  size_t rounded = ((bytes + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  MAMBALM_CHECK(p != nullptr, "tensor", "out of memory allocating " + std::to_string(bytes) + " bytes");
  b->data = p;
  b->owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return b;
}

Tensor Tensor::allocate(const Shape& shape, DType dtype, bool scratch) {
  for (int64_t d : shape) MAMBALM_CHECK(d >= 0, "tensor", "negative dimension in shape " + shape_str(shape));
  const int64_t bytes = dtype == DType::Q8 ? static_cast<int64_t>(storage_bytes(shape, dtype))
                       : limits::checked_mul(shape_numel(shape), static_cast<int64_t>(dtype_size(dtype)), "tensor",
                                             "shape " + shape_str(shape) + " in bytes", limits::kMaxTensorBytes);
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.buffer_ = allocate_cpu(static_cast<size_t>(bytes), scratch);
  return t;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) { return allocate(shape, dtype, false); }
Tensor Tensor::scratch(const Shape& shape, DType dtype) { return allocate(shape, dtype, true); }

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner,
                       Device device) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.buffer_ = std::make_shared<Buffer>();
  t.buffer_->data = data;
  t.buffer_->bytes = t.nbytes();
  t.buffer_->owner = std::move(owner);
  t.buffer_->device = device;
  return t;
}

int64_t Tensor::dim(int i) const {
  int r = rank();
  int j = i < 0 ? i + r : i;
  MAMBALM_CHECK(j >= 0 && j < r, "tensor", "dimension " + std::to_string(i) + " out of range for shape " + shape_str(shape_));
  return shape_[static_cast<size_t>(j)];
}

void* Tensor::raw() const {
  MAMBALM_CHECK(buffer_ != nullptr, "tensor", "use of an undefined tensor");
  return static_cast<char*>(buffer_->data) + offset_;
}

float* Tensor::f32() const {
  MAMBALM_CHECK(dtype_ == DType::F32, "tensor", "expected F32 data, have " + dtype_name(dtype_));
  return data<float>();
}

Tensor Tensor::reshape(const Shape& shape) const {
  MAMBALM_CHECK(shape_numel(shape) == numel(), "tensor",
        "cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  MAMBALM_CHECK(dtype_ != DType::Q8 || (!shape.empty() && shape.back() == shape_.back()), "tensor",
                "cannot reshape Q8 " + shape_str(shape_) + " to " + shape_str(shape), "a Q8 reshape keeps the last dimension (its blocks)");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  MAMBALM_CHECK(rank() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "tensor",
        "slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") out of range for " + shape_str(shape_));
  Tensor t = *this;
  Shape one_row = shape_;
  one_row[0] = 1;
  t.offset_ += static_cast<size_t>(begin) * storage_bytes(one_row, dtype_);
  t.shape_[0] = end - begin;
  return t;
}

static double load_as_double(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::Q8: break;  // refused by the callers
  }
  return 0;
}

static void store_from_double(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(static_cast<float>(v)); break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(static_cast<float>(v)); break;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
    case DType::Q8: break;  // refused by the callers
  }
}

Tensor Tensor::to(DType dtype) const {
  MAMBALM_CHECK(device() == Device::CPU, "tensor", "to(dtype) needs a CPU tensor",
        "copy it to the CPU first (to_device in core/device.h)");
  MAMBALM_CHECK((dtype != DType::Q8 && dtype_ != DType::Q8) || dtype == dtype_, "tensor",
                "to(" + dtype_name(dtype) + ") from " + dtype_name(dtype_) + ": Q8 is a block format",
                "convert to and from Q8 with ops::convert (the CPU backend owns the format)");
  Tensor out = empty(shape_, dtype);
  if (dtype == dtype_) {
    std::memcpy(out.raw(), raw(), nbytes());
    return out;
  }
  const void* src = raw();
  void* dst = out.raw();
  int64_t n = numel();
  // The load paths (bf16 files to F32, F32 weights to bf16), kept tight and threaded: at 8B
  // parameters they are seconds each.
  if (dtype_ == DType::BF16 && dtype == DType::F32) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    float* d = static_cast<float*>(dst);
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 18))
    for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
    return out;
  }
  if (dtype_ == DType::F32 && dtype == DType::BF16) {
    const float* s = static_cast<const float*>(src);
    uint16_t* d = static_cast<uint16_t*>(dst);
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 18))
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
    return out;
  }
  for (int64_t i = 0; i < n; ++i) store_from_double(dst, dtype, i, load_as_double(src, dtype_, i));
  return out;
}

void Tensor::fill(float value) {
  MAMBALM_CHECK(device() == Device::CPU, "tensor", "fill needs a CPU tensor");
  MAMBALM_CHECK(dtype_ != DType::Q8, "tensor", "fill of a Q8 tensor", "fill an F32 tensor and ops::convert it");
  for (int64_t i = 0, n = numel(); i < n; ++i) store_from_double(raw(), dtype_, i, value);
  mark_written();
}

float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; man <<= 1; } while ((man & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  uint32_t sign = (bits >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((bits >> 23) & 0xffu) - 127 + 15;
  uint32_t man = bits & 0x7fffffu;
  if (((bits >> 23) & 0xffu) == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(half);
}

}  // namespace mambalm
