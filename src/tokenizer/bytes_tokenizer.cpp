// Raw bytes: ids 0..255 are the bytes themselves, then three specials. For tests and tiny
// models that should not depend on any vocabulary file.
#include "core/error.h"
#include "tokenizer/loaders.h"
#include "tokenizer/utf8.h"

namespace mambalm {

namespace {

constexpr int32_t kEos = 256, kBos = 257, kPad = 258;
const char* const kSpecials[] = {"<|endoftext|>", "<|begin_of_text|>", "<|pad|>"};

class BytesTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const override {
    utf8::validate(text, "bytes tokenizer input");
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      if (allow_special && text[i] == '<') {
        int32_t special = -1;
        for (int32_t k = 0; k < 3; ++k)
          if (text.substr(i).starts_with(kSpecials[k])) special = k;
        if (special >= 0) {
          ids.push_back(256 + special);
          i += std::string_view(kSpecials[special]).size();
          continue;
        }
      }
      ids.push_back(static_cast<unsigned char>(text[i++]));
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    out.reserve(ids.size());
    for (int32_t id : ids) {
      check(id >= 0 && id < 259, "bytes tokenizer", "cannot decode token id " + std::to_string(id),
            "ids are 0..255 (bytes) and 256..258 (specials)");
      if (id < 256) {
        out += static_cast<char>(id);
      } else {
        out += kSpecials[id - 256];
      }
    }
    return out;
  }

  int64_t vocab_size() const override { return 259; }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  int32_t pad_id() const override { return kPad; }
  std::string kind() const override { return "bytes"; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_bytes_tokenizer() { return std::make_unique<BytesTokenizer>(); }

}  // namespace mambalm
