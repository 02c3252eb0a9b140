// Planned memory for the activations of one forward pass: a bump allocator over one block.
// reset() at the start of a pass; every tensor handed out since the last reset is then dead.
// A pass that needs more than the block gets separate allocations for the excess, and the next
// reset() replaces the block with one of the peak size, so after one warm-up pass of the
// largest shape the same sequence of requests gets the same addresses every time and nothing
// is allocated (which a CUDA graph replay requires).
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mambalm {

class Workspace {
 public:
  explicit Workspace(Device device) : device_(device) {}

  Device device() const { return device_; }
  Tensor empty(const Shape& shape, DType dtype = DType::F32);
  void reset();
  // Stack discipline inside a pass: tensors handed out after mark() are dead after release(m),
  // and their bytes are handed out again (a layer's scratch is reused by the next layer).
  size_t mark() const { return pass_bytes_; }
  void release(size_t mark);
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
  size_t peak_ = 0;               // the deepest the stack went in one pass
  size_t pass_bytes_ = 0;         // stack depth now: bytes live in this pass
  uint64_t generation_ = 0;
  std::vector<std::pair<size_t, Tensor>> overflow_;  // this pass's allocations past the block, by offset
};

}  // namespace mambalm
