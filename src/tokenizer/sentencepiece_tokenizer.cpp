// SentencePiece .model files (BPE and unigram) through Debian's libsentencepiece. The library
// does the encoding; this file adds what the interface promises on top: UTF-8 validation,
// special (control) tokens matched in text only when asked, and errors that name the file.
//
// Speed (bench/NOTES.md "SentencePiece in prepare"): the library costs microseconds per call and
// grows faster than linearly on long inputs (a 200 KB document encodes at a fraction of the
// speed of its paragraphs). For BPE models whose pieces never hold the whitespace mark U+2581
// past their first byte and whose normalizer collapses whitespace and adds the dummy prefix (what
// `mambalm tokenizer train` and SentencePiece's defaults write), encoding is local to words: no
// merge can join the symbols on either side of a single space between two printable ASCII
// characters, and normalizing " word..." alone gives the same "▁word..." as inside the text.
// Such text is cut before those spaces, each piece encoded on its own, and short pieces are
// remembered per thread, so a frequent word is encoded once. The ids are the library's, bit for
// bit (tests/test_prepare.cpp compares them with whole-document encoding). Other models (unigram,
// Llama-style "▁▁" pieces, no whitespace collapsing, custom rules) take the whole-text path.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <functional>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "tokenizer/loaders.h"
#include "tokenizer/utf8.h"

