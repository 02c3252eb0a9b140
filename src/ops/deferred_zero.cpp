// The registry of gradient buffers whose zero fill is deferred (ops/deferred_zero.h).
#include "ops/deferred_zero.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "ops/ops.h"

namespace mambalm::ops {

namespace {

struct Marked {
  uintptr_t end;  // one past the last byte
  Tensor tensor;  // holds the storage: the address cannot be reused while marked
};
// Keyed by (device, first byte). Marked ranges never overlap (each is a separate buffer).
using Key = std::pair<int, uintptr_t>;

struct Registry {
  std::mutex mu;
  std::map<Key, Marked> marked;
  std::atomic<size_t> count{0};
};
// Never destroyed: tensors still marked at exit are not freed after the CUDA runtime is gone.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

struct Range {
  int device;
  uintptr_t begin, end;
};
bool range_of(const Tensor& t, Range& r) {
  if (!t.defined() || t.nbytes() == 0) return false;
  r.device = static_cast<int>(t.device());
  r.begin = reinterpret_cast<uintptr_t>(t.raw());
  r.end = r.begin + t.nbytes();
  return true;
}

// Removes the marks that [r.begin, r.end) overlaps and returns their tensors. Caller holds mu.
std::vector<Tensor> unmark_overlapping(Registry& reg, const Range& r) {
  std::vector<Tensor> out;
  auto it = reg.marked.lower_bound({r.device, r.end});  // first mark starting at or after the end
  while (it != reg.marked.begin()) {
    auto prev = std::prev(it);
    if (prev->first.first != r.device || prev->second.end <= r.begin) break;  // sorted, disjoint
    out.push_back(std::move(prev->second.tensor));
    reg.marked.erase(prev);
  }
  reg.count.store(reg.marked.size(), std::memory_order_relaxed);
  return out;
}

// Zero fills outside the lock (ops::fill names its operand, which comes back here).
void fill_zeros(std::vector<Tensor>& ts) {
  for (Tensor& t : ts) fill(t, 0.0f);
}

}  // namespace

void defer_zero_fill(const Tensor& t) {
  Range r;
  if (!range_of(t, r)) return;
  Registry& reg = registry();
  std::vector<Tensor> overlapped;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    overlapped = unmark_overlapping(reg, r);  // marked again as a whole below
    reg.marked[{r.device, r.begin}] = Marked{r.end, t};
    reg.count.store(reg.marked.size(), std::memory_order_relaxed);
  }
}

bool take_deferred_zero(const Tensor& t) {
  Range r;
  if (!any_deferred_zero() || !range_of(t, r)) return false;
  Registry& reg = registry();
  std::vector<Tensor> partial;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    auto it = reg.marked.find({r.device, r.begin});
    if (it != reg.marked.end() && it->second.end == r.end) {
      reg.marked.erase(it);
      reg.count.store(reg.marked.size(), std::memory_order_relaxed);
      return true;
    }
    partial = unmark_overlapping(reg, r);
  }
  fill_zeros(partial);
  return false;
}

void settle_deferred_zero(const Tensor& t) {
  Range r;
  if (!any_deferred_zero() || !range_of(t, r)) return;
  Registry& reg = registry();
  std::vector<Tensor> hit;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    hit = unmark_overlapping(reg, r);
  }
  fill_zeros(hit);
}

void settle_all_deferred_zeros() {
  if (!any_deferred_zero()) return;
  Registry& reg = registry();
  std::vector<Tensor> all;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    for (auto& [key, m] : reg.marked) all.push_back(std::move(m.tensor));
    reg.marked.clear();
    reg.count.store(0, std::memory_order_relaxed);
  }
  fill_zeros(all);
}

void drop_deferred_zero(const Tensor& t) {
  Range r;
  if (!any_deferred_zero() || !range_of(t, r)) return;
  Registry& reg = registry();
  std::vector<Tensor> dropped;  // released outside the lock
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    dropped = unmark_overlapping(reg, r);
  }
}

bool any_deferred_zero() { return registry().count.load(std::memory_order_relaxed) > 0; }

}  // namespace mambalm::ops
