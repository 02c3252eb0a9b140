// Hugging Face tokenizer.json BPE over characters with "byte_fallback": the Llama-2 / Mistral /
// Gemma family, as the HF tokenizers library defines it. Encoding: split out added tokens -> the
// normalizer steps (Prepend "▁", Replace " " by "▁", NFC/NFKC/...) on each text in between ->
// pre-tokenizers: Metaspace (" " -> "▁", a "▁" prepended, optionally split before each "▁": the
// form newer conversions write instead of the Prepend/Replace normalizers) and Split with a
// String pattern -> per piece, one symbol per character, or its UTF-8 bytes as <0xNN> tokens
// when the character is not in the vocabulary -> BPE merges. add_special_tokens() applies the
// post_processor (Llama-2: BOS first). Decoding runs the file's decoder steps (Replace "▁" by
// " ", ByteFallback, Fuse, Strip, Metaspace). Every other step (regex patterns, ...) is refused
// with an error naming it.
#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/byte_pair.h"
#include "tokenizer/hf_post_processor.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/json_token_id.h"
#include "tokenizer/unicode_normalize.h"
#include "tokenizer/utf8.h"

namespace mambalm {

namespace {

using nlohmann::json;

struct NormalizerStep {
  enum Kind { kPrepend, kReplace, kUnicode } kind;
  std::string from, to;  // kReplace: every `from` becomes `to`; kPrepend: `to` goes first
  UnicodeForm form = UnicodeForm::NFC;
};

// A Split pre-tokenizer with a literal String pattern, as HF's SplitDelimiterBehavior defines it.
struct LiteralSplit {
  enum Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous } behavior = kRemoved;
  std::string pattern;
};

// `text` cut at each occurrence of `split.pattern` (left to right, not overlapping); empty
// pieces are dropped, as HF drops them.
std::vector<std::string_view> split_literal(std::string_view text, const LiteralSplit& split) {
  struct Segment {
    size_t begin, end;
    bool match;
  };
  std::vector<Segment> segs;
  size_t prev = 0;
  for (size_t hit; (hit = text.find(split.pattern, prev)) != std::string_view::npos; prev = hit + split.pattern.size()) {
    if (hit != prev) segs.push_back({prev, hit, false});
    segs.push_back({hit, hit + split.pattern.size(), true});
  }
  if (prev != text.size()) segs.push_back({prev, text.size(), false});
  std::vector<Segment> out;
  bool previous_match = false;
  switch (split.behavior) {
    case LiteralSplit::kRemoved:
      for (const Segment& g : segs)
        if (!g.match) out.push_back(g);
      break;
    case LiteralSplit::kIsolated: out = segs; break;
    case LiteralSplit::kContiguous:
      for (const Segment& g : segs) {
        if (g.match && previous_match) out.back().end = g.end;
        else out.push_back(g);
        previous_match = g.match;
      }
      break;
    case LiteralSplit::kMergedWithPrevious:  // a match joins the piece before it (not another match)
      for (const Segment& g : segs) {
        if (g.match && !previous_match && !out.empty()) out.back().end = g.end;
        else out.push_back(g);
        previous_match = g.match;
      }
      break;
    case LiteralSplit::kMergedWithNext:  // a match joins the piece after it (not another match)
      for (auto g = segs.rbegin(); g != segs.rend(); ++g) {
        if (g->match && !previous_match && !out.empty()) out.back().begin = g->begin;
        else out.push_back(*g);
        previous_match = g->match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  std::vector<std::string_view> pieces;
  for (const Segment& g : out)
    if (g.end > g.begin) pieces.push_back(text.substr(g.begin, g.end - g.begin));
  return pieces;
}

// HF's Metaspace pre-tokenizer: every " " becomes `replacement`; then `replacement` goes first
// unless the piece starts with it already: always, never, or only on the piece that starts the
// input ("first": offset 0 of the original text, so not after an added token); then, with
// `split`, the piece is cut before each `replacement` (MergedWithNext).
struct Metaspace {
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  std::string replacement = "\u2581";
  bool split = true;
};

struct PreTokenizerStep {
  enum Kind { kSplit, kMetaspace } kind = kSplit;
  LiteralSplit split;  // kSplit; kMetaspace: the cut before each replacement (when meta.split)
  Metaspace meta;      // kMetaspace
};

// The Metaspace fields of a pre-tokenizer or decoder, with HF's defaults and its reading of
// older files (add_prefix_space: false means prepend_scheme "never").
Metaspace read_metaspace(const json& m, const std::string& where) {
  Metaspace out;
  const json& rep = m.value("replacement", json("\u2581"));
  check(rep.is_string() && !rep.get<std::string>().empty(), where, "Metaspace replacement must be one character");
  out.replacement = rep.get<std::string>();
  utf8::validate(out.replacement, where + " replacement");
  size_t one = 0;
  utf8::next(out.replacement, one);
  check(one == out.replacement.size(), where, "Metaspace replacement '" + out.replacement + "' is not one character");
  const std::string scheme = m.value("prepend_scheme", std::string("always"));
  if (scheme == "always") out.prepend = Metaspace::kAlways;
  else if (scheme == "first") out.prepend = Metaspace::kFirst;
  else if (scheme == "never") out.prepend = Metaspace::kNever;
  else fail(where, "Metaspace prepend_scheme '" + scheme + "' is unknown", "expected always, first or never");
  if (m.contains("add_prefix_space") && m["add_prefix_space"].is_boolean() && !m["add_prefix_space"].get<bool>()) {
    check(!m.contains("prepend_scheme") || out.prepend == Metaspace::kNever, where,
          "Metaspace add_prefix_space=false contradicts prepend_scheme '" + scheme + "'", "the file is corrupt");
    out.prepend = Metaspace::kNever;
  }
  out.split = m.contains("split") && m["split"].is_boolean() ? m["split"].get<bool>() : true;
  return out;
}

struct DecoderStep {
  enum Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
  std::string from, to;       // kReplace; kMetaspace: `from` is the replacement character
  char strip = ' ';           // kStrip: the character removed ...
  size_t start = 0, stop = 0; // ... at most this many times from each token's start and end
};

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos);
  s.swap(out);
}

// A Replace step's literal pattern; Regex patterns are refused.
std::string string_pattern(const json& step, const std::string& where) {
  const json& pat = step.value("pattern", json::object());
  check(pat.is_object() && pat.contains("String") && pat["String"].is_string() && !pat["String"].get<std::string>().empty(),
        where, "Replace without a non-empty String pattern is not supported",
        "only literal String patterns are (Llama-2 style files replace \" \" with \"\u2581\")");
  check(step.contains("content") && step["content"].is_string(), where, "Replace without a content string");
  return pat["String"].get<std::string>();
}

void add_normalizer(const json& n, std::vector<NormalizerStep>& steps, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = hf_type_of(n);
  if (type == "Sequence") {
    for (const json& step : n.value("normalizers", json::array())) add_normalizer(step, steps, where);
  } else if (type == "Prepend") {
    check(n.contains("prepend") && n["prepend"].is_string(), where, "Prepend normalizer without a prepend string");
    steps.push_back({NormalizerStep::kPrepend, "", n["prepend"].get<std::string>()});
  } else if (type == "Replace") {
    const std::string from = string_pattern(n, where);
    steps.push_back({NormalizerStep::kReplace, from, n["content"].get<std::string>()});
  } else if (const auto form = unicode_form_named(type)) {
    steps.push_back({NormalizerStep::kUnicode, "", "", *form});
  } else {
    fail(where, "normalizer '" + type + "' is not supported with byte_fallback BPE",
         "supported: Prepend, Replace (String), NFC, NFD, NFKC, NFKD, Sequence of these");
  }
}

void add_pre_tokenizer(const json& p, std::vector<PreTokenizerStep>& steps, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = hf_type_of(p);
  if (type == "Sequence") {
    for (const json& step : p.value("pretokenizers", json::array())) add_pre_tokenizer(step, steps, where);
    return;
  }
  if (type == "Metaspace") {
    PreTokenizerStep& step = steps.emplace_back();
    step.kind = PreTokenizerStep::kMetaspace;
    step.meta = read_metaspace(p, where + " pre_tokenizer");
    // split: cut before each replacement, which joins the word after it.
    step.split.behavior = LiteralSplit::kMergedWithNext;
    step.split.pattern = step.meta.replacement;
    return;
  }
  const char* hint = "supported: none, Metaspace, Split with a String pattern, Sequence of these";
  check(type == "Split", where, "pre_tokenizer '" + type + "' is not supported with byte_fallback BPE", hint);
  const json& pat = p.value("pattern", json::object());
  check(pat.is_object() && pat.contains("String") && pat["String"].is_string() && !pat["String"].get<std::string>().empty(),
        where, "Split pre-tokenizer without a non-empty String pattern is not supported with byte_fallback BPE", hint);
  check(!hf_truthy(p, "invert"), where, "Split with invert=true is not supported");
  const std::string behavior = p.value("behavior", std::string("?"));
  LiteralSplit split{LiteralSplit::kRemoved, pat["String"].get<std::string>()};
  if (behavior == "Removed") split.behavior = LiteralSplit::kRemoved;
  else if (behavior == "Isolated") split.behavior = LiteralSplit::kIsolated;
  else if (behavior == "MergedWithPrevious") split.behavior = LiteralSplit::kMergedWithPrevious;
  else if (behavior == "MergedWithNext") split.behavior = LiteralSplit::kMergedWithNext;
  else if (behavior == "Contiguous") split.behavior = LiteralSplit::kContiguous;
  else fail(where, "Split behavior '" + behavior + "' is unknown", "expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
  PreTokenizerStep& step = steps.emplace_back();
  step.kind = PreTokenizerStep::kSplit;
  step.split = std::move(split);
}

void add_decoder(const json& d, std::vector<DecoderStep>& steps, const std::string& where) {
  const std::string type = hf_type_of(d);
  if (type == "Sequence") {
    for (const json& step : d.value("decoders", json::array())) add_decoder(step, steps, where);
  } else if (type == "Replace") {
    const std::string from = string_pattern(d, where);
    steps.push_back({DecoderStep::kReplace, from, d["content"].get<std::string>()});
  } else if (type == "ByteFallback") {
    steps.push_back({DecoderStep::kByteFallback, "", ""});
  } else if (type == "Fuse") {
    steps.push_back({DecoderStep::kFuse, "", ""});
  } else if (type == "Strip") {
    const std::string content = d.value("content", std::string(" "));
    check(content.size() == 1, where, "Strip decoder with content '" + content + "' is not supported",
          "only a one-byte character (a space) is");
    const json start = d.value("start", json(0)), stop = d.value("stop", json(0));
    check(start.is_number_unsigned() && stop.is_number_unsigned(), where,
          "Strip decoder start/stop must be non-negative integers");
    steps.push_back({DecoderStep::kStrip, "", "", content[0], start.get<size_t>(), stop.get<size_t>()});
  } else if (type == "Metaspace") {
    const Metaspace m = read_metaspace(d, where + " decoder");
    steps.push_back({DecoderStep::kMetaspace, m.replacement, m.prepend == Metaspace::kNever ? "" : "strip-first"});
  } else {
    fail(where, "decoder '" + type + "' is not supported with byte_fallback BPE",
         "supported: Replace (String), ByteFallback, Fuse, Strip, Metaspace, Sequence of these");
  }
}

// "<0x41>" -> 0x41; -1 when `token` is not a byte token. HF looks them up as "<0x%02X>" when
// encoding (`upper_only`) and reads either case of hex digit when decoding.
int byte_token_value(std::string_view token, bool upper_only = false) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int v = 0;
  for (char c : token.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') v += c - '0';
    else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
    else if (c >= 'a' && c <= 'f' && !upper_only) v += c - 'a' + 10;
    else return -1;
  }
  return v;
}

struct FallbackSpec {
  std::string source;
  BytePairModel model;  // tokens are the vocabulary's UTF-8 strings ("▁the", "<0x0A>")
  int32_t byte_ids[256];
  bool byte_fallback = true;
  int32_t unk = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;  // applied in order, each refining the last's pieces
  std::vector<DecoderStep> decoders;
  std::vector<AddedToken> added;
  int64_t vocab_size = 0;
  int32_t bos = -1, eos = -1, pad = -1;
  SpecialTokenTemplate post;  // add_special_tokens()
};

class ByteFallbackBpeTokenizer final : public Tokenizer {
 public:
  explicit ByteFallbackBpeTokenizer(std::unique_ptr<FallbackSpec> spec)
      : s_(std::move(spec)), added_(s_->added, s_->source) {
    s_->vocab_size = std::max<int64_t>(s_->model.max_id(), added_.max_id()) + 1;
  }

