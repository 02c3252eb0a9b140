// One completion request in flight, on its HTTP thread: the jobs it submitted (prompts x n),
// the text of each choice as tokens arrive, and the bytes it writes back: server-sent events
// (stream: true) or one JSON object. The writer returns false when the client is gone; the
// session then cancels its jobs, so their batch slots free at the scheduler's next step.
// A non-streamed response is preceded by a space every second while it waits (JSON allows
// leading whitespace): that write is what notices a client that went away.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/choice_text.h"
#include "serve/completion_request.h"
#include "serve/job.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::serve {

class CompletionSession {
 public:
  using Writer = std::function<bool(const std::string&)>;

  // Builds and submits the jobs (throws ApiError 503 when the queue is full).
  CompletionSession(CompletionRequest request, Scheduler& scheduler, const Tokenizer& tokenizer, std::string model_name);
  ~CompletionSession();  // cancels whatever has not finished

  // Writes the whole response through `write`, returning when it is complete (true) or the
  // client is gone (false).
  bool run(const Writer& write);
  void cancel_all();

 private:
  struct Choice {
    std::shared_ptr<Job> job;
    size_t index = 0;   // position in the response's choices
    size_t prompt = 0;  // which prompt
    std::unique_ptr<ChoiceText> text;
    size_t consumed = 0;            // job->generated entries read
    std::vector<TokenLogprob> lps;  // generated tokens' logprobs, up to a stop string
    bool finished = false;
    bool role_sent = false;  // chat streams send the role in the first chunk
    std::string finish_reason, error;
  };
  struct Update {
    size_t choice;
    std::string text;
    std::vector<TokenLogprob> lps;
    bool finished;
  };

  // Waits (up to a second) for news and turns it into updates; empty on a quiet second.
  std::vector<Update> poll();
  std::string stream_chunk(const Update& u, Choice& c) const;
  std::string final_json() const;
  nlohmann::json choice_logprobs(const Choice& c, const std::vector<TokenLogprob>& lps, bool with_prompt) const;
  int64_t prompt_tokens() const;
  int64_t completion_tokens() const;

  CompletionRequest request_;
  Scheduler& scheduler_;
  const Tokenizer& tokenizer_;
  std::string model_name_;
  std::string id_;
  int64_t created_ = 0;
  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  std::vector<Choice> choices_;
};

}  // namespace mambalm::serve
