// open_tokenizer(): finds the tokenizer a path names, by file name and kind.
#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/loaders.h"

namespace mambalm {

namespace fs = std::filesystem;

std::string decode_generated(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  std::vector<int32_t> known;  // [<= ids.size()]
  known.reserve(ids.size());
  for (int32_t id : ids)
    if (id >= 0 && id < tokenizer.vocab_size()) known.push_back(id);
  return tokenizer.decode(known);
}

std::string read_tokenizer_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file", "check the tokenizer path");
  if (fs::is_directory(path, ec)) fail(path, "is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading", "check the file's permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, "read error");
  std::string data = ss.str();
  if (data.empty()) fail(path, "is empty", "the tokenizer file may be truncated");
  return data;
}

namespace {

std::unique_ptr<Tokenizer> open_directory(const fs::path& dir) {
  const fs::path json = dir / "tokenizer.json", model = dir / "tokenizer.model";
  const fs::path encoder = dir / "encoder.json", merges = dir / "vocab.bpe";
  if (fs::exists(json)) {
    try {
      return open_hf_bpe(json.string());
    } catch (const Error&) {
      if (!fs::exists(model)) throw;  // a SentencePiece-style tokenizer.json: use the .model
    }
  }
  if (fs::exists(model)) return open_sentencepiece(model.string());
  if (fs::exists(dir / "tokenizer.bytes")) return make_bytes_tokenizer();  // marker written by install_tokenizer
  if (fs::exists(encoder) && fs::exists(merges)) return open_gpt2(encoder.string(), merges.string());
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".tiktoken") return open_tiktoken(entry.path().string());
  fail(dir.string(), "no tokenizer found in this directory",
       "expected tokenizer.json, tokenizer.model, encoder.json + vocab.bpe, or a .tiktoken file");
}

}  // namespace

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path) {
  if (path == "bytes") return make_bytes_tokenizer();
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec))
    fail(path, "no such file or directory",
         "give a model directory, a tokenizer.json/.model/.tiktoken/encoder.json file, or 'bytes'");
  if (fs::is_directory(p, ec)) return open_directory(p);
  const std::string ext = p.extension().string(), name = p.filename().string();
  if (ext == ".model") return open_sentencepiece(path);
  if (ext == ".tiktoken") return open_tiktoken(path);
  if (name == "encoder.json" || name == "vocab.bpe") {
    const fs::path dir = p.parent_path();
    return open_gpt2((dir / "encoder.json").string(), (dir / "vocab.bpe").string());
  }
  if (ext == ".json") return open_hf_bpe(path);
  fail(path, "unrecognised tokenizer file",
       "expected tokenizer.json, a SentencePiece .model, a .tiktoken rank file, or encoder.json");
}

}  // namespace mambalm
