#include "tokenizer/install.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "tokenizer/tokenizer.h"

namespace mambalm {

namespace fs = std::filesystem;

void install_tokenizer(const std::string& tokenizer_path, const std::string& model_dir) {
  open_tokenizer(tokenizer_path);  // validate before copying anything
  fs::create_directories(model_dir);
  const fs::path dir(model_dir);
  if (tokenizer_path == "bytes") {
    io::write_file_atomically((dir / "tokenizer.bytes").string(),
                              "mambalm byte tokenizer: ids 0-255 are bytes, 256 <|endoftext|>, 257 <|begin_of_text|>, 258 <|pad|>\n");
    return;
  }
  const fs::path src(tokenizer_path);
  auto copy = [&](const fs::path& from, const std::string& name) {
    fs::copy_file(from, dir / name, fs::copy_options::overwrite_existing);
  };
  if (fs::is_directory(src)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "encoder.json",
                             "vocab.bpe", "tokenizer.bytes"})
      if (fs::exists(src / name)) copy(src / name, name);
    for (const auto& entry : fs::directory_iterator(src))
      if (entry.path().extension() == ".tiktoken") copy(entry.path(), entry.path().filename().string());
    return;
  }
  const std::string ext = src.extension().string(), name = src.filename().string();
  if (ext == ".model") copy(src, "tokenizer.model");
  else if (ext == ".tiktoken") copy(src, name);
  else if (name == "encoder.json" || name == "vocab.bpe") {
    copy(src.parent_path() / "encoder.json", "encoder.json");
    copy(src.parent_path() / "vocab.bpe", "vocab.bpe");
  } else {
    copy(src, "tokenizer.json");
  }
}

bool has_tokenizer(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (fs::exists(dir / "tokenizer.json") || fs::exists(dir / "tokenizer.model") || fs::exists(dir / "tokenizer.bytes") ||
      (fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe")))
    return true;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".tiktoken") return true;
  return false;
}

}  // namespace mambalm
