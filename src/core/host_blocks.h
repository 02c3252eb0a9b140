// Large host blocks for CPU tensors (core/tensor.cpp), kept for reuse when freed instead of
// being returned to the kernel. The CPU ops allocate every output anew; served by malloc, a
// block this large was a fresh mapping each time (or, in a heap with raised thresholds, a
// fragment that long-lived neighbours kept from being reused), so every layer of a prefill
// faulted its activations in page by page. Blocks of the same size recur layer after layer and
// chunk after chunk, so a freed block is kept under its size and handed to the next request of
// that size; the oldest are unmapped once the cache holds more than kCacheBytes.
#pragma once
#include <cstddef>

namespace mambalm::host_blocks {

// Requests from this size on are served here (smaller ones stay with malloc).
inline constexpr size_t kMinBytes = size_t{256} << 10;
// The most the cache keeps of freed blocks, resident but unused.
inline constexpr size_t kCacheBytes = size_t{256} << 20;

// A block of at least `bytes` (page-aligned), from the cache when one of its rounded size is
// there, else a fresh mapping; nullptr when the system has no memory for it.
void* take(size_t bytes);
// Returns a block from take(bytes) (the same `bytes`).
void give(void* block, size_t bytes);
// Bytes held in the cache now (freed blocks kept for reuse).
size_t cached_bytes();

}  // namespace mambalm::host_blocks
