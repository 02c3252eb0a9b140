// Training a SentencePiece vocabulary on a corpus, through the library's own trainer, so a
// study can size the vocabulary to its models.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mambalm {

struct SentencePieceTrainOptions {
  std::vector<std::string> inputs;  // text files (one sentence or paragraph per line), directories
                                    // or globs, as prepare takes them; .gz / .zst read through;
                                    // JSON Lines files (io/json_lines.h) give their records' text
  int64_t vocab_size = 8000;
  std::string type = "bpe";         // "bpe" or "unigram"
  std::string out;                  // PATH.model (".model" is added if missing); PATH.vocab too;
                                    // an existing directory (or "DIR/"): DIR/tokenizer.model
  int64_t max_sentences = 2000000;  // sampled from the input when there are more
  int threads = 0;                  // 0 = all cores
  std::vector<std::string> json_keys{"text"};  // JSON Lines inputs: the fields of a document
};

// Returns the path of the written .model file, replaced atomically (an earlier file survives
// any failure, a full disk included). Byte fallback is on (no unknown characters),
// digits are split, and ids 0..3 are <unk>, <s> (BOS), </s> (EOS), <pad>.
std::string train_sentencepiece(const SentencePieceTrainOptions& opts);

}  // namespace mambalm
