// core/host_blocks.h: a freed block is handed to the next request of its size, different sizes
// are not mixed, and the cache never keeps more than kCacheBytes (the oldest go first).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/host_blocks.h"
#include "core/tensor.h"

using namespace mambalm;

namespace {

TEST(HostBlocks, ReusesAFreedBlockOfTheSameSizeOnly) {
  const size_t a_bytes = size_t{3} << 20, b_bytes = (size_t{3} << 20) + 4096;
  void* a = host_blocks::take(a_bytes);
  ASSERT_NE(a, nullptr);
  std::memset(a, 7, a_bytes);  // writable over its whole length
  const size_t before = host_blocks::cached_bytes();
  host_blocks::give(a, a_bytes);
  EXPECT_EQ(host_blocks::cached_bytes(), before + a_bytes);
  void* b = host_blocks::take(b_bytes);  // another size: a fresh block
  EXPECT_NE(b, a);
  void* again = host_blocks::take(a_bytes);  // the same size: the freed block
  EXPECT_EQ(again, a);
  EXPECT_EQ(host_blocks::cached_bytes(), before);
  host_blocks::give(b, b_bytes);
  host_blocks::give(again, a_bytes);
}

TEST(HostBlocks, KeepsAtMostTheCapOldestEvictedFirst) {
  const size_t block = size_t{32} << 20;
  const size_t n = host_blocks::kCacheBytes / block + 3;
  std::vector<void*> blocks;
  for (size_t i = 0; i < n; ++i) blocks.push_back(host_blocks::take(block + 4096 * (i % 2)));
  for (size_t i = 0; i < n; ++i) host_blocks::give(blocks[i], block + 4096 * (i % 2));
  EXPECT_LE(host_blocks::cached_bytes(), host_blocks::kCacheBytes);
  // The newest given back is still there; the first went when the cap was passed.
  void* newest = host_blocks::take(block + 4096 * ((n - 1) % 2));
  EXPECT_EQ(newest, blocks[n - 1]);
  host_blocks::give(newest, block + 4096 * ((n - 1) % 2));
}

// Scratch tensors use the cache (outside AddressSanitizer builds); empty() ones do not.
TEST(HostBlocks, ScratchTensorsComeFromTheCache) {
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
