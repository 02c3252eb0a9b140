#include "core/host_blocks.h"

#include <sys/mman.h>
#include <unistd.h>

#include <iterator>
#include <list>
#include <map>
#include <mutex>

namespace mambalm::host_blocks {

namespace {

size_t page_rounded(size_t bytes) {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// Freed blocks by size; `order` lists them oldest first for eviction.
struct Cache {
  struct Block {
    size_t bytes;
    void* p;
  };
  std::mutex mutex;
  std::list<Block> order;
  std::multimap<size_t, std::list<Block>::iterator> by_size;
  size_t total = 0;
};

// Never destroyed: tensors freed during static destruction still find it.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

void* take(size_t bytes, size_t* block_bytes) {
  const size_t n = page_rounded(bytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    // The smallest size that holds n, and of that size the newest block (equal keys keep their
    // insertion order): its lines may still be in the caches.
    const auto fit = c.by_size.lower_bound(n);
    if (fit != c.by_size.end() && fit->first / 2 <= n) {
      const auto it = std::prev(c.by_size.upper_bound(fit->first));
      void* p = it->second->p;
      *block_bytes = it->first;
      c.order.erase(it->second);
      c.total -= it->first;
      c.by_size.erase(it);
      return p;
    }
  }
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *block_bytes = n;
  return p == MAP_FAILED ? nullptr : p;
}

void give(void* block, size_t block_bytes) {
  const size_t n = page_rounded(block_bytes);
  std::list<Cache::Block> evicted;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (n > kCacheBytes) {
      evicted.push_back({n, block});
    } else {
      c.order.push_back({n, block});
      c.by_size.emplace(n, std::prev(c.order.end()));
      c.total += n;
      while (c.total > kCacheBytes) {  // the oldest first
        const Cache::Block old = c.order.front();
        for (auto it = c.by_size.lower_bound(old.bytes); it != c.by_size.end() && it->first == old.bytes; ++it) {
          if (it->second == c.order.begin()) {
            c.by_size.erase(it);
            break;
          }
        }
        c.order.pop_front();
        c.total -= old.bytes;
        evicted.push_back(old);
      }
    }
  }
  for (const Cache::Block& b : evicted) ::munmap(b.p, b.bytes);  // outside the lock
}

void release_cached() {
  std::list<Cache::Block> evicted;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    evicted.swap(c.order);
    c.by_size.clear();
    c.total = 0;
  }
  for (const Cache::Block& b : evicted) ::munmap(b.p, b.bytes);  // outside the lock
}

size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.total;
}

}  // namespace mambalm::host_blocks
