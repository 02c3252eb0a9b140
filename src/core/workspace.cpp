#include "core/workspace.h"

#include <algorithm>

#include "core/device.h"
#include "core/error.h"

namespace mambalm {

namespace {
constexpr size_t kAlign = 256;  // keeps every tensor 16-byte-vector and cache-line aligned
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Tensor Workspace::allocate(size_t bytes) const {
  const Shape words{static_cast<int64_t>((bytes + 3) / 4)};
  return empty_on(device_, words, DType::F32);
}

Tensor Workspace::empty(const Shape& shape, DType dtype) {
  const size_t bytes = aligned(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
  const size_t offset = pass_bytes_;
  pass_bytes_ += bytes;
  peak_ = std::max(peak_, pass_bytes_);
  if (pass_bytes_ <= capacity()) {
    auto* base = static_cast<char*>(block_.raw()) + offset;
    // The view keeps the block alive through a copy of its owner.
    return Tensor::view_of(base, shape, dtype, block_.buffer_owner(), device_);
  }
  check(device_ != Device::CUDA || !cuda_capturing(), "workspace",
        "a captured pass asked for " + std::to_string(bytes) + " bytes beyond the planned block",
        "run the same step once uncaptured first (warm-up) so the block reaches its peak");
  overflow_.push_back({offset, allocate(bytes)});
  const Tensor& t = overflow_.back().second;
  return Tensor::view_of(t.raw(), shape, dtype, t.buffer_owner(), device_);
}

void Workspace::reserve(size_t bytes) {
  if (bytes <= capacity()) return;
  block_ = Tensor();  // free first: the old and new block need not coexist
  block_ = allocate(aligned(bytes));
  ++generation_;
}

void Workspace::reset() {
  overflow_.clear();
  if (peak_ > capacity()) reserve(peak_);
  pass_bytes_ = 0;
}

void Workspace::release(size_t mark) {
  check(mark <= pass_bytes_, "workspace", "release to a mark above the stack");
  // Overflow allocations above the mark are dropped too, so that a first (unplanned) pass holds
  // its peak, not the sum of everything it ever asked for; a view a caller still holds keeps its
  // bytes alive through the shared owner.
  while (!overflow_.empty() && overflow_.back().first >= mark) overflow_.pop_back();
  pass_bytes_ = mark;
}

}  // namespace mambalm
