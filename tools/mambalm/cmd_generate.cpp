// mambalm generate: prefill a prompt, then stream one token per decode step.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "core/error.h"
#include "core/limits.h"
#include "infer/generate.h"
#include "infer/text_stream.h"
#include "io/token_list.h"
#include "model/model.h"
#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", "--model DIR (--tokens FILE | --prompt TEXT [--chat [--system TEXT]]) [sampling options] [--device cuda]",
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
             {"chat", "", "the prompt is one user message, rendered by the model's chat template (tokenizer_config.json) or the default"},
             {"system", "TEXT", "with --chat: a system message before the user's"},
             {"ids", "", "print token ids even when the model directory has a tokenizer"}},
            placement_options());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  // The numbers are checked before anything loads: a bad value fails at once.
  const int64_t max_tokens = args.integer_in("max-tokens", 32, 0, limits::kMaxSequence);
  SamplingOptions sampling;
  sampling.temperature = args.real_in("temperature", 0.0, 0.0, 1e6, "0 = greedy");
  sampling.top_k = args.integer_in("top-k", 0, 0, limits::kMaxVocab, "0 = every token");
  sampling.top_p = args.real_in("top-p", 1.0, 0.0, 1.0);
  check(sampling.top_p > 0, args.where(), "option --top-p must be in (0, 1], got " + args.str("top-p"));
  sampling.seed = args.seed("seed", 0);
  check(args.has("tokens") != args.has("prompt"), args.where(), "give exactly one of --tokens FILE or --prompt TEXT");
  const bool chat = args.flag("chat");
  check(!args.has("system") || chat, "--system", "needs --chat");
  check(!chat || args.has("prompt"), "--chat", "needs --prompt TEXT (the user's message)");
  check(!chat || !args.flag("bos"), "--bos", "the chat template decides where BOS goes; drop --bos with --chat");
  const std::string model_dir = args.required("model");
  Model model = Model::load(model_dir);
  place(model, placement);
  std::unique_ptr<Tokenizer> tokenizer;
  if (has_tokenizer(model_dir)) tokenizer = open_tokenizer(model_dir);
  std::vector<int32_t> prompt;
  std::string chat_stop;  // the default chat template's end of turn; printing stops there
  if (chat) {
    check(tokenizer != nullptr, "--chat", model_dir + " has no tokenizer to encode the chat with");
    const ChatTemplate chat_template = ChatTemplate::from_model_dir(model_dir);
    nlohmann::json messages = nlohmann::json::array();
    if (args.has("system")) messages.push_back({{"role", "system"}, {"content", args.str("system")}});
    messages.push_back({{"role", "user"}, {"content", args.str("prompt")}});
    const std::string text = chat_template.render(messages, /*add_generation_prompt=*/true);
    // A model's template writes its special tokens as text; they encode to their ids.
    prompt = tokenizer->encode(text, /*allow_special=*/!chat_template.is_default());
    chat_stop = chat_template.implied_stop();
    check(!prompt.empty(), "--prompt", "the chat prompt encodes to no tokens");
  } else if (args.has("tokens")) {
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
  opts.max_tokens = max_tokens;
  opts.sampling = sampling;
  // Prompt and generated tokens share one sequence: their sum is bounded too.
  limits::checked_add(static_cast<int64_t>(prompt.size()), max_tokens, "--max-tokens", "prompt + generated tokens", limits::kMaxSequence);
  opts.stop_at_eos = !args.flag("ignore-eos");
  if (tokenizer) opts.vocab_limit = tokenizer->vocab_size();
  const bool as_text = tokenizer && !args.flag("ids");
  TextStream stream([&](const std::vector<int32_t>& ids) { return tokenizer->decode(ids); });
  bool first = true;
  // With the default chat template the answer ends where the model starts the user's next turn:
  // text that could begin that stop string is held back until it is known not to.
  std::string held;
  bool stopped = false;
  auto print_text = [&](const std::string& piece) {
    if (stopped) return;
    held += piece;
    size_t keep = 0;
    if (!chat_stop.empty()) {
      const size_t at = held.find(chat_stop);
      if (at != std::string::npos) {
        held.resize(at);
        stopped = true;
      } else {
        for (size_t n = std::min(held.size(), chat_stop.size() - 1); n > 0 && keep == 0; --n)
          if (held.compare(held.size() - n, n, chat_stop, 0, n) == 0) keep = n;
      }
    }
    std::fwrite(held.data(), 1, held.size() - keep, stdout);
    held.erase(0, held.size() - keep);
  };
  generate(model, prompt, opts, [&](int32_t t) {
    if (as_text) {
      print_text(stream.push(t));
    } else {
      std::printf(first ? "%d" : " %d", t);
    }
    std::fflush(stdout);
    first = false;
  });
  // A character the last token left unfinished is not printed (stream.finish() holds its bytes).
  if (!stopped) std::fwrite(held.data(), 1, held.size(), stdout);
  std::printf("\n");
  return 0;
}

}  // namespace mambalm::cli
