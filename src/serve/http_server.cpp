#include "serve/http_server.h"

#include <algorithm>
#include <ctime>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/completion_response.h"
#include "serve/completion_session.h"
#include "serve/playground_page.h"
#include "serve/utf8.h"

namespace mambalm::serve {

using nlohmann::json;

namespace {

void send_error(HttpResponse& res, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
  res.status = status;
  res.body = dump_json(error_body(status, message, param, code));
  res.content_type = "application/json";
}

// The endpoint label of /metrics: known routes by name, everything else as "other" (bounded).
std::string endpoint_label(const std::string& path) {
  for (const char* p : {"/", "/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"})
    if (path == p) return p;
  return "other";
}

}  // namespace

HttpServer::HttpServer(Scheduler& scheduler, const Tokenizer& tokenizer, Metrics& metrics, HttpOptions opts,
                       RequestLimits limits)
    : scheduler_(scheduler),
      tokenizer_(tokenizer),
      metrics_(metrics),
      opts_(std::move(opts)),
      limits_(limits),
      started_(static_cast<int64_t>(std::time(nullptr))),
      front_(open_http_front()) {
  // A keep-alive connection holds its thread between requests, so the pool bounds the clients
  // served at once; threads mostly sleep, so the default is generous.
  const int threads =
      opts_.threads > 0 ? opts_.threads : static_cast<int>(std::max<int64_t>(128, 4 * scheduler.options().max_batch + 8));
  front_->configure(threads, opts_.max_body_bytes, 30);
  routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  const int port = front_->bind(opts_.host, opts_.port);
  check(port > 0, "serve", "cannot listen on " + opts_.host + ":" + std::to_string(opts_.port),
        "is the port in use, or the host not an address of this machine?");
  return port;
}

void HttpServer::run() { front_->run(); }
void HttpServer::stop() { front_->stop(); }

void HttpServer::completion(const HttpRequest& req, HttpResponse& res, bool chat) {
  try {
    const size_t bad = first_invalid_utf8(req.body);
    if (bad != std::string::npos)
      throw ApiError(400, "the request body is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) + ")");
    CompletionRequest parsed = parse_completion_request(req.body, chat, tokenizer_, limits_, opts_.chat_template.get());
    const bool stream = parsed.stream;
    auto session = std::make_shared<CompletionSession>(std::move(parsed), scheduler_, tokenizer_, opts_.model_name);
    res.status = 200;
    res.headers.emplace_back("Cache-Control", "no-cache");
    res.content_type = stream ? "text/event-stream" : "application/json";
    res.stream = [session](const HttpWrite& sink) {
      auto write = [&sink](const std::string& s) { return s.empty() || sink(s.data(), s.size()); };
      try {
        return session->run(write);
      } catch (const std::exception& e) {  // the status line is sent: end the body with the error
        session->cancel_all();
        write(dump_json(error_body(500, std::string("internal error: ") + e.what())));
        return false;
      }
    };
    res.stream_end = [session](bool) { session->cancel_all(); };
  } catch (const ApiError& e) {
    send_error(res, e.status(), e.what(), e.param(), e.code());
  } catch (const Error& e) {  // the tokenizer or a check below it refused the input
    send_error(res, 400, e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, std::string("internal error: ") + e.what());
  }
}

void HttpServer::routes() {
  HttpFront& f = *front_;
  f.route("POST", "/v1/completions", [this](const HttpRequest& req, HttpResponse& res) { completion(req, res, false); });
  f.route("POST", "/v1/chat/completions",
          [this](const HttpRequest& req, HttpResponse& res) { completion(req, res, true); });
  f.route("GET", "/v1/models", [this](const HttpRequest&, HttpResponse& res) {
    json model = {{"id", opts_.model_name},
                  {"object", "model"},
                  {"created", started_},
                  {"owned_by", "mambalm"},
                  {"max_model_len", limits_.max_context},
                  {"state_bytes_per_sequence", opts_.state_bytes_per_sequence},
                  {"kv_bytes_per_token", opts_.kv_bytes_per_token}};
    res.body = dump_json({{"object", "list"}, {"data", json::array({model})}});
    res.content_type = "application/json";
  });
  f.route("GET", "/", [](const HttpRequest&, HttpResponse& res) {
    res.body = std::string(playground_html());
    res.content_type = "text/html; charset=utf-8";
  });
  f.route("GET", "/health", [](const HttpRequest&, HttpResponse& res) {
    res.body = R"({"status":"ok"})";
    res.content_type = "application/json";
  });
  f.route("GET", "/metrics", [this](const HttpRequest&, HttpResponse& res) {
    res.body = metrics_.render();
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  });
  // Anything that reached a status >= 400 without a body (no route, 413 from the body limit,
  // a wrong method) gets the JSON error shape too.
  f.on_error([this](const HttpRequest& req, HttpResponse& res) {
    std::string message;
    if (res.status == 404) message = "no route for " + req.method + " " + req.path;
    else if (res.status == 413)
      message = "the request body is larger than the server's limit of " + std::to_string(opts_.max_body_bytes) + " bytes";
    else if (res.status == 400) message = "malformed HTTP request";
    else message = "the request failed with HTTP status " + std::to_string(res.status);
    send_error(res, res.status, message);
  });
  f.on_exception([](const std::string& what, HttpResponse& res) { send_error(res, 500, "internal error: " + what); });
  f.on_answered([this](const std::string& path, int status) { metrics_.count_request(endpoint_label(path), status); });
}

}  // namespace mambalm::serve
