// Planned memory for the activations of one forward pass: a bump allocator over one block.
// reset() at the start of a pass; every tensor handed out since the last reset is then dead.
// A pass that needs more than the block gets separate allocations for the excess, and the next
// reset() replaces the block with one of the peak size, so after one warm-up pass of the
// largest shape the same sequence of requests gets the same addresses every time and nothing
// is allocated (which a CUDA graph replay requires).
#pragma once
#include <cstddef>
#include <vector>

#include "core/tensor.h"

namespace mambalm {

class Workspace {
 public:
  explicit Workspace(Device device) : device_(device) {}

  Device device() const { return device_; }
  Tensor empty(const Shape& shape, DType dtype = DType::F32);
  void reset();
  // Grows the block to at least `bytes` now (planning from a known size).
  void reserve(size_t bytes);
  size_t capacity() const { return block_.defined() ? block_.nbytes() : 0; }
  size_t peak() const { return peak_; }
  // Changes whenever the block is replaced (work captured against the old block is stale).
  uint64_t generation() const { return generation_; }

 private:
  Tensor allocate(size_t bytes) const;

  Device device_;
  Tensor block_;                  // U8-like byte block (stored as F32 elements)
  size_t used_ = 0;               // bytes handed out from block_ this pass
  size_t peak_ = 0;               // largest bytes one pass asked for
  size_t pass_bytes_ = 0;         // bytes asked for this pass (block + overflow)
  uint64_t generation_ = 0;
  std::vector<Tensor> overflow_;  // this pass's allocations past the block
};

}  // namespace mambalm
