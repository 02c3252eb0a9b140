#include "tokenizer/install.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/transformers_configs.h"

namespace mambalm {

namespace fs = std::filesystem;

namespace {

// The source's chat template when it keeps it in a file of its own (newer transformers save
// chat_template.jinja beside tokenizer_config.json); "" when none.
std::string chat_template_beside(const fs::path& source_dir) {
  const fs::path jinja = source_dir / "chat_template.jinja";
  return fs::exists(jinja) ? io::read_text_file(jinja.string()) : "";
}

void copy_tokenizer_files(const std::string& tokenizer_path, const fs::path& dir) {
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
    // The tokenizer_config.json beside a tokenizer.json is part of it (its BOS/EOS and, for the
    // Llama classes, its template: hf_tokenizer_json.h): it travels with it.
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"})
      if (fs::exists(src.parent_path() / name)) copy(src.parent_path() / name, name);
  }
}

}  // namespace

void install_tokenizer(const std::string& tokenizer_path, const std::string& model_dir) {
  const auto tokenizer = open_tokenizer(tokenizer_path);  // validate before copying anything
  fs::create_directories(model_dir);
  copy_tokenizer_files(tokenizer_path, fs::path(model_dir));
  const fs::path src(tokenizer_path);
  const fs::path src_dir = tokenizer_path == "bytes" ? fs::path() : fs::is_directory(src) ? src : src.parent_path();
  // The copy behaves as the source (its tokenizer_config.json travels with it), so the source's
  // tokenizer describes it.
  write_transformers_configs(*tokenizer, model_dir, src_dir.empty() ? "" : chat_template_beside(src_dir));
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
