#include "core/device.h"

#include <cstring>

#include "core/cuda_backend.h"
#include "core/error.h"

namespace mambalm {

namespace {

void need_same_size(const char* op, const Tensor& src, const Tensor& dst) {
  MAMBALM_CHECK(src.dtype() == dst.dtype() && src.nbytes() == dst.nbytes(), op,
                "source " + dtype_name(src.dtype()) + shape_str(src.shape()) + " and destination " +
                    dtype_name(dst.dtype()) + shape_str(dst.shape()) + " differ in dtype or size");
}

}  // namespace

bool cuda_built() { return cuda_backend::built(); }
int cuda_device_count() { return cuda_backend::device_count(); }
std::string cuda_device_summary() { return cuda_backend::device_summary(); }

Tensor empty_cuda(const Shape& shape, DType dtype) {
  for (int64_t d : shape) MAMBALM_CHECK(d >= 0, "tensor", "negative dimension in shape " + shape_str(shape));
  return cuda_backend::empty(shape, dtype);
}

Tensor zeros_cuda(const Shape& shape, DType dtype) {
  Tensor t = empty_cuda(shape, dtype);
  cuda_backend::fill_bytes(t, 0);
  return t;
}

Tensor empty_cuda_poisoned(const Shape& shape, DType dtype) {
  Tensor t = empty_cuda(shape, dtype);
  cuda_backend::fill_bytes(t, 0xFF);
  return t;
}

Tensor empty_on(Device device, const Shape& shape, DType dtype) {
  return device == Device::CUDA ? empty_cuda(shape, dtype) : Tensor::empty(shape, dtype);
}

Tensor zeros_on(Device device, const Shape& shape, DType dtype) {
  if (device == Device::CUDA) return zeros_cuda(shape, dtype);
  Tensor t = Tensor::empty(shape, dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

void copy_tensor(const Tensor& src, Tensor& dst) {
  need_same_size("copy_tensor", src, dst);
  if (src.nbytes() == 0) return;
  if (src.device() == Device::CPU && dst.device() == Device::CPU) std::memcpy(dst.raw(), src.raw(), src.nbytes());
  else cuda_backend::copy(src, dst);
  dst.mark_written();
}

Tensor to_device(const Tensor& t, Device device) {
  MAMBALM_CHECK(t.defined(), "to_device", "undefined tensor");
  Tensor out = empty_on(device, t.shape(), t.dtype());
  copy_tensor(t, out);
  return out;
}

Tensor to_host(const Tensor& t) { return t.device() == Device::CPU ? t : to_device(t, Device::CPU); }

void cuda_synchronize() {
  if (cuda_backend::built()) cuda_backend::synchronize();
}

Tensor empty_pinned(const Shape& shape, DType dtype) {
  return cuda_backend::built() ? cuda_backend::empty_pinned(shape, dtype) : Tensor::empty(shape, dtype);
}

void copy_async(const Tensor& src, Tensor& dst) {
  need_same_size("copy_async", src, dst);
  if (src.nbytes() == 0) return;
  if (src.device() == Device::CPU && dst.device() == Device::CPU) std::memcpy(dst.raw(), src.raw(), src.nbytes());
  else cuda_backend::copy_async(src, dst);
}

bool cuda_capturing() { return cuda_backend::built() && cuda_backend::capturing(); }

void fill_uniform_cuda(Tensor& t, uint64_t seed, float lo, float hi) {
  MAMBALM_CHECK(t.device() == Device::CUDA && (t.dtype() == DType::F32 || t.dtype() == DType::BF16), "fill_uniform_cuda",
                "expects a CUDA F32 or BF16 tensor");
  if (t.numel() > 0) cuda_backend::fill_uniform(t, seed, lo, hi);
}

void cuda_memory_info(size_t* free_bytes, size_t* total_bytes) { cuda_backend::memory_info(free_bytes, total_bytes); }

}  // namespace mambalm
