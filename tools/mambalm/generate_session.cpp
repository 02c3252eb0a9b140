#include "generate_session.h"

#include <algorithm>
#include <utility>

#include "infer/stop_strings.h"
#include "infer/text_stream.h"

namespace mambalm::cli {

using json = nlohmann::ordered_json;

std::string json_line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

GenerateSession::GenerateSession(Model& model, const Tokenizer* tokenizer, GenerateOptions generate, OutputOptions out)
    : model_(model), tokenizer_(tokenizer), generate_(generate), out_(std::move(out)) {}

std::string GenerateSession::token_text(int32_t id) const {
  return tokenizer_ ? decode_generated(*tokenizer_, {id}) : "";
}

GenerationResult GenerateSession::run(const std::vector<int32_t>& prompt, const std::vector<std::string>& extra_stops) {
  GenerationResult r;
  std::vector<std::string> stops = out_.stops;
  stops.insert(stops.end(), extra_stops.begin(), extra_stops.end());
  StopStrings stop(stops);
  TextStream stream([this](const std::vector<int32_t>& ids) { return decode_generated(*tokenizer_, ids); });
  const bool print = !out_.json;
  auto emit = [&](const std::string& piece) {
    if (print && !piece.empty()) std::fwrite(piece.data(), 1, piece.size(), stdout);
  };
  r.stats = generate_steps(model_, prompt, generate_, [&](int32_t t, const std::vector<float>& logits) {
    r.tokens.push_back(t);
    if (out_.logprobs >= 0)
      r.logprobs.push_back(token_logprobs(logits.data(), static_cast<int64_t>(logits.size()), t, out_.logprobs));
    const bool eos = generate_.stop_at_eos && t == model_.config().eos_token_id;  // ends the text, not part of it
    if (out_.as_text) {
      if (!eos) emit(stop.push(stream.push(t)));
    } else if (print) {
      std::printf(r.tokens.size() == 1 ? "%d" : " %d", t);
    }
    if (print) std::fflush(stdout);
    return !stop.stopped();
  });
  // Text held back as a possible start of a stop string is released now. A character the last
  // token left unfinished is not printed (the TextStream holds its bytes).
  if (out_.as_text && !stop.stopped()) emit(stop.finish());
  if (print) std::fflush(stdout);
  r.text = stop.visible();
  r.stop = stop.matched();
  r.finish_reason = r.stats.finish_reason == "length" ? "length" : "stop";
  ++runs_;
  prompt_tokens_ += r.stats.prompt_tokens;
  generated_tokens_ += r.stats.generated_tokens;
  decode_steps_ += std::max<int64_t>(0, r.stats.generated_tokens - 1);
  prefill_seconds_ += r.stats.prefill_seconds;
  decode_seconds_ += r.stats.decode_seconds;
  first_token_seconds_ += r.stats.first_token_seconds;
  return r;
}

namespace {

double rate(int64_t n, double seconds) { return seconds > 0 ? static_cast<double>(n) / seconds : 0.0; }

}  // namespace

json GenerateSession::to_json(const GenerationResult& r, const std::string& prompt) const {
  json j = json::object();
  if (!prompt.empty()) j["prompt"] = prompt;
  j["prompt_tokens"] = r.stats.prompt_tokens;
  if (out_.as_text) j["text"] = r.text;
  j["tokens"] = r.tokens;
  j["finish_reason"] = r.finish_reason;
  if (!r.stop.empty()) j["stop"] = r.stop;
  if (out_.logprobs >= 0) {
    json lps = json::array();
    for (const TokenLogprobs& t : r.logprobs) {
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        json alt = {{"token", id}, {"logprob", lp}};
        if (out_.as_text) alt["text"] = token_text(id);
        top.push_back(alt);
      }
      json e = {{"token", t.token}, {"logprob", t.logprob}, {"top_logprobs", top}};
      if (out_.as_text) e["text"] = token_text(t.token);
      lps.push_back(e);
    }
    j["logprobs"] = lps;
  }
  const int64_t steps = std::max<int64_t>(0, r.stats.generated_tokens - 1);
  j["timing"] = {{"prefill_s", r.stats.prefill_seconds},
                 {"time_to_first_token_s", r.stats.first_token_seconds},
                 {"decode_s", r.stats.decode_seconds},
                 {"prompt_tokens_per_s", rate(r.stats.prompt_tokens, r.stats.prefill_seconds)},
                 {"decode_tokens_per_s", rate(steps, r.stats.decode_seconds)}};
  return j;
}

void GenerateSession::print_logprobs(const GenerationResult& r, std::FILE* out) const {
  auto shown = [&](int32_t id) {
    if (!out_.as_text) return std::to_string(id);
    return json_line(json(token_text(id))) + " (" + std::to_string(id) + ")";
  };
  std::fprintf(out, "logprobs: token, log p, then the %d most likely tokens\n", out_.logprobs);
  for (size_t i = 0; i < r.logprobs.size(); ++i) {
    const TokenLogprobs& t = r.logprobs[i];
    std::string line = std::to_string(i) + "\t" + shown(t.token) + "\t" + std::to_string(t.logprob);
    for (size_t k = 0; k < t.top.size(); ++k) {
      line += k == 0 ? "\t| " : "  ";
      line += shown(t.top[k].first) + " " + std::to_string(t.top[k].second);
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

void GenerateSession::print_timing(std::FILE* out) const {
  if (runs_ == 0) return;
  const std::string over = runs_ > 1 ? " (" + std::to_string(runs_) + " generations)" : "";
  std::fprintf(out, "timing: prompt      %lld tokens in %.2f ms (%.1f tok/s)%s\n", static_cast<long long>(prompt_tokens_),
               prefill_seconds_ * 1e3, rate(prompt_tokens_, prefill_seconds_), over.c_str());
  std::fprintf(out, "timing: generation  %lld tokens, %lld decode steps in %.2f ms (%.1f tok/s)\n",
               static_cast<long long>(generated_tokens_), static_cast<long long>(decode_steps_), decode_seconds_ * 1e3,
               rate(decode_steps_, decode_seconds_));
  std::fprintf(out, "timing: first token %.2f ms%s\n", first_token_seconds_ * 1e3 / static_cast<double>(runs_),
               runs_ > 1 ? " (mean)" : "");
}

}  // namespace mambalm::cli
