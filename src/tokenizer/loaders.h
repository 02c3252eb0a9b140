// The loaders behind open_tokenizer(), one per file format. Each throws mambalm::Error naming
// the file when it is missing, unreadable or not what it claims to be.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace mambalm {

// A .tiktoken rank file (base64 token, space, rank per line). The encoding (split regex and
// special tokens) is chosen by the file name: r50k_base, p50k_base, cl100k_base or o200k_base.
std::unique_ptr<Tokenizer> open_tiktoken(const std::string& path);
// GPT-2's encoder.json + vocab.bpe.
std::unique_ptr<Tokenizer> open_gpt2(const std::string& encoder_json, const std::string& vocab_bpe);
// A Hugging Face tokenizer.json with a byte-level BPE model.
std::unique_ptr<Tokenizer> open_hf_bpe(const std::string& path);
// A SentencePiece .model file (BPE or unigram).
std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path);
// Whether a tokenizer is a SentencePiece model that encodes text cut into words (the fast path
// of sentencepiece_tokenizer.cpp); false for any other tokenizer.
bool sentencepiece_encodes_by_words(const Tokenizer& tokenizer);
// 256 byte tokens + <|endoftext|> (256, EOS), <|begin_of_text|> (257, BOS), <|pad|> (258, PAD).
std::unique_ptr<Tokenizer> make_bytes_tokenizer();

// Whole file as a string; throws naming the path when it cannot be read.
std::string read_tokenizer_file(const std::string& path);

}  // namespace mambalm
