#include "tokenizer/train_sentencepiece.h"

#include <sentencepiece_trainer.h>

#include <filesystem>
#include <thread>
#include <unordered_map>

#include "core/error.h"

namespace mambalm {

std::string train_sentencepiece(const SentencePieceTrainOptions& opts) {
  check(!opts.inputs.empty(), "tokenizer train", "no --input files");
  check(opts.type == "bpe" || opts.type == "unigram", "--type", "'" + opts.type + "' is not bpe or unigram");
  check(opts.vocab_size >= 300, "--vocab-size", "must be at least 300 (256 byte-fallback pieces + specials + merges)");
  check(!opts.out.empty(), "tokenizer train", "missing --out");
  std::string inputs;
  for (const std::string& f : opts.inputs) {
    check(std::filesystem::is_regular_file(f), f, "not a readable file");
    check(f.find(',') == std::string::npos, f, "file names with commas cannot be passed to the SentencePiece trainer");
    inputs += (inputs.empty() ? "" : ",") + f;
  }
  std::string prefix = opts.out;
  if (prefix.size() > 6 && prefix.substr(prefix.size() - 6) == ".model") prefix.resize(prefix.size() - 6);
  const int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unordered_map<std::string, std::string> kwargs = {
      {"input", inputs},
      {"model_prefix", prefix},
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
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
  check(status.ok(), "tokenizer train", "SentencePiece trainer failed: " + std::string(status.message()));
  return prefix + ".model";
}

}  // namespace mambalm
