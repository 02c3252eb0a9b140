// mambalm generate: prefill a prompt, then stream one token per decode step.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "infer/generate.h"
#include "io/token_list.h"
#include "model/model.h"

namespace mambalm::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", "--model DIR (--tokens FILE | --prompt TEXT) [sampling options]",
            {{"model", "DIR", "model directory"},
             {"tokens", "FILE", "prompt as whitespace-separated token ids"},
             {"prompt", "TEXT", "prompt text (needs a tokenizer in the model directory; else token ids)"},
             {"max-tokens", "N", "tokens to generate (default 32)"},
             {"temperature", "T", "0 = greedy (default); > 0 samples"},
             {"top-k", "K", "sample among the K most likely tokens (0 = all)"},
             {"top-p", "P", "sample from the smallest set with probability >= P (default 1)"},
             {"seed", "S", "sampling seed (default 0)"},
             {"ignore-eos", "", "keep going past the end-of-sequence token"}});
  if (!args.parse(argc, argv)) return 0;
  check(args.has("tokens") != args.has("prompt"), "mambalm generate", "give exactly one of --tokens FILE or --prompt TEXT");
  Model model = Model::load(args.required("model"));
  std::vector<int32_t> prompt;
  if (args.has("tokens")) {
    prompt = io::read_token_ids(args.str("tokens"));
  } else {
    // No tokenizer support yet: the prompt text must itself be token ids.
    prompt = io::parse_token_ids(args.str("prompt"), "--prompt");
  }
  check_token_ids(prompt, model.config().vocab_size, args.has("tokens") ? args.str("tokens") : "--prompt");
  GenerateOptions opts;
  opts.max_tokens = args.integer("max-tokens", 32);
  check(opts.max_tokens >= 0, "--max-tokens", "must be >= 0");
  opts.sampling.temperature = args.real("temperature", 0.0);
  opts.sampling.top_k = args.integer("top-k", 0);
  opts.sampling.top_p = args.real("top-p", 1.0);
  opts.sampling.seed = static_cast<uint64_t>(args.integer("seed", 0));
  opts.stop_at_eos = !args.flag("ignore-eos");
  bool first = true;
  generate(model, prompt, opts, [&](int32_t t) {
    std::printf(first ? "%d" : " %d", t);
    std::fflush(stdout);
    first = false;
  });
  std::printf("\n");
  return 0;
}

}  // namespace mambalm::cli
