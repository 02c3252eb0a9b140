// core/host_blocks.h: a freed block is handed to the next request it holds (its own size first,
// else the smallest block of at most twice the request), and the cache never keeps more than
// kCacheBytes (the oldest go first).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/host_blocks.h"
#include "core/tensor.h"

using namespace mambalm;

namespace {

TEST(HostBlocks, ReusesAFreedBlockOfTheSameSize) {
  host_blocks::release_cached();  // the cache is process-wide: start from an empty one
  const size_t a_bytes = size_t{3} << 20, b_bytes = (size_t{3} << 20) + 4096;
  size_t a_size = 0, b_size = 0, again_size = 0;
  void* a = host_blocks::take(a_bytes, &a_size);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a_size, a_bytes);
  std::memset(a, 7, a_bytes);  // writable over its whole length
  host_blocks::give(a, a_size);
  EXPECT_EQ(host_blocks::cached_bytes(), a_bytes);
  void* b = host_blocks::take(b_bytes, &b_size);  // larger than any cached block: a fresh one
  EXPECT_NE(b, a);
  void* again = host_blocks::take(a_bytes, &again_size);  // the same size: the freed block
  EXPECT_EQ(again, a);
  EXPECT_EQ(again_size, a_size);
  EXPECT_EQ(host_blocks::cached_bytes(), 0u);
  host_blocks::give(b, b_size);
  host_blocks::give(again, again_size);
}

// A request takes the smallest cached block that holds it, up to twice its size, and gives back
// that block's whole size; a block more than twice the request is left for larger ones.
TEST(HostBlocks, ALargerFreedBlockServesUpToTwiceTheRequest) {
  host_blocks::release_cached();  // the cache is process-wide: start from an empty one
  const size_t big = (size_t{21} << 20) + 8192, mid = (size_t{17} << 20) + 4096;
  size_t big_size = 0, mid_size = 0;
  void* pb = host_blocks::take(big, &big_size);
  void* pm = host_blocks::take(mid, &mid_size);
  host_blocks::give(pb, big_size);
  host_blocks::give(pm, mid_size);
  // 10.5 MiB + 4 KiB: mid (17 MiB + 4 KiB) is under twice it, and smaller than big
  size_t got_size = 0;
  void* p = host_blocks::take((size_t{21} << 19) + 4096, &got_size);
  EXPECT_EQ(p, pm);
  EXPECT_EQ(got_size, mid_size);
  std::memset(p, 1, got_size);  // the whole block is the caller's until given back
  // 8 MiB: big is more than twice it (mid is taken): a fresh block
  size_t small_size = 0;
  void* s = host_blocks::take(size_t{8} << 20, &small_size);
  EXPECT_NE(s, pb);
  EXPECT_EQ(small_size, size_t{8} << 20);
  EXPECT_EQ(host_blocks::cached_bytes(), big_size);
  host_blocks::give(p, got_size);
  host_blocks::give(s, small_size);
  size_t again_size = 0;
  void* again = host_blocks::take(big, &again_size);  // big is still cached, at its size
  EXPECT_EQ(again, pb);
  EXPECT_EQ(again_size, big_size);
  host_blocks::give(again, again_size);
}

TEST(HostBlocks, KeepsAtMostTheCapOldestEvictedFirst) {
  host_blocks::release_cached();  // the cache is process-wide: start from an empty one
  const size_t block = size_t{32} << 20;
  const size_t n = host_blocks::kCacheBytes / block + 3;
  std::vector<void*> blocks;
  std::vector<size_t> sizes(n);
  for (size_t i = 0; i < n; ++i) blocks.push_back(host_blocks::take(block + 4096 * (i % 2), &sizes[i]));
  for (size_t i = 0; i < n; ++i) host_blocks::give(blocks[i], sizes[i]);
  EXPECT_LE(host_blocks::cached_bytes(), host_blocks::kCacheBytes);
  // The newest given back is still there; the first went when the cap was passed.
  size_t newest_size = 0;
  void* newest = host_blocks::take(block + 4096 * ((n - 1) % 2), &newest_size);
  EXPECT_EQ(newest, blocks[n - 1]);
  host_blocks::give(newest, newest_size);
}

// Scratch tensors use the cache (outside AddressSanitizer builds); empty() ones do not.
TEST(HostBlocks, ScratchTensorsComeFromTheCache) {
  host_blocks::release_cached();  // the cache is process-wide: start from an empty one
  const Shape shape{1024, 1024};  // 4 MiB of F32
  void* first = nullptr;
  {
    Tensor t = Tensor::scratch(shape);
    first = t.raw();
    t.f32()[0] = 1.0f;
  }
  Tensor again = Tensor::scratch(shape);
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(again.raw(), first);
#endif
  Tensor plain = Tensor::empty(shape);
  EXPECT_NE(plain.raw(), first);
}

}  // namespace
