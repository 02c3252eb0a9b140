// One anonymous mapping for tensors that live as long as a model (its weights), advised to
// transparent huge pages before anything touches it. Decode streams every weight once per token;
// with 4 KiB pages the hardware prefetchers stop at each page boundary and every page costs a
// TLB walk, so one core read a bf16 matrix at ~19 GB/s where the same loop over 2 MiB pages
// reads ~30 GB/s (bench/NOTES.md, "Weights on huge pages"). One mapping for all the weights,
// not one per tensor: most matrices of a small model are under 2 MiB, and a huge page per
// tensor tail would add tens of MiB of resident memory.
#pragma once
#include <cstddef>
#include <memory>

#include "core/tensor.h"

namespace mambalm {

class HugePageArena {
 public:
  // Room for `bytes` (each take() rounds up to 64 bytes: count with arena_bytes()). Nothing is
  // resident until written. Throws when the machine cannot hold it.
  explicit HugePageArena(size_t bytes);
  // A CPU tensor of `shape` and `dtype` in the next free bytes (64-byte aligned); it keeps the
  // whole mapping alive. Throws when the arena is out of room (a miscounted size).
  Tensor take(const Shape& shape, DType dtype);
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  // The bytes take(shape, dtype) uses.
  static size_t arena_bytes(const Shape& shape, DType dtype) { return (storage_bytes(shape, dtype) + 63) / 64 * 64; }

 private:
  std::shared_ptr<void> region_;  // unmapped when the arena and every tensor taken from it are gone
  char* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

}  // namespace mambalm
