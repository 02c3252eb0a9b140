// mambalm generate: prefill a prompt, then stream one token per decode step.
#include <cstdint>
#include <cstdio>
#include <memory>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "core/error.h"
#include "infer/generate.h"
#include "infer/text_stream.h"
#include "io/token_list.h"
#include "model/model.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", "--model DIR (--tokens FILE | --prompt TEXT) [sampling options] [--device cuda]",
            {{"model", "DIR", "model directory"},
             {"tokens", "FILE", "prompt as whitespace-separated token ids"},
             {"prompt", "TEXT", "prompt text (needs a tokenizer in the model directory; else token ids)"},
             {"max-tokens", "N", "tokens to generate (default 32)"},
             {"temperature", "T", "0 = greedy (default); > 0 samples"},
             {"top-k", "K", "sample among the K most likely tokens (0 = all)"},
             {"top-p", "P", "sample from the smallest set with probability >= P (default 1)"},
             {"seed", "S", "sampling seed (default 0)"},
             {"ignore-eos", "", "keep going past the end-of-sequence token"},
             {"bos", "", "prepend the tokenizer's BOS token to the prompt"},
             {"ids", "", "print token ids even when the model directory has a tokenizer"}},
            placement_options());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  check(args.has("tokens") != args.has("prompt"), args.where(), "give exactly one of --tokens FILE or --prompt TEXT");
  const std::string model_dir = args.required("model");
  Model model = Model::load(model_dir);
  place(model, placement);
  std::unique_ptr<Tokenizer> tokenizer;
  if (has_tokenizer(model_dir)) tokenizer = open_tokenizer(model_dir);
  std::vector<int32_t> prompt;
  if (args.has("tokens")) {
    prompt = io::read_token_ids(args.str("tokens"));
  } else if (tokenizer) {
    prompt = tokenizer->encode(args.str("prompt"));
    if (args.flag("bos")) {
      check(tokenizer->bos_id() >= 0, "--bos", "the tokenizer has no BOS token");
      prompt.insert(prompt.begin(), tokenizer->bos_id());
    }
    check(!prompt.empty(), "--prompt", "the prompt encodes to no tokens");
  } else {
    // No tokenizer in the model directory: the prompt text must itself be token ids.
    prompt = io::parse_token_ids(args.str("prompt"), "--prompt");
  }
  check_token_ids(prompt, model.config().vocab_size, args.has("tokens") ? args.str("tokens") : "--prompt");
  GenerateOptions opts;
  opts.max_tokens = args.integer_in("max-tokens", 32, 0, INT64_MAX);
  opts.sampling.temperature = args.real("temperature", 0.0);
  opts.sampling.top_k = args.integer("top-k", 0);
  opts.sampling.top_p = args.real("top-p", 1.0);
  opts.sampling.seed = static_cast<uint64_t>(args.integer("seed", 0));
  opts.stop_at_eos = !args.flag("ignore-eos");
  if (tokenizer) opts.vocab_limit = tokenizer->vocab_size();
  const bool as_text = tokenizer && !args.flag("ids");
  TextStream stream([&](const std::vector<int32_t>& ids) { return tokenizer->decode(ids); });
  bool first = true;
  generate(model, prompt, opts, [&](int32_t t) {
    if (as_text) {
      const std::string piece = stream.push(t);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    } else {
      std::printf(first ? "%d" : " %d", t);
    }
    std::fflush(stdout);
    first = false;
  });
  // A character the last token left unfinished is not printed (stream.finish() holds its bytes).
  std::printf("\n");
  return 0;
}

}  // namespace mambalm::cli
