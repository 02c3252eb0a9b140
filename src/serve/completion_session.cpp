#include "serve/completion_session.h"

#include <ctime>

#include "serve/api_error.h"
#include "serve/completion_response.h"

namespace mambalm::serve {

using nlohmann::json;

CompletionSession::CompletionSession(CompletionRequest request, Scheduler& scheduler, const Tokenizer& tokenizer,
                                     std::string model_name)
    : request_(std::move(request)),
      scheduler_(scheduler),
      tokenizer_(tokenizer),
      model_name_(std::move(model_name)),
      id_(new_response_id(request_.chat)),
      created_(static_cast<int64_t>(std::time(nullptr))) {
  std::vector<std::shared_ptr<Job>> jobs;
  for (size_t p = 0; p < request_.prompts.size(); ++p) {
    for (int64_t i = 0; i < request_.n; ++i) {
      auto job = std::make_shared<Job>();
      job->prompt = request_.prompts[p];
      job->max_tokens = request_.max_tokens;
      job->sampling = request_.sampling;
      job->sampling.seed = request_.sampling.seed + static_cast<uint64_t>(i);  // n choices differ
      job->stop_at_eos = !request_.ignore_eos;
      job->top_logprobs = request_.logprobs;
      job->prompt_logprobs = request_.echo && request_.logprobs >= 0;
      job->signal = signal_;
      Choice c;
      c.job = job;
      c.index = choices_.size();
      c.prompt = p;
      c.text = std::make_unique<ChoiceText>(tokenizer_, request_.stop);
      choices_.push_back(std::move(c));
      jobs.push_back(job);
    }
  }
  scheduler_.submit(jobs);
}

CompletionSession::~CompletionSession() { cancel_all(); }

void CompletionSession::cancel_all() {
  for (Choice& c : choices_)
    if (!c.finished) c.job->cancel();
}

std::vector<CompletionSession::Update> CompletionSession::poll() {
  struct Seen {
    std::vector<TokenLogprob> tokens;
    bool done;
    std::string reason, error;
  };
  std::vector<Seen> seen(choices_.size());
  {
    std::unique_lock<std::mutex> lock(signal_->mutex);
    auto news = [&] {
      for (const Choice& c : choices_)
        if (!c.finished && (c.job->done || c.job->generated.size() > c.consumed || c.job->cancelled)) return true;
      return false;
    };
    signal_->cv.wait_for(lock, std::chrono::seconds(1), news);
    for (size_t i = 0; i < choices_.size(); ++i) {
      Choice& c = choices_[i];
      if (c.finished) continue;
      const auto& g = c.job->generated;
      seen[i].tokens.assign(g.begin() + static_cast<std::ptrdiff_t>(c.consumed), g.end());
      c.consumed = g.size();
      seen[i].done = c.job->done;
      seen[i].reason = c.job->finish_reason;
      seen[i].error = c.job->error;
    }
  }
  std::vector<Update> updates;
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    if (c.finished) continue;
    Update u{i, "", {}, false};
    // The end-of-sequence token ends the text; it is not part of it.
    if (seen[i].done && seen[i].reason == "stop" && !seen[i].tokens.empty()) seen[i].tokens.pop_back();
    for (TokenLogprob& t : seen[i].tokens) {
      if (c.text->stopped()) break;
      u.text += c.text->push(t.token);
      u.lps.push_back(std::move(t));
    }
    if (c.text->stopped()) {
      c.job->cancel();  // the scheduler frees the slot; the reply ends here
      c.finished = true;
      c.finish_reason = "stop";
    } else if (seen[i].done) {
      u.text += c.text->finish();
      c.finished = true;
      c.finish_reason = seen[i].reason == "length" ? "length" : seen[i].reason == "error" ? "error" : "stop";
      c.error = seen[i].error;
    }
    u.finished = c.finished;
    for (const auto& t : u.lps) c.lps.push_back(t);
    if (!u.text.empty() || (request_.logprobs >= 0 && !u.lps.empty()) || u.finished) updates.push_back(std::move(u));
  }
  return updates;
}

