// The one byte-level BPE merge loop shared by the tiktoken, GPT-2 and tokenizer.json
// tokenizers. Tokens are raw byte strings (the GPT-2 byte-to-unicode mapping is undone at load
// time); merges are pairs of token ids with a rank, lowest rank merged first, leftmost first on
// ties, as tiktoken and HF tokenizers both do.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mambalm {

class BytePairModel {
 public:
  BytePairModel();

  // Registers token `id` as the byte string `bytes` (ids may leave holes). Returns "" on
  // success, else why the token is refused: an id outside [0, limits::kMaxTokenId], an id that
  // already names a token, or bytes that already have another id. Loaders add the file and line.
  std::string add_token(int64_t id, std::string bytes);
  // Registers the merge (left, right) -> left+right with priority `rank` (lower merges first).
  // Returns false when left+right is not a token.
  bool add_merge(int32_t left, int32_t right, int32_t rank);
  // tiktoken: every token t of two or more bytes that splits into two tokens a+b gives the merge
  // (a, b) -> t with rank = id of t. Call after all tokens are added.
  void derive_merges_from_ranks();
  // After loading: every single byte must be a token; throws naming `where` otherwise.
  void finish(const std::string& where);

  // tiktoken and tokenizer.json's "ignore_merges": a piece that is itself a token is emitted
  // as that token without running merges.
  void set_whole_piece_lookup(bool on) { whole_piece_lookup_ = on; }

  // Appends the ids of `piece` (one pre-token, raw bytes) to `out`. Results are cached per
  // thread; safe to call from many threads at once.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  // Applies the merges to the token ids `syms` in place (lowest rank first, leftmost on ties):
  // the merge step of encode_piece for callers that choose the initial symbols themselves
  // (tokenizer.json BPE over characters, with byte fallback).
  void merge(std::vector<int32_t>& syms) const;

  int32_t find(std::string_view bytes) const;  // -1 when not a token
  const std::string* token_bytes(int32_t id) const;  // nullptr for a hole
  int64_t max_id() const { return static_cast<int64_t>(tokens_.size()) - 1; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const Merge* find_merge(int32_t left, int32_t right) const;
  void merge_small(std::vector<int32_t>& syms) const;
  void merge_large(std::vector<int32_t>& syms) const;

  std::vector<std::string> tokens_;  // id -> bytes
  std::vector<bool> present_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];
  bool whole_piece_lookup_ = false;
  uint64_t instance_;  // keys the per-thread caches
};

}  // namespace mambalm
