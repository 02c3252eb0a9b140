// Large host blocks for CPU tensors (core/tensor.cpp), kept for reuse when freed instead of
// being returned to the kernel. The CPU ops allocate every output anew; served by malloc, a
// block this large was a fresh mapping each time (or, in a heap with raised thresholds, a
// fragment that long-lived neighbours kept from being reused), so every layer of a prefill
// faulted its activations in page by page. Blocks recur layer after layer and chunk after
// chunk, so a freed block is kept and handed to the next request it can hold: the smallest
// cached block of at least the request and at most twice it. Reusing a larger block rather than
// mapping a new one keeps the cache from holding one set of blocks per layer kind (a hybrid's
// Mamba, MLP and attention layers ask for different sizes): the resident bytes stay near the
// largest layer's, not their sum. The oldest are unmapped once the cache holds more than
// kCacheBytes.
#pragma once
#include <cstddef>

namespace mambalm::host_blocks {

// Requests from this size on are served here (smaller ones stay with malloc).
inline constexpr size_t kMinBytes = size_t{256} << 10;
// The most the cache keeps of freed blocks, resident but unused.
inline constexpr size_t kCacheBytes = size_t{256} << 20;

// A block of at least `bytes` (page-aligned), from the cache when it holds one of the rounded
// size up to twice it, else a fresh mapping; nullptr when the system has no memory for it.
// *block_bytes receives the block's own size, which give() takes back.
void* take(size_t bytes, size_t* block_bytes);
// Returns a block from take() with its block_bytes.
void give(void* block, size_t block_bytes);
// Bytes held in the cache now (freed blocks kept for reuse).
size_t cached_bytes();
// Unmaps every cached block (blocks in use are not touched).
void release_cached();

}  // namespace mambalm::host_blocks
