// mambalm prepare: text corpora -> Megatron indexed datasets (PREFIX_{train,valid}.{bin,idx}).
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "data/prepare.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

int cmd_prepare(int argc, char** argv) {
  Args args("prepare", "--tokenizer PATH --input FILES_OR_GLOBS [MORE ...] --out PREFIX [options]",
            {{"tokenizer", "PATH", "tokenizer: model dir, tokenizer.json, .model, .tiktoken, encoder.json or 'bytes'"},
             {"input", "FILES", "comma-separated files, directories or quoted globs (.gz/.zst read as such); more may follow as arguments"},
             {"out", "PREFIX", "output prefix: PREFIX_train/PREFIX_valid .bin+.idx (PREFIX.bin+.idx with --valid-fraction 0)"},
             {"valid-fraction", "F", "fraction of documents held out for validation, in [0, 1) (default 0.01)"},
             {"seed", "S", "seed of the train/validation split (default 1234)"},
             {"threads", "N", "tokenizer threads (default: every core)"},
             {"split-paragraphs", "", "plain text: one document per blank-line-separated paragraph, not per file"},
             {"json-key", "KEY", "JSON Lines: the field holding the text (default text); repeat to join several with a blank line"},
             {"eod-id", "ID", "end-of-document token (default: the tokenizer's end-of-sequence token)"},
             {"quiet", "", "no progress report"}});
  if (!args.parse(argc, argv)) return 0;
  data::PrepareOptions opt;
  const std::string tokenizer_path = args.required("tokenizer");
  opt.inputs = split_list(args.required("input"));
  for (const std::string& p : args.positional()) opt.inputs.push_back(p);
  opt.out_prefix = args.required("out");
  opt.valid_fraction = args.real("valid-fraction", 0.01);
  opt.seed = static_cast<uint64_t>(args.integer_in("seed", 1234, 0, INT64_MAX));
  opt.threads = static_cast<int>(args.integer_in("threads", 0, 0, 4096, "0 = every core"));
  opt.split_paragraphs = args.flag("split-paragraphs");
  if (args.has("json-key")) opt.json_keys = args.all("json-key");
  opt.eod_id = static_cast<int32_t>(args.integer_in("eod-id", -1, -1, INT32_MAX, "a token id; -1 = the tokenizer's end of sequence"));
  opt.show_progress = !args.flag("quiet");

  std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(tokenizer_path);
  const data::PrepareSummary s = data::prepare_dataset(*tokenizer, opt);

  const double mb = static_cast<double>(s.text_bytes) / 1e6;
  std::printf("prepared %lld files, %lld documents, %lld tokens (%s, EOD id %d) with %d threads\n",
              static_cast<long long>(s.files), static_cast<long long>(s.documents),
              static_cast<long long>(s.tokens), io::token_dtype_name(s.dtype), s.eod_id, s.threads);
  std::printf("  %s: %lld documents, %lld tokens\n", s.train_prefix.c_str(),
              static_cast<long long>(s.train_documents), static_cast<long long>(s.train_tokens));
  if (!s.valid_prefix.empty())
    std::printf("  %s: %lld documents, %lld tokens\n", s.valid_prefix.c_str(),
                static_cast<long long>(s.valid_documents), static_cast<long long>(s.valid_tokens));
  std::printf("  text %.2f MB -> %.2f MB on disk in %.2f s: %.2f MB/s\n", mb,
              static_cast<double>(s.output_bytes) / 1e6, s.seconds, mb / s.seconds);
  return 0;
}

}  // namespace mambalm::cli