namespace mambalm {

namespace {

// The few fields of sentencepiece_model.proto that decide whether encoding is local to words
// (Debian ships no .proto header, so the wire format is read directly; anything unexpected
// leaves `parsed` false and the whole-text path in use).
struct ModelFacts {
  bool parsed = false;
  int64_t model_type = 1;  // TrainerSpec.model_type: UNIGRAM = 1 (default), BPE = 2, WORD, CHAR
  std::string normalizer;  // NormalizerSpec.name
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;  // proto defaults
  bool custom_rules = false;  // NormalizerSpec.normalization_rule_tsv
};

bool read_varint(std::string_view s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= s.size()) return false;
    const auto b = static_cast<unsigned char>(s[pos++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Calls each(field, wire type, varint value, bytes) for every field of one message; false on
// malformed input.
template <class F>
bool for_each_field(std::string_view msg, F&& each) {
  size_t pos = 0;
  while (pos < msg.size()) {
    uint64_t key = 0, value = 0;
    if (!read_varint(msg, pos, key)) return false;
    const uint64_t field = key >> 3, wire = key & 7;
    std::string_view bytes;
    if (wire == 0) {
      if (!read_varint(msg, pos, value)) return false;
    } else if (wire == 2) {
      if (!read_varint(msg, pos, value) || value > msg.size() - pos) return false;
      bytes = msg.substr(pos, static_cast<size_t>(value));
      pos += static_cast<size_t>(value);
    } else if (wire == 1 || wire == 5) {
      const size_t n = wire == 1 ? 8 : 4;
      if (n > msg.size() - pos) return false;
      pos += n;
    } else {
      return false;
    }
    each(field, wire, value, bytes);
  }
  return true;
}

ModelFacts read_model_facts(std::string_view model) {
  ModelFacts f;
  bool ok = true;
  f.parsed = for_each_field(model, [&](uint64_t field, uint64_t wire, uint64_t, std::string_view bytes) {
    if (wire != 2) return;
    if (field == 2) {  // TrainerSpec
      ok = ok && for_each_field(bytes, [&](uint64_t k, uint64_t w, uint64_t v, std::string_view) {
             if (k == 3 && w == 0) f.model_type = static_cast<int64_t>(v);
           });
    } else if (field == 3) {  // NormalizerSpec
      ok = ok && for_each_field(bytes, [&](uint64_t k, uint64_t w, uint64_t v, std::string_view b) {
             if (k == 1 && w == 2) f.normalizer = std::string(b);
             if (k == 3 && w == 0) f.add_dummy_prefix = v != 0;
             if (k == 4 && w == 0) f.remove_extra_whitespaces = v != 0;
             if (k == 5 && w == 0) f.escape_whitespaces = v != 0;
             if (k == 6 && w == 2) f.custom_rules = !b.empty();
           });
    }
  });
  f.parsed = f.parsed && ok;
  return f;
}

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's whitespace

bool printable_ascii(char c) { return c > ' ' && c < 0x7F; }

// Segments remembered per thread: up to this many bytes each.
constexpr size_t kCachedSegmentBytes = 48;
std::atomic<uint64_t> next_instance{1};

// Segment -> ids, per thread: an open-addressing table (linear probing, at most half full) over
// two arenas, one memory access per probe. It starts small (a thread that encodes one prompt
// holds little) and doubles up to kMaxSlots; when that is half full it is emptied and refilled.
// (A node-based std::unordered_map spent 40% of prepare's time walking its buckets.)
class SegmentCache {
 public:
  uint64_t owner = 0;  // the tokenizer instance whose segments these are

  void reset(uint64_t new_owner) {
    owner = new_owner;
    slots_.assign(kMinSlots, Slot{});
    keys_.clear();
    values_.clear();
    used_ = 0;
  }

  // Appends the cached ids of `segment` to `ids`; false when it is not cached.
  bool append(std::string_view segment, std::vector<int32_t>& ids) const {
    if (slots_.empty()) return false;
    const uint64_t h = hash(segment);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return false;
      if (s.hash == h && s.key_len == segment.size() && keys_.compare(s.key_at, s.key_len, segment) == 0) {
        ids.insert(ids.end(), values_.begin() + s.ids_at, values_.begin() + s.ids_at + s.ids_len);
        return true;
      }
    }
  }

  void insert(std::string_view segment, const std::vector<int32_t>& ids) {
    if (slots_.empty() || keys_.size() + segment.size() > UINT32_MAX || values_.size() + ids.size() > UINT32_MAX) reset(owner);
    if (used_ >= slots_.size() / 2) {
      if (slots_.size() >= kMaxSlots) {
        reset(owner);
      } else {  // double, re-placing every entry by its hash
        std::vector<Slot> old(slots_.size() * 2);
        old.swap(slots_);
        for (const Slot& s : old)
          if (s.hash != 0) place(s);
      }
    }
    place({hash(segment), static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(segment.size()),
           static_cast<uint32_t>(values_.size()), static_cast<uint32_t>(ids.size())});
    keys_.append(segment);
    values_.insert(values_.end(), ids.begin(), ids.end());
    ++used_;
  }

 private:
  static constexpr size_t kMinSlots = size_t{1} << 10, kMaxSlots = size_t{1} << 19;
  struct Slot {
    uint64_t hash = 0;  // 0 = empty (hash() never returns 0)
    uint32_t key_at = 0, key_len = 0, ids_at = 0, ids_len = 0;
  };
  static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s) | 1; }

  void place(const Slot& s) {
    const size_t mask = slots_.size() - 1;
    size_t i = s.hash & mask;
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }

  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> values_;
  size_t used_ = 0;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    // A clear "cannot read" error before the library's own message.
    const std::string bytes = read_tokenizer_file(path);
    const auto status = sp_.Load(path);
    if (!status.ok())
      fail(path, "not a SentencePiece model: " + status.ToString(),
           "expected a tokenizer.model / .model file written by SentencePiece");
    for (int id = 0; id < sp_.GetPieceSize(); ++id) {
      if (!sp_.IsControl(id)) continue;
      const std::string piece = sp_.IdToPiece(id);
      if (piece.empty()) continue;
      controls_[piece] = id;
      max_control_len_ = std::max(max_control_len_, piece.size());
    }
    word_local_ = encoding_is_word_local(read_model_facts(bytes));
  }

