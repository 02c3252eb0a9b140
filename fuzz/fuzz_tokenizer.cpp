// Every tokenizer file format, chosen by the first input byte: tokenizer.json, .tiktoken
// (r50k_base), GPT-2 encoder.json + vocab.bpe (split at "\n----\n"), SentencePiece .model.
// A tokenizer that loads encodes and decodes a fixed text.
#include "fuzz_input.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t kind = data[0] % 4;
  ++data, --size;
  return mambalm::fuzz::expect_error_or_success([&] {
    std::string path;
    switch (kind) {
      case 0: path = mambalm::fuzz::write_input("tokenizer.json", data, size); break;
      case 1: path = mambalm::fuzz::write_input("r50k_base.tiktoken", data, size); break;
      case 2: {
        auto [encoder, merges] = mambalm::fuzz::split_two(data, size);
        mambalm::fuzz::write_input("vocab.bpe", reinterpret_cast<const uint8_t*>(merges.data()), merges.size());
        path = mambalm::fuzz::write_input("encoder.json", reinterpret_cast<const uint8_t*>(encoder.data()), encoder.size());
        break;
      }
      default: path = mambalm::fuzz::write_input("fuzz.model", data, size); break;
    }
    auto tok = mambalm::open_tokenizer(path);
    const std::vector<int32_t> ids = tok->encode("Hello, world! 123 <|endoftext|> \xc3\xa9t\xc3\xa9", true);
    (void)tok->decode(ids);
  });
}
