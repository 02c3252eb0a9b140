// mambalm generate: prefill a prompt, then stream one token per decode step. The prompt comes
// from --tokens, --prompt, --prompts-file (one per line, generated one after another) or, with
// --interactive, from the user's turns on stdin; generate_session.h prints what comes out.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string_view>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "generate_session.h"
#include "prompts_file.h"
#include "core/error.h"
#include "core/limits.h"
#include "infer/generate.h"
#include "io/token_list.h"
#include "model/model.h"
#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mambalm::cli {

namespace {

// A prompt as tokens, and the stop string its rendering implies (the default chat template's
// start of the next user turn; "" otherwise).
struct Prompt {
  std::string text;
  std::vector<int32_t> tokens;
  std::string stop;
};

SamplingOptions parse_sampling(const Args& args) {
  SamplingOptions s;
  s.temperature = args.real_in("temperature", 0.0, 0.0, 1e6, "0 = greedy");
  s.top_k = args.integer_in("top-k", 0, 0, limits::kMaxVocab, "0 = every token");
  s.top_p = args.real_in("top-p", 1.0, 0.0, 1.0);
  check(s.top_p > 0, args.where(), "option --top-p must be in (0, 1], got " + args.str("top-p"));
  s.min_p = args.real_in("min-p", 0.0, 0.0, 1.0, "0 = off");
  s.penalties.repeat = args.real_in("repeat-penalty", 1.0, 0.0, 1e6, "1 = off");
  check(s.penalties.repeat > 0, args.where(), "option --repeat-penalty must be > 0 (1 = off), got " + args.str("repeat-penalty"));
  s.penalties.repeat_last_n = args.integer_in("repeat-last-n", 64, -1, limits::kMaxSequence, "-1 = the whole context, 0 = off");
  s.penalties.presence = args.real_in("presence-penalty", 0.0, -1e6, 1e6, "0 = off");
  s.penalties.frequency = args.real_in("frequency-penalty", 0.0, -1e6, 1e6, "0 = off");
  s.seed = args.seed("seed", 0);
  return s;
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  for (size_t bad; (bad = utf8::find_invalid(text)) != std::string::npos; text.remove_prefix(bad + 1))
    out.append(text.substr(0, bad)).append("\xEF\xBF\xBD");
  return out.append(text);
}

class PromptEncoder {
 public:
  PromptEncoder(const Args& args, const std::string& model_dir, const Tokenizer* tokenizer, bool chat)
      : args_(args), tokenizer_(tokenizer), chat_(chat) {
    if (chat_) {
      check(tokenizer_ != nullptr, args.has("interactive") ? "--interactive" : "--chat",
            model_dir + " has no tokenizer to encode the chat with");
      template_ = std::make_unique<ChatTemplate>(ChatTemplate::from_model_dir(model_dir));
      if (args.has("system")) messages_.push_back({{"role", "system"}, {"content", args.str("system")}});
    }
  }

  // One prompt: a chat user message (added to the conversation), or text, or token ids.
  Prompt encode(const std::string& text, const std::string& where) {
    Prompt p;
    p.text = text;
    if (chat_) {
      messages_.push_back({{"role", "user"}, {"content", text}});
      const std::string rendered = template_->render(messages_, /*add_generation_prompt=*/true);
      // A model's template writes its special tokens as text; they encode to their ids.
      p.tokens = tokenizer_->encode(rendered, /*allow_special=*/!template_->is_default());
      p.stop = template_->implied_stop();
      check(!p.tokens.empty(), where, "the chat prompt encodes to no tokens");
    } else if (tokenizer_) {
      p.tokens = tokenizer_->encode(text);
      if (args_.flag("bos")) {
        check(tokenizer_->bos_id() >= 0, "--bos", "the tokenizer has no BOS token");
        p.tokens.insert(p.tokens.begin(), tokenizer_->bos_id());
      }
      check(!p.tokens.empty(), where, "the prompt encodes to no tokens");
    } else {
      // No tokenizer in the model directory: the prompt text must itself be token ids.
      p.tokens = io::parse_token_ids(text, where);
    }
    return p;
  }