  std::vector<int32_t> encode(std::string_view text, bool allow_special) const override {
    utf8::validate(text, "sentencepiece tokenizer input");
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t start = text.size(), len = 0;
      int32_t special = -1;
      if (allow_special && !controls_.empty()) find_control(text, pos, start, len, special);
      encode_plain(text.substr(pos, start - pos), ids);
      if (special < 0) break;
      ids.push_back(special);
      pos = start + len;
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string text;
      const auto status = sp_.Decode(run, &text);
      if (!status.ok()) fail(path_, "cannot decode: " + status.ToString());
      out += text;
      run.clear();
    };
    for (int32_t id : ids) {
      check(id >= 0 && id < sp_.GetPieceSize(), path_, "cannot decode token id " + std::to_string(id),
            "ids must be below the vocabulary size " + std::to_string(sp_.GetPieceSize()));
      if (sp_.IsControl(id)) {
        flush();
        out += sp_.IdToPiece(id);
      } else {
        run.push_back(id);
      }
    }
    flush();
    return out;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  bool encodes_by_words() const { return word_local_; }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  int32_t pad_id() const override { return sp_.pad_id(); }
  std::string kind() const override { return "sentencepiece"; }

 private:
  // See the top of the file: true when cutting text before a single space between two printable
  // ASCII characters cannot change the ids.
  bool encoding_is_word_local(const ModelFacts& f) const {
    if (!f.parsed || f.model_type != 2 || !f.add_dummy_prefix || !f.remove_extra_whitespaces || !f.escape_whitespaces ||
        f.custom_rules)
      return false;
    if (f.normalizer != "nmt_nfkc" && f.normalizer != "nfkc" && f.normalizer != "nmt_nfkc_cf" && f.normalizer != "nfkc_cf" &&
        f.normalizer != "identity")
      return false;
    if (sp_.PieceToId(std::string(kSpaceMark)) == sp_.unk_id()) return false;
    for (int id = 0; id < sp_.GetPieceSize(); ++id) {
      // A piece with the mark past its start, or a raw space (a user-defined symbol), could span a cut.
      const std::string& piece = sp_.IdToPiece(id);
      if (piece.find(kSpaceMark, 1) != std::string::npos || piece.find(' ') != std::string::npos) return false;
    }
    return true;
  }

  void encode_library(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<int> out;
    const auto status = sp_.Encode(text, &out);
    if (!status.ok()) fail(path_, "encoding failed: " + status.ToString());
    ids.insert(ids.end(), out.begin(), out.end());
  }

  void encode_segment(std::string_view segment, std::vector<int32_t>& ids) const {
    if (segment.size() > kCachedSegmentBytes) return encode_library(segment, ids);
    thread_local SegmentCache cache;
    if (cache.owner != instance_) cache.reset(instance_);
    if (!cache.append(segment, ids)) {
      std::vector<int32_t> fresh;
      encode_library(segment, fresh);
      cache.insert(segment, fresh);
      ids.insert(ids.end(), fresh.begin(), fresh.end());
    }
  }

  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    if (!word_local_) return encode_library(text, ids);
    size_t start = 0;
    for (size_t i = 1; i + 1 < text.size(); ++i) {
      if (text[i] != ' ' || !printable_ascii(text[i - 1]) || !printable_ascii(text[i + 1])) continue;
      encode_segment(text.substr(start, i - start), ids);
      start = i;
    }
    encode_segment(text.substr(start), ids);
  }

  void find_control(std::string_view text, size_t pos, size_t& start, size_t& len, int32_t& id) const {
    for (size_t i = pos; i < text.size(); ++i) {
      for (size_t l = std::min(max_control_len_, text.size() - i); l >= 1; --l) {
        auto it = controls_.find(std::string(text.substr(i, l)));
        if (it == controls_.end()) continue;
        start = i, len = l, id = it->second;
        return;
      }
    }
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  std::unordered_map<std::string, int32_t> controls_;
  size_t max_control_len_ = 0;
  bool word_local_ = false;                 // encoding may be cut into words (above)
  const uint64_t instance_ = next_instance++;  // whose words a thread's cache holds
};

}  // namespace

std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

bool sentencepiece_encodes_by_words(const Tokenizer& tokenizer) {
  const auto* sp = dynamic_cast<const SentencePieceTokenizer*>(&tokenizer);
  return sp != nullptr && sp->encodes_by_words();
}

}  // namespace mambalm
