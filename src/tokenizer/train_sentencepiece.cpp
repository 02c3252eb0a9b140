#include "tokenizer/train_sentencepiece.h"

#include <fcntl.h>
#include <unistd.h>

#include <sentencepiece_trainer.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/limits.h"
#include "io/input_files.h"
#include "io/json_lines.h"
#include "tokenizer/tokenizer.h"

namespace mambalm {

namespace fs = std::filesystem;

namespace {

// The final PATH prefix (PATH.model, PATH.vocab): --out DIR (an existing directory, or a path
// ending in '/') means DIR/tokenizer; --out PATH.model or PATH means PATH.
fs::path output_prefix(const std::string& out) {
  std::error_code ec;
  if (out.back() == '/' || fs::is_directory(out, ec)) {
    fs::create_directories(out, ec);
    check(!ec, out, "cannot create the output directory: " + ec.message());
    return fs::path(out) / "tokenizer";
  }
  std::string prefix = out;
  if (prefix.size() > 6 && prefix.substr(prefix.size() - 6) == ".model") prefix.resize(prefix.size() - 6);
  const fs::path parent = fs::path(prefix).parent_path();
  check(parent.empty() || fs::is_directory(parent, ec), out, "the directory " + parent.string() + " does not exist",
        "create it first");
  return prefix;
}

void fsync_file(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(p.string(), std::string("cannot open to fsync: ") + std::strerror(errno));
  const int rc = ::fsync(fd), saved = errno;
  ::close(fd);
  if (rc != 0 && saved != EINVAL) fail(p.string(), std::string("fsync failed: ") + std::strerror(saved), "disk full?");
}

// Removes the temporary files unless released (after the renames).
struct TempFiles {
  std::vector<fs::path> paths;
  ~TempFiles() {
    std::error_code ec;
    for (const fs::path& p : paths) fs::remove(p, ec);
  }
};

// The lines of every input file in order, as SentencePiece's own file reader yields them
// (std::getline: the '\n' dropped), but from compressed files too (io::read_input_file), and of a
// JSON Lines file the lines of its records' text (the --json-key fields), not the raw JSON. One
// file's text is held at a time. A read error ends the iteration; status() carries it to the
// trainer, and error() keeps our one-line message (no exception crosses the library).
class InputLines final : public sentencepiece::SentenceIterator {
 public:
  InputLines(std::vector<std::string> files, std::vector<std::string> json_keys)
      : files_(std::move(files)), json_keys_(std::move(json_keys)) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (error_.empty()) return sentencepiece::util::Status();
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kDataLoss, error_);
  }
  const std::string& error() const { return error_; }

  void Next() override {
    while (!done_) {
      if (pos_ < text_.size()) {
        const size_t nl = text_.find('\n', pos_);
        const size_t end = nl == std::string::npos ? text_.size() : nl;
        value_.assign(text_, pos_, end - pos_);
        pos_ = end + 1;
        return;
      }
      if (next_file_ == files_.size()) {
        done_ = true;
        value_.clear();
        return;
      }
      try {
        const std::string& path = files_[next_file_++];
        text_ = io::read_input_file(path);
        if (io::is_json_lines_path(path)) text_ = io::json_lines_text(path, text_, json_keys_);
      } catch (const std::exception& e) {
        error_ = e.what();
        done_ = true;
        return;
      }
      pos_ = 0;
    }
  }

 private:
  std::vector<std::string> files_, json_keys_;
  size_t next_file_ = 0, pos_ = 0;
  std::string text_, value_, error_;
  bool done_ = false;
};

}  // namespace

std::string train_sentencepiece(const SentencePieceTrainOptions& opts) {
  check(!opts.inputs.empty(), "tokenizer train", "no --input files");
  check(opts.type == "bpe" || opts.type == "unigram", "--type", "'" + opts.type + "' is not bpe or unigram");
  limits::in_range(opts.vocab_size, 300, limits::kMaxVocab, "--vocab-size",
                   "vocabulary size (256 byte-fallback pieces + specials + merges at least)");
  limits::in_range(opts.max_sentences, 1, INT32_MAX, "--max-sentences", "sentence count");
  check(!opts.out.empty(), "tokenizer train", "missing --out");
  // Files, directories and globs as prepare takes them; gzip and zstd read through.
  check(!opts.json_keys.empty(), "--json-key", "no JSON field named");
  InputLines lines(io::expand_inputs(opts.inputs, "--input"), opts.json_keys);
  // The trainer writes PREFIX.model and PREFIX.vocab itself, unchecked: it writes a temporary
  // prefix beside the output, which is verified (it must load), fsync'ed and then renamed over
  // the old files, so a failed or full-disk run leaves an existing vocabulary intact.
  const fs::path prefix = output_prefix(opts.out);
  const fs::path tmp = prefix.parent_path() / (".tmp-" + prefix.filename().string() + "-" + std::to_string(::getpid()));
  TempFiles temps{{fs::path(tmp.string() + ".model"), fs::path(tmp.string() + ".vocab")}};
  const int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unordered_map<std::string, std::string> kwargs = {
      {"model_prefix", tmp.string()},
      {"vocab_size", std::to_string(opts.vocab_size)},
      {"model_type", opts.type},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"character_coverage", "0.9995"},
      {"input_sentence_size", std::to_string(opts.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", std::to_string(threads)},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "3"},
      {"minloglevel", "1"},
  };
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &lines);
  if (!lines.error().empty()) throw Error(lines.error());
  check(status.ok(), "tokenizer train", "SentencePiece trainer failed: " + std::string(status.message()));
  const fs::path model = temps.paths[0], vocab = temps.paths[1];
  try {
    open_tokenizer(model.string());  // the trainer does not check its writes: a short one does not load
  } catch (const Error& e) {
    fail(prefix.string() + ".model", std::string("the trained model was not written completely: ") + e.what(),
         "disk full? the earlier files are untouched");
  }
  fsync_file(model);
  fsync_file(vocab);
  const std::string final_model = prefix.string() + ".model";
  std::error_code ec;
  fs::rename(vocab, prefix.string() + ".vocab", ec);
  check(!ec, prefix.string() + ".vocab", "cannot rename the trained vocabulary into place: " + ec.message());
  fs::rename(model, final_model, ec);
  check(!ec, final_model, "cannot rename the trained model into place: " + ec.message());
  const fs::path dir = prefix.parent_path().empty() ? fs::path(".") : prefix.parent_path();
  if (const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);  // the renames themselves survive a crash
    ::close(fd);
  }
  return final_model;
}

}  // namespace mambalm