json CompletionSession::choice_logprobs(const Choice& c, const std::vector<TokenLogprob>& lps, bool with_prompt) const {
  if (request_.logprobs < 0) return nullptr;
  if (request_.chat) return chat_logprobs(lps, tokenizer_);
  if (!with_prompt) return completion_logprobs(lps, tokenizer_, 0);
  std::vector<TokenLogprob> all;
  {
    std::lock_guard<std::mutex> lock(signal_->mutex);
    all = c.job->prompt_scores;
  }
  all.insert(all.end(), lps.begin(), lps.end());
  return completion_logprobs(all, tokenizer_, 0);
}

std::string CompletionSession::stream_chunk(const Update& u, Choice& c) const {
  json choice = {{"index", c.index}, {"finish_reason", nullptr}};
  if (request_.chat) {
    json delta = json::object();
    if (!c.role_sent) delta["role"] = "assistant";
    if (!u.text.empty()) delta["content"] = u.text;
    choice["delta"] = delta;
    c.role_sent = true;
  } else {
    choice["text"] = u.text;
  }
  choice["logprobs"] = u.lps.empty() ? json(nullptr) : choice_logprobs(c, u.lps, false);
  if (u.finished) choice["finish_reason"] = c.finish_reason;
  json chunk = {{"id", id_},
                {"object", request_.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created_},
                {"model", model_name_},
                {"choices", json::array({choice})}};
  if (request_.include_usage) chunk["usage"] = nullptr;
  std::string out = "data: " + dump_json(chunk) + "\n\n";
  if (u.finished && c.finish_reason == "error")
    out += "data: " + dump_json(error_body(500, "generation failed: " + c.error)) + "\n\n";
  return out;
}

int64_t CompletionSession::prompt_tokens() const {
  int64_t n = 0;
  for (const auto& p : request_.prompts) n += static_cast<int64_t>(p.size());
  return n;
}

int64_t CompletionSession::completion_tokens() const {
  int64_t n = 0;
  for (const Choice& c : choices_) n += static_cast<int64_t>(c.consumed);
  return n;
}

std::string CompletionSession::final_json() const {
  for (const Choice& c : choices_)
    if (c.finish_reason == "error") return dump_json(error_body(500, "generation failed: " + c.error));
  json out_choices = json::array();
  for (const Choice& c : choices_) {
    json choice = {{"index", c.index}, {"finish_reason", c.finish_reason}};
    if (request_.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text->visible()}};
      choice["logprobs"] = choice_logprobs(c, c.lps, false);
    } else {
      const std::string prefix = request_.echo ? request_.prompt_texts[c.prompt] : "";
      choice["text"] = prefix + c.text->visible();
      choice["logprobs"] = choice_logprobs(c, c.lps, request_.echo);
    }
    out_choices.push_back(choice);
  }
  json body = {{"id", id_},
               {"object", request_.chat ? "chat.completion" : "text_completion"},
               {"created", created_},
               {"model", model_name_},
               {"choices", out_choices},
               {"usage", usage_json(prompt_tokens(), completion_tokens())}};
  return dump_json(body);
}

bool CompletionSession::run(const Writer& write) {
  auto last_write = Clock::now();
  for (;;) {
    std::vector<Update> updates = poll();
    bool all_done = true;
    for (const Choice& c : choices_) all_done &= c.finished;
    if (request_.stream) {
      std::string out;
      for (const Update& u : updates) out += stream_chunk(u, choices_[u.choice]);
      // A quiet second gets an SSE comment: the write is what notices a client that went away.
      if (out.empty() && !all_done && Clock::now() - last_write >= std::chrono::seconds(1)) out = ": keep-alive\n\n";
      if (!out.empty()) {
        if (!write(out)) {
          cancel_all();
          return false;
        }
        last_write = Clock::now();
      }
      if (all_done) {
        std::string tail;
        if (request_.include_usage) {
          json usage = {{"id", id_},
                        {"object", request_.chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created_},
                        {"model", model_name_},
                        {"choices", json::array()},
                        {"usage", usage_json(prompt_tokens(), completion_tokens())}};
          tail += "data: " + dump_json(usage) + "\n\n";
        }
        tail += "data: [DONE]\n\n";
        return write(tail);
      }
    } else {
      if (all_done) return write(final_json());
      if (Clock::now() - last_write >= std::chrono::seconds(1)) {
        if (!write(" ")) {
          cancel_all();
          return false;
        }
        last_write = Clock::now();
      }
    }
  }
}

}  // namespace mambalm::serve