  std::vector<int32_t> encode(std::string_view text, bool allow_special) const override {
    utf8::validate(text, "hf-bpe tokenizer input");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    // Metaspace "first" needs to know which section starts the input.
    added_.encode(text, allow_special, ids, [this, text](std::string_view piece, std::vector<int32_t>& out) {
      encode_section(piece, piece.data() == text.data(), out);
    });
    return ids;
  }

  std::vector<int32_t> add_special_tokens(std::vector<int32_t> ids) const override { return s_->post.apply(std::move(ids)); }

  // The decoder steps of the file, except that a run of byte tokens that is not valid UTF-8
  // stays raw bytes (the Tokenizer contract, so streamed text can be completed later) where HF
  // writes one U+FFFD per byte.
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      if (const std::string* added = added_.text_of(id)) {
        tokens.push_back(*added);
        continue;
      }
      const std::string* text = s_->model.token_bytes(id);
      if (!text)
        fail(s_->source, "cannot decode token id " + std::to_string(id),
             "ids must be below the vocabulary size " + std::to_string(s_->vocab_size) + " and name a token");
      tokens.push_back(*text);
    }
    for (const DecoderStep& step : s_->decoders) {
      switch (step.kind) {
        case DecoderStep::kReplace:
          for (std::string& t : tokens) replace_all(t, step.from, step.to);
          break;
        case DecoderStep::kByteFallback: tokens = fuse_byte_tokens(std::move(tokens)); break;
        case DecoderStep::kFuse: {
          std::string all;
          for (const std::string& t : tokens) all += t;
          tokens.assign(1, std::move(all));
          break;
        }
        case DecoderStep::kMetaspace:
          // As HF: the replacement becomes a space, except in the first token, where every one
          // is dropped (unless prepend_scheme is "never").
          for (size_t i = 0; i < tokens.size(); ++i)
            replace_all(tokens[i], step.from, i == 0 && !step.to.empty() ? "" : " ");
          break;
        case DecoderStep::kStrip:
          for (std::string& t : tokens) {
            size_t head = 0, tail = 0;
            while (head < step.start && head < t.size() && t[head] == step.strip) ++head;
            while (tail < step.stop && tail + head < t.size() && t[t.size() - 1 - tail] == step.strip) ++tail;
            t = t.substr(head, t.size() - head - tail);
          }
          break;
      }
    }
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }

  int64_t vocab_size() const override { return s_->vocab_size; }
  int32_t bos_id() const override { return s_->bos; }
  int32_t eos_id() const override { return s_->eos; }
  int32_t pad_id() const override { return s_->pad; }
  std::string kind() const override { return "hf-bpe"; }

 private:
  static std::vector<std::string> fuse_byte_tokens(std::vector<std::string> tokens) {
    std::vector<std::string> out;
    std::string run;
    bool in_run = false;
    for (std::string& t : tokens) {
      const int byte = byte_token_value(t);
      if (byte >= 0) {
        run += static_cast<char>(byte);
        in_run = true;
        continue;
      }
      if (in_run) out.push_back(std::move(run)), run.clear(), in_run = false;
      out.push_back(std::move(t));
    }
    if (in_run) out.push_back(std::move(run));
    return out;
  }

  // A piece of the text on its way through the pre-tokenizers; `at_origin` when it starts at
  // offset 0 of the input (where Metaspace "first" prepends).
  struct Piece {
    std::string text;
    bool at_origin;
  };

  // One text between added tokens: normalize, pre-tokenize (legacy Llama-2 style files do not),
  // then BPE over the characters of each piece.
  void encode_section(std::string_view section, bool at_origin, std::vector<int32_t>& ids) const {
    if (section.empty()) return;
    std::string text(section);
    for (const NormalizerStep& n : s_->normalizers) {
      switch (n.kind) {
        case NormalizerStep::kPrepend:
          if (!text.empty()) text = n.to + text;
          break;
        case NormalizerStep::kReplace: replace_all(text, n.from, n.to); break;
        case NormalizerStep::kUnicode: text = unicode_normalize(text, n.form, s_->source); break;
      }
    }
    if (text.empty()) return;
    if (s_->pre_tokenizers.empty()) {
      encode_piece(text, ids);
      return;
    }
    std::vector<Piece> pieces, refined;
    pieces.push_back({std::move(text), at_origin});
    for (const PreTokenizerStep& step : s_->pre_tokenizers) {
      refined.clear();
      for (Piece& p : pieces) pre_tokenize(step, p, refined);
      pieces.swap(refined);
    }
    for (const Piece& p : pieces) encode_piece(p.text, ids);
  }

  static void pre_tokenize(const PreTokenizerStep& step, Piece& p, std::vector<Piece>& out) {
    if (step.kind == PreTokenizerStep::kMetaspace) {
      const Metaspace& m = step.meta;
      replace_all(p.text, " ", m.replacement);
      const bool prepend = m.prepend == Metaspace::kAlways || (m.prepend == Metaspace::kFirst && p.at_origin);
      if (prepend && !p.text.empty() && p.text.compare(0, m.replacement.size(), m.replacement) != 0)
        p.text = m.replacement + p.text;
      if (!m.split) {
        if (!p.text.empty()) out.push_back(std::move(p));
        return;
      }
    }
    for (std::string_view q : split_literal(p.text, step.split))
      out.push_back({std::string(q), p.at_origin && q.data() == p.text.data()});
  }

  void encode_piece(std::string_view text, std::vector<int32_t>& ids) const {
    if (s_->ignore_merges) {
      if (const int32_t whole = s_->model.find(text); whole >= 0) {
        ids.push_back(whole);
        return;
      }
    }
    std::vector<int32_t> syms;
    syms.reserve(text.size());
    bool pending_unk = false;  // fuse_unk: consecutive unknown characters become one <unk>
    for (size_t i = 0; i < text.size();) {
      const size_t begin = i;
      utf8::next(text, i);
      const std::string_view ch = text.substr(begin, i - begin);
      if (const int32_t id = s_->model.find(ch); id >= 0) {
        if (pending_unk) syms.push_back(s_->unk), pending_unk = false;
        syms.push_back(id);
        continue;
      }
      if (s_->byte_fallback &&
          std::all_of(ch.begin(), ch.end(), [&](char b) { return s_->byte_ids[static_cast<unsigned char>(b)] >= 0; })) {
        // As HF: a pending fused <unk> is emitted after these bytes, not before.
        for (char b : ch) syms.push_back(s_->byte_ids[static_cast<unsigned char>(b)]);
        continue;
      }
      if (s_->unk < 0)
        fail(s_->source, "character '" + std::string(ch) + "' is not in the vocabulary",
             "the tokenizer has neither a byte token for it nor an unk_token");
      if (pending_unk && !s_->fuse_unk) syms.push_back(s_->unk);
      pending_unk = true;
    }
    if (pending_unk) syms.push_back(s_->unk);
    s_->model.merge(syms);
    ids.insert(ids.end(), syms.begin(), syms.end());
  }

  std::unique_ptr<FallbackSpec> s_;
  AddedTokenMatcher added_;
};

}  // namespace

