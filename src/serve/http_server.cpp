#include "serve/http_server.h"

#include <httplib.h>

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

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
  res.status = status;
  res.set_content(dump_json(error_body(status, message, param, code)), "application/json");
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
      server_(std::make_unique<httplib::Server>()) {
  // A keep-alive connection holds its thread between requests, so the pool bounds the clients
  // served at once; threads mostly sleep, so the default is generous.
  const int threads =
      opts_.threads > 0 ? opts_.threads : static_cast<int>(std::max<int64_t>(128, 4 * scheduler.options().max_batch + 8));
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server_->set_payload_max_length(opts_.max_body_bytes);
  server_->set_read_timeout(30, 0);
  server_->set_write_timeout(30, 0);
  routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  int port = opts_.port;
  if (port == 0) port = server_->bind_to_any_port(opts_.host);
  else if (!server_->bind_to_port(opts_.host, port)) port = -1;
  check(port > 0, "serve", "cannot listen on " + opts_.host + ":" + std::to_string(opts_.port),
        "is the port in use, or the host not an address of this machine?");
  return port;
}

void HttpServer::run() { server_->listen_after_bind(); }
void HttpServer::stop() { server_->stop(); }

void HttpServer::completion(const void* request, void* response, bool chat) {
  const auto& req = *static_cast<const httplib::Request*>(request);
  auto& res = *static_cast<httplib::Response*>(response);
  try {
    const size_t bad = first_invalid_utf8(req.body);
    if (bad != std::string::npos)
      throw ApiError(400, "the request body is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) + ")");
    CompletionRequest parsed = parse_completion_request(req.body, chat, tokenizer_, limits_, opts_.chat_template.get());
    const bool stream = parsed.stream;
    auto session = std::make_shared<CompletionSession>(std::move(parsed), scheduler_, tokenizer_, opts_.model_name);
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        stream ? "text/event-stream" : "application/json",
        [session](size_t, httplib::DataSink& sink) {
          auto write = [&sink](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
          try {
            const bool ok = session->run(write);
            if (ok) sink.done();
            return ok;
          } catch (const std::exception& e) {  // the status line is sent: end the body with the error
            session->cancel_all();
            write(dump_json(error_body(500, std::string("internal error: ") + e.what())));
            return false;
          }
        },
        [session](bool) { session->cancel_all(); });
  } catch (const ApiError& e) {
    send_error(res, e.status(), e.what(), e.param(), e.code());
  } catch (const Error& e) {  // the tokenizer or a check below it refused the input
    send_error(res, 400, e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, std::string("internal error: ") + e.what());
  }
}

void HttpServer::routes() {
  httplib::Server& s = *server_;
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { completion(&req, &res, false); });
  s.Post("/v1/chat/completions",
         [this](const httplib::Request& req, httplib::Response& res) { completion(&req, &res, true); });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json model = {{"id", opts_.model_name},
                  {"object", "model"},
                  {"created", started_},
                  {"owned_by", "mambalm"},
                  {"max_model_len", limits_.max_context},
                  {"state_bytes_per_sequence", opts_.state_bytes_per_sequence},
                  {"kv_bytes_per_token", opts_.kv_bytes_per_token}};
    res.set_content(dump_json({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    const std::string_view page = playground_html();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  // Anything that reached a status >= 400 without a body (no route, 413 from the body limit,
  // a wrong method) gets the JSON error shape too.
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    if (res.status == 404) message = "no route for " + req.method + " " + req.path;
    else if (res.status == 413)
      message = "the request body is larger than the server's limit of " + std::to_string(opts_.max_body_bytes) + " bytes";
    else if (res.status == 400) message = "malformed HTTP request";
    else message = "the request failed with HTTP status " + std::to_string(res.status);
    send_error(res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "internal error: " + what);
  });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.count_request(endpoint_label(req.path), res.status);
  });
}

}  // namespace mambalm::serve
