#include "tokenizer/byte_pair.h"

#include <atomic>
#include <limits>
#include <memory>
#include <queue>

#include "core/error.h"
#include "core/limits.h"

namespace mambalm {

namespace {

std::atomic<uint64_t> next_instance{1};

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Per-thread cache of piece -> ids for one model instance. Bounded: cleared when full, which
// keeps memory flat on corpora with endless unique pieces while common words stay hot.
struct PieceCache {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
};
constexpr size_t kCacheLimit = 1 << 18;
constexpr size_t kCachedPieceMaxBytes = 64;

PieceCache& cache_for(uint64_t instance) {
  thread_local uint64_t cached_instance = 0;
  thread_local std::unique_ptr<PieceCache> cache;
  thread_local std::unordered_map<uint64_t, std::unique_ptr<PieceCache>> others;
  if (cached_instance == instance) return *cache;
  if (cache) others[cached_instance] = std::move(cache);
  auto it = others.find(instance);
  if (it != others.end()) {
    cache = std::move(it->second);
    others.erase(it);
  } else {
    cache = std::make_unique<PieceCache>();
  }
  if (others.size() > 8) others.clear();  // bound memory when many tokenizers come and go
  cached_instance = instance;
  return *cache;
}

}  // namespace

BytePairModel::BytePairModel() : instance_(next_instance.fetch_add(1)) {
  for (int32_t& id : byte_ids_) id = -1;
}

std::string BytePairModel::add_token(int64_t id, std::string bytes) {
  if (id < 0 || id > limits::kMaxTokenId)
    return "token id " + std::to_string(id) + " is out of range [0, " + std::to_string(limits::kMaxTokenId) + "]";
  if (bytes.empty()) return "token " + std::to_string(id) + " is empty";
  if (static_cast<size_t>(id) < tokens_.size() && present_[static_cast<size_t>(id)])
    return "token id " + std::to_string(id) + " appears twice";
  if (const int32_t other = find(bytes); other >= 0)
    return "token " + std::to_string(id) + " has the same bytes as token " + std::to_string(other);
  const size_t i = static_cast<size_t>(id);
  if (i >= tokens_.size()) {
    tokens_.resize(i + 1);
    present_.resize(i + 1, false);
  }
  if (bytes.size() == 1) byte_ids_[static_cast<unsigned char>(bytes[0])] = static_cast<int32_t>(id);
  ids_.emplace(bytes, static_cast<int32_t>(id));
  tokens_[i] = std::move(bytes);
  present_[i] = true;
  return "";
}

bool BytePairModel::add_merge(int32_t left, int32_t right, int32_t rank) {
  const int32_t merged = find(tokens_[left] + tokens_[right]);
  if (merged < 0) return false;
  merges_.emplace(pair_key(left, right), Merge{rank, merged});
  return true;
}

void BytePairModel::derive_merges_from_ranks() {
  merges_.reserve(tokens_.size() * 4);
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (!present_[id]) continue;
    const std::string_view t = tokens_[id];
    for (size_t k = 1; k < t.size(); ++k) {
      const int32_t a = find(t.substr(0, k));
      if (a < 0) continue;
      const int32_t b = find(t.substr(k));
      if (b < 0) continue;
      merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(id), static_cast<int32_t>(id)});
    }
  }
}

void BytePairModel::finish(const std::string& where) {
  for (int b = 0; b < 256; ++b)
    if (byte_ids_[b] < 0)
      fail(where, "byte " + std::to_string(b) + " has no token",
           "a byte-level BPE vocabulary must contain all 256 single bytes");
}

int32_t BytePairModel::find(std::string_view bytes) const {
  auto it = ids_.find(bytes);
  return it == ids_.end() ? -1 : it->second;
}

const std::string* BytePairModel::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !present_[id]) return nullptr;
  return &tokens_[id];
}

const BytePairModel::Merge* BytePairModel::find_merge(int32_t left, int32_t right) const {
  auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

// Short pieces (almost all): keep the rank of each adjacent pair, merge the best, and
// recompute only the two neighbouring pairs; O(n^2) scans but O(n) hash lookups.
void BytePairModel::merge_small(std::vector<int32_t>& syms) const {
  constexpr int32_t kNone = std::numeric_limits<int32_t>::max();
  std::vector<int32_t> rank(syms.size(), kNone);  // rank[i]: pair (syms[i], syms[i+1])
  auto rank_of = [&](size_t i) {
    const Merge* m = find_merge(syms[i], syms[i + 1]);
    return m ? m->rank : kNone;
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) rank[i] = rank_of(i);
  while (syms.size() > 1) {
    size_t best = 0;
    int32_t best_rank = kNone;
    for (size_t i = 0; i + 1 < syms.size(); ++i)
      if (rank[i] < best_rank) best_rank = rank[i], best = i;
    if (best_rank == kNone) break;
    syms[best] = find_merge(syms[best], syms[best + 1])->merged;
    syms.erase(syms.begin() + best + 1);
    rank.erase(rank.begin() + best + 1);
    rank[best] = best + 1 < syms.size() ? rank_of(best) : kNone;
    if (best > 0) rank[best - 1] = rank_of(best - 1);
  }
}

// Long pieces (runs of one character, long words in scripts without spaces): a heap of
// candidate pairs over a doubly linked list, O(n log n). Same order as merge_small: lowest
// rank, then leftmost position.
void BytePairModel::merge_large(std::vector<int32_t>& syms) const {
  const int32_t n = static_cast<int32_t>(syms.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Candidate {
    int32_t rank, pos, left, right;  // left/right ids at push time, to detect stale entries
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const Merge* m = find_merge(syms[i], syms[next[i]])) heap.push({m->rank, i, syms[i], syms[next[i]]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t i = c.pos;
    if (!alive[i] || next[i] < 0 || syms[i] != c.left || syms[next[i]] != c.right) continue;
    const int32_t j = next[i];
    syms[i] = find_merge(c.left, c.right)->merged;
    alive[j] = false;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  std::vector<int32_t> out;
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(syms[i]);
  syms.swap(out);
}

void BytePairModel::merge(std::vector<int32_t>& syms) const {
  if (syms.size() <= 128) {
    merge_small(syms);
  } else {
    merge_large(syms);
  }
}

void BytePairModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (whole_piece_lookup_) {
    const int32_t id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = piece.size() <= kCachedPieceMaxBytes;
  PieceCache* cache = nullptr;
  if (cacheable) {
    cache = &cache_for(instance_);
    auto it = cache->map.find(piece);
    if (it != cache->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> syms(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) syms[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
  merge(syms);
  out.insert(out.end(), syms.begin(), syms.end());
  if (cacheable) {
    if (cache->map.size() >= kCacheLimit) cache->map.clear();
    cache->map.emplace(std::string(piece), std::move(syms));
  }
}

}  // namespace mambalm
