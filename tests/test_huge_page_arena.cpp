// core/huge_page_arena.h: tensors are handed out back to back (64-byte aligned) from one mapping
// that starts on a 2 MiB boundary and is advised to transparent huge pages; a tensor keeps the
// mapping alive after the arena is gone; taking more than the arena holds is an error, not an
// overrun.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/huge_page_arena.h"
#include "core/rng.h"
#include "test_util.h"

using namespace mambalm;

namespace {

// The "THPeligible:" field of the smaps entry holding `p`; -1 where the kernel does not report it.
int thp_eligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= addr && addr < hi;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::stoi(line.substr(12));
    }
  }
  return -1;
}

TEST(HugePageArena, TakesConsecutiveAlignedTensorsFromAHugePageBoundary) {
  const Shape a_shape{3, 5}, b_shape{1000, 7};  // 60 bytes of F32 and 14,000 of BF16: rounded to 64 and 14,016
  HugePageArena arena(HugePageArena::arena_bytes(a_shape, DType::F32) + HugePageArena::arena_bytes(b_shape, DType::BF16) +
                      HugePageArena::arena_bytes({4 << 20}, DType::F32));
  Tensor a = arena.take(a_shape, DType::F32);
  Tensor b = arena.take(b_shape, DType::BF16);
  Tensor c = arena.take({4 << 20}, DType::F32);  // [4M] 16 MiB: several huge pages
  const auto base = reinterpret_cast<uintptr_t>(a.raw());
  EXPECT_EQ(base % (2u << 20), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw()), base + 64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.raw()), base + 64 + 14016);
  EXPECT_EQ(arena.used(), arena.capacity());
  EXPECT_EQ(a.device(), Device::CPU);
  EXPECT_EQ(b.dtype(), DType::BF16);
  const int eligible = thp_eligible(c.raw());
  if (eligible >= 0) {
    std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string modes((std::istreambuf_iterator<char>(mode)), {});
    if (modes.find("[never]") == std::string::npos) {
      EXPECT_EQ(eligible, 1) << "THP modes: " << modes;
    }
  }
}

TEST(HugePageArena, ATensorKeepsItsBytesAfterTheArenaIsGone) {
  Rng rng(mambalm::testing::test_seed());
  Tensor kept;
  std::vector<float> values(1 << 20);
  for (float& v : values) v = static_cast<float>(rng.normal());
  {
    HugePageArena arena(HugePageArena::arena_bytes({1 << 20}, DType::F32));
    kept = arena.take({1 << 20}, DType::F32);  // [1M]
    std::memcpy(kept.raw(), values.data(), values.size() * 4);
  }
  EXPECT_EQ(std::memcmp(kept.raw(), values.data(), values.size() * 4), 0);
}

TEST(HugePageArena, TakingMoreThanItHoldsIsAnError) {
  HugePageArena arena(4096);
  arena.take({1000}, DType::F32);  // 4000 -> 4032 bytes
  try {
    arena.take({17}, DType::F32);  // 68 -> 128 bytes: 64 past the end
    FAIL() << "took 64 bytes past the arena's end";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot hold"), std::string::npos) << e.what();
  }
  HugePageArena empty(0);
  EXPECT_THROW(empty.take({1}, DType::F32), Error);
}

}  // namespace
