// HugePageArena (huge_page_arena.h).
#include "core/huge_page_arena.h"

#include <sys/mman.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/host_memory.h"

namespace mambalm {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

HugePageArena::HugePageArena(size_t bytes) : capacity_(bytes) {
  if (bytes == 0) return;
  check_fits_host_memory(static_cast<int64_t>(bytes), "weights", "allocating the weights",
                         "the model is too large for this machine's memory");
  // Mapped one huge page larger, so that the arena can start on a 2 MiB boundary: a huge page
  // backs only an aligned 2 MiB range that lies wholly inside the advised region.
  const size_t mapped = (bytes + kHugePage - 1) / kHugePage * kHugePage + kHugePage;
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  MAMBALM_CHECK(p != MAP_FAILED, "weights", "out of memory mapping " + std::to_string(mapped) + " bytes for the weights");
  region_ = std::shared_ptr<void>(p, [mapped](void* q) { ::munmap(q, mapped); });
  const auto start = reinterpret_cast<uintptr_t>(p);
  base_ = static_cast<char*>(p) + ((kHugePage - start % kHugePage) % kHugePage);
  // Advice only: where transparent huge pages are off the arena is ordinary memory.
  ::madvise(base_, (bytes + kHugePage - 1) / kHugePage * kHugePage, MADV_HUGEPAGE);
}

Tensor HugePageArena::take(const Shape& shape, DType dtype) {
  const size_t n = arena_bytes(shape, dtype);
  MAMBALM_CHECK(used_ + n <= capacity_, "weights",
                "weight arena of " + std::to_string(capacity_) + " bytes cannot hold " + std::to_string(n) + " more after " +
                    std::to_string(used_));
  Tensor t = Tensor::view_of(base_ + used_, shape, dtype, region_, Device::CPU);
  used_ += n;
  return t;
}

}  // namespace mambalm