  // The assistant's answer joins the conversation (interactive chat). Bytes that are no UTF-8
  // (a byte-level model can emit any) become U+FFFD, so the next rendering encodes.
  void add_reply(const std::string& text) { messages_.push_back({{"role", "assistant"}, {"content", valid_utf8(text)}}); }
  // Forgets the last message (a prompts file's lines are conversations of their own).
  void drop_last() { messages_.erase(messages_.size() - 1); }

 private:
  const Args& args_;
  const Tokenizer* tokenizer_;
  bool chat_;
  std::unique_ptr<ChatTemplate> template_;
  nlohmann::json messages_ = nlohmann::json::array();
};

}  // namespace

int cmd_generate(int argc, char** argv) {
  Args args("generate",
            "--model DIR (--tokens FILE | --prompt TEXT | --prompts-file FILE | --interactive) [--chat [--system TEXT]] "
            "[sampling options] [--stop STR]... [--logprobs N] [--json] [--device cuda]",
            {{"model", "DIR", "model directory"},
             {"tokens", "FILE", "prompt as whitespace-separated token ids"},
             {"prompt", "TEXT", "prompt text (needs a tokenizer in the model directory; else token ids)"},
             {"prompts-file", "FILE", "one prompt per line (UTF-8; empty lines skipped), generated one after another"},
             {"interactive", "", "chat: user turns from stdin, one per line, with the chat template; ends at EOF or /exit"},
             {"max-tokens", "N", "tokens to generate (default 32; per turn with --interactive)"},
             {"temperature", "T", "0 = greedy (default); > 0 samples"},
             {"top-k", "K", "sample among the K most likely tokens (0 = all)"},
             {"top-p", "P", "sample from the smallest set with probability >= P (default 1)"},
             {"min-p", "P", "drop tokens less likely than P times the most likely one (default 0 = off)"},
             {"repeat-penalty", "F", "divide the logit of a token seen in the last --repeat-last-n tokens by F (x F if negative); 1 = off"},
             {"repeat-last-n", "N", "tokens of context (prompt + generated) the repeat penalty looks at (default 64, -1 = all)"},
             {"presence-penalty", "F", "subtract F from the logit of every token generated so far (default 0)"},
             {"frequency-penalty", "F", "subtract F x (times generated so far) from a token's logit (default 0)"},
             {"seed", "S", "sampling seed (default 0)"},
             {"stop", "STR", "end the text before STR (not printed); repeatable"},
             {"ignore-eos", "", "keep going past the end-of-sequence token"},
             {"bos", "", "prepend the tokenizer's BOS token to the prompt"},
             {"chat", "", "each prompt is one user message, rendered by the model's chat template (tokenizer_config.json) or the default"},
             {"system", "TEXT", "with --chat or --interactive: a system message before the user's"},
             {"ids", "", "print token ids even when the model directory has a tokenizer"},
             {"logprobs", "N", "each generated token's log-probability and the N most likely alternatives (0..100)"},
             {"json", "", "one JSON object per generation (per line): text, tokens, finish_reason, logprobs, timing"},
             {"no-timing", "", "no timing summary (prompt and generation tok/s, time to first token) on stderr"}},
            placement_options_with_kv());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  // The numbers are checked before anything loads: a bad value fails at once.
  const int64_t max_tokens = args.integer_in("max-tokens", 32, 0, limits::kMaxSequence);
  const SamplingOptions sampling = parse_sampling(args);
  const int logprobs = args.has("logprobs") ? static_cast<int>(args.integer_in("logprobs", 0, 0, 100)) : -1;
  const bool interactive = args.flag("interactive");
  const int sources = args.has("tokens") + args.has("prompt") + args.has("prompts-file") + interactive;
  check(sources == 1, args.where(), "give exactly one of --tokens FILE, --prompt TEXT, --prompts-file FILE or --interactive");
  const bool chat = args.flag("chat") || interactive;
  check(!args.has("system") || chat, "--system", "needs --chat or --interactive");
  check(!args.flag("chat") || args.has("prompt") || args.has("prompts-file") || interactive, "--chat",
        "needs --prompt TEXT or --prompts-file FILE (the user's messages)");
  check(!chat || !args.flag("bos"), "--bos", "the chat template decides where BOS goes; drop --bos with --chat");
  // Read before the model loads: a bad file fails at once.
  std::vector<std::string> file_prompts;
  if (args.has("prompts-file")) file_prompts = read_prompt_lines(args.str("prompts-file"));

  const std::string model_dir = args.required("model");
  // The largest call is one prefill chunk; the KV cache holds the prompt and the generated
  // tokens (a prompt's length is not known before it is encoded: 2048 tokens are assumed).
  GenerateOptions opts;
  const int64_t prompt_guess = 2048;
  Model model = load_placed(model_dir, placement, InferenceWork{1, std::min(opts.prefill_chunk, prompt_guess), prompt_guess + max_tokens, 1},
                            "mambalm generate");
  std::unique_ptr<Tokenizer> tokenizer;
  if (has_tokenizer(model_dir)) tokenizer = open_tokenizer(model_dir);
  OutputOptions out;
  out.as_text = tokenizer && !args.flag("ids");
  out.json = args.flag("json");
  out.logprobs = logprobs;
  out.stops = args.all("stop");
  check(out.stops.empty() || out.as_text, "--stop",
        "stop strings need text output: a tokenizer in the model directory, and no --ids");
  check(!interactive || out.as_text, "--interactive", "needs text output: a tokenizer in the model directory, and no --ids");
  opts.max_tokens = max_tokens;
  opts.sampling = sampling;
  opts.stop_at_eos = !args.flag("ignore-eos");
  if (tokenizer) opts.vocab_limit = tokenizer->vocab_size();
  GenerateSession session(model, tokenizer.get(), opts, out);
  PromptEncoder encoder(args, model_dir, tokenizer.get(), chat);

  // Generates after one prompt and prints the result; returns the visible text.
  auto generate_one = [&](const Prompt& p, const std::string& where) {
    check_token_ids(p.tokens, model.config().vocab_size, where);
    // Prompt and generated tokens share one sequence: their sum is bounded too.
    limits::checked_add(static_cast<int64_t>(p.tokens.size()), max_tokens, "--max-tokens", "prompt + generated tokens",
                        limits::kMaxSequence);
    std::vector<std::string> extra;
    if (!p.stop.empty()) extra.push_back(p.stop);
    const GenerationResult r = session.run(p.tokens, extra);
    if (out.json) {
      std::printf("%s\n", json_line(session.to_json(r, p.text)).c_str());
    } else {
      std::printf("\n");
      if (logprobs >= 0) session.print_logprobs(r, stdout);
    }
    std::fflush(stdout);
    return r.text;
  };

  if (args.has("tokens")) {
    Prompt p;
    p.tokens = io::read_token_ids(args.str("tokens"));
    generate_one(p, args.str("tokens"));
  } else if (args.has("prompt")) {
    generate_one(encoder.encode(args.str("prompt"), "--prompt"), "--prompt");
  } else if (args.has("prompts-file")) {
    const std::string path = args.str("prompts-file");
    for (size_t i = 0; i < file_prompts.size(); ++i) {
      const std::string where = path + " prompt " + std::to_string(i + 1);
      Prompt p = encoder.encode(file_prompts[i], where);
      if (chat) encoder.drop_last();  // each line is a conversation of its own
      if (!out.json) std::printf("%s==> prompt %zu of %zu <==\n", i ? "\n" : "", i + 1, file_prompts.size());
      generate_one(p, where);
    }
  } else {
    // Interactive chat: the whole conversation is rendered and prefilled again each turn (the
    // template may rewrite earlier turns, and a recurrent state cannot be rolled back to before
    // the stop string the answer ended on).
    const bool tty = isatty(STDIN_FILENO);
    std::string line;
    for (int turn = 1;; ++turn) {
      if (tty) std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, line)) break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line == "/exit") break;
      if (line.empty()) continue;
      const Prompt p = encoder.encode(line, "stdin turn " + std::to_string(turn));
      encoder.add_reply(generate_one(p, "stdin turn " + std::to_string(turn)));
    }
  }
  if (!args.flag("no-timing")) session.print_timing(stderr);
  return 0;
}

}  // namespace mambalm::cli