std::unique_ptr<Tokenizer> open_hf_byte_fallback_bpe(const json& doc, const std::string& path) {
  const json& model = doc["model"];
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    check(!model.contains(key) || model[key].is_null() || model[key] == "", path,
          std::string("BPE ") + key + " is not supported", "Llama-2 style files do not use it");
  check(!model.contains("dropout") || model["dropout"].is_null() || model["dropout"] == 0.0, path,
        "BPE dropout is not supported", "dropout is for training only; remove it");

  auto spec = std::make_unique<FallbackSpec>();
  spec->source = path;
  std::fill(std::begin(spec->byte_ids), std::end(spec->byte_ids), -1);
  spec->byte_fallback = hf_truthy(model, "byte_fallback");
  spec->fuse_unk = hf_truthy(model, "fuse_unk");
  spec->ignore_merges = hf_truthy(model, "ignore_merges");
  add_normalizer(doc.value("normalizer", json()), spec->normalizers, path);
  add_pre_tokenizer(doc.value("pre_tokenizer", json()), spec->pre_tokenizers, path);
  const json& decoder = doc.value("decoder", json());
  check(!decoder.is_null(), path, "byte_fallback BPE without a decoder is not supported",
        "Llama-2 style files decode with Replace, ByteFallback, Fuse and Strip");
  add_decoder(decoder, spec->decoders, path);
  spec->added = hf_added_tokens(doc, path);

  const json& vocab = model.value("vocab", json::object());
  check(vocab.is_object() && !vocab.empty(), path, "model.vocab is missing or empty");
  for (const auto& [token, id] : vocab.items()) {
    const int32_t checked = json_token_id(id, path, "vocab token '" + token + "'");
    utf8::validate(token, path + " vocab token " + std::to_string(checked));
    const std::string refused = spec->model.add_token(checked, token);
    if (!refused.empty()) fail(path, "vocab token '" + token + "': " + refused, "the file is corrupt");
    if (const int byte = byte_token_value(token, true); byte >= 0) spec->byte_ids[byte] = checked;
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const std::string unk = model["unk_token"].get<std::string>();
    spec->unk = spec->model.find(unk);
    check(spec->unk >= 0, path, "unk_token '" + unk + "' is not in the vocabulary", "the file is corrupt");
  }
  const json& merges = model.value("merges", json::array());
  check(merges.is_array(), path, "model.merges is not a list");
  int32_t rank = 0;
  for (const json& m : merges) {
    std::string a, b;
    hf_merge_pair(m, rank, path, a, b);
    const int32_t left = spec->model.find(a), right = spec->model.find(b);
    if (left < 0 || right < 0 || !spec->model.add_merge(left, right, rank))
      fail(path, "merge " + std::to_string(rank) + " ('" + a + "', '" + b + "') is not over vocabulary tokens",
           "the merges and the vocab must come from the same tokenizer");
    ++rank;
  }
  hf_special_ids(path, spec->added, spec->bos, spec->eos, spec->pad);
  spec->post = hf_post_processor(doc, hf_tokenizer_config(path), spec->added,
                                 [&](const std::string& name) { return spec->model.find(name); }, path);
  return std::make_unique<ByteFallbackBpeTokenizer>(std::move(spec));
}

}  // namespace mambalm
