// mambalm tokenizer train: a SentencePiece vocabulary trained on a corpus.
#include <cstdio>
#include <cstring>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "core/limits.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train_sentencepiece.h"

namespace mambalm::cli {

int cmd_tokenizer(int argc, char** argv) {
  if (argc < 1 || std::strcmp(argv[0], "train") != 0) {
    if (argc >= 1 && (!std::strcmp(argv[0], "--help") || !std::strcmp(argv[0], "-h"))) {
      std::printf("usage: mambalm tokenizer train --input FILES --vocab-size N --type {bpe,unigram} --out PATH\n");
      return 0;
    }
    fail("mambalm tokenizer", "expected the subcommand 'train'", "see 'mambalm tokenizer train --help'");
  }
  Args args("tokenizer train", "--input FILES --vocab-size N --type {bpe,unigram} --out PATH.model",
            {{"input", "FILES", "comma-separated text files, directories or quoted globs (.gz/.zst read as such); more may follow as arguments"},
             {"vocab-size", "N", "vocabulary size (default 8000)"},
             {"type", "T", "bpe (default) or unigram"},
             {"out", "PATH", "output PATH.model (and PATH.vocab); an existing directory DIR: DIR/tokenizer.model"},
             {"json-key", "KEY", "JSON Lines inputs: the field holding the text (default text); repeat to join several"},
             {"max-sentences", "N", "lines sampled for training (default 2000000)"},
             {"threads", "N", "trainer threads (default: all cores)"}});
  if (!args.parse(argc - 1, argv + 1)) return 0;
  SentencePieceTrainOptions opts;
  opts.inputs = split_list(args.required("input"));
  for (const std::string& f : args.positional()) opts.inputs.push_back(f);
  opts.vocab_size = args.integer_in("vocab-size", 8000, 300, limits::kMaxVocab);
  opts.type = args.str("type", "bpe");
  opts.out = args.required("out");
  opts.max_sentences = args.integer_in("max-sentences", 2000000, 1, INT32_MAX);
  opts.threads = static_cast<int>(args.integer_in("threads", 0, 0, 4096, "0 = every core"));
  if (args.has("json-key")) opts.json_keys = args.all("json-key");
  std::string path = train_sentencepiece(opts);
  auto tok = open_tokenizer(path);
  std::printf("wrote %s: %s, %lld pieces (bos %d, eos %d)\n", path.c_str(), opts.type.c_str(), static_cast<long long>(tok->vocab_size()),
              tok->bos_id(), tok->eos_id());
  return 0;
}

}  // namespace mambalm::cli
