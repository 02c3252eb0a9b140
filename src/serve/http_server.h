// The HTTP/1.1 front of `mambalm serve`, on the transport of http_front.h: routes, size limits, and
// OpenAI-style JSON errors for everything that goes wrong (unknown route, oversized body,
// malformed request, handler exception). Each connection is served by a pool thread; model
// work happens only on the scheduler's thread.
//   POST /v1/completions, POST /v1/chat/completions   (completion_session.h)
//   GET  /v1/models, GET /health, GET /metrics          (Prometheus text)
//   GET  /                                              the web playground (web/playground.html)
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "serve/completion_request.h"
#include "serve/http_front.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: an ephemeral port (see bind())
  size_t max_body_bytes = size_t{8} << 20;  // larger bodies get 413
  int threads = 0;                        // connection threads (clients served at once); 0: max(128, 4 * max_batch + 8)
  std::string model_name = "mambalm";     // the id /v1/models lists
  int64_t state_bytes_per_sequence = 0;   // for /v1/models (the playground's memory panel)
  int64_t kv_bytes_per_token = 0;
  std::shared_ptr<const ChatTemplate> chat_template;  // /v1/chat/completions; null: the default
};

class HttpServer {
 public:
  HttpServer(Scheduler& scheduler, const Tokenizer& tokenizer, Metrics& metrics, HttpOptions opts, RequestLimits limits);
  ~HttpServer();

  // Binds the socket; returns the port (the chosen one when opts.port is 0). Throws on failure.
  int bind();
  // Serves until stop() (from any thread).
  void run();
  void stop();

 private:
  void routes();
  void completion(const HttpRequest& req, HttpResponse& res, bool chat);

  Scheduler& scheduler_;
  const Tokenizer& tokenizer_;
  Metrics& metrics_;
  HttpOptions opts_;
  RequestLimits limits_;
  int64_t started_ = 0;
  std::unique_ptr<HttpFront> front_;
};

}  // namespace mambalm::serve
