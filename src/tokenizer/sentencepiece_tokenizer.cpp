// SentencePiece .model files (BPE and unigram) through Debian's libsentencepiece. The library
// does the encoding; this file adds what the interface promises on top: UTF-8 validation,
// special (control) tokens matched in text only when asked, and errors that name the file.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/loaders.h"
#include "tokenizer/utf8.h"

namespace mambalm {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    read_tokenizer_file(path);  // a clear "cannot read" error before the library's own message
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
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  int32_t pad_id() const override { return sp_.pad_id(); }
  std::string kind() const override { return "sentencepiece"; }

 private:
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<int> out;
    const auto status = sp_.Encode(text, &out);
    if (!status.ok()) fail(path_, "encoding failed: " + status.ToString());
    ids.insert(ids.end(), out.begin(), out.end());
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
};

}  // namespace

std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace mambalm
