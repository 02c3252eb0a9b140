// The module `mambalm-http` (CMakeLists.txt: target mambalm_http): serve/http_front.h's transport
// over Debian's cpp-httplib. It holds no mambalm code: the binary opens it for `mambalm serve`
// only (http_front.cpp), so that the library and the OpenSSL it brings stay out of every other
// run.
#include <httplib.h>

#include <exception>
#include <stdexcept>
#include <utility>

#include "serve/http_front.h"

namespace mambalm::serve {
namespace {

HttpRequest our_request(const httplib::Request& req) { return HttpRequest{req.method, req.path, req.body}; }

void apply(HttpResponse& out, httplib::Response& res) {
  res.status = out.status;
  for (const auto& [name, value] : out.headers) res.set_header(name, value);
  if (out.stream) {
    res.set_chunked_content_provider(
        out.content_type,
        [stream = std::move(out.stream)](size_t, httplib::DataSink& sink) {
          const HttpWrite write = [&sink](const char* data, size_t size) { return sink.write(data, size); };
          const bool completed = stream(write);
          if (completed) sink.done();
          return completed;
        },
        [end = std::move(out.stream_end)](bool completed) {
          if (end) end(completed);
        });
  } else if (!out.body.empty() || !out.content_type.empty()) {
    res.set_content(out.body, out.content_type);
  }
}

class HttplibFront final : public HttpFront {
 public:
  void configure(int threads, size_t max_body_bytes, int timeout_s) override {
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    server_.set_payload_max_length(max_body_bytes);
    server_.set_read_timeout(timeout_s, 0);
    server_.set_write_timeout(timeout_s, 0);
  }

  void route(const std::string& method, const std::string& path, HttpHandler handler) override {
    auto call = [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
      HttpResponse out;
      handler(our_request(req), out);
      apply(out, res);
    };
    if (method == "GET") server_.Get(path, std::move(call));
    else if (method == "POST") server_.Post(path, std::move(call));
    else if (method == "PUT") server_.Put(path, std::move(call));
    else if (method == "DELETE") server_.Delete(path, std::move(call));
    else throw std::invalid_argument("mambalm-http: no route method " + method);
  }

  void on_error(HttpHandler handler) override {
    server_.set_error_handler(httplib::Server::HandlerWithResponse(
        [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          HttpResponse out;
          out.status = res.status;
          handler(our_request(req), out);
          apply(out, res);
          return httplib::Server::HandlerResponse::Handled;
        }));
  }

  void on_exception(std::function<void(const std::string&, HttpResponse&)> handler) override {
    server_.set_exception_handler([handler = std::move(handler)](const httplib::Request&, httplib::Response& res,
                                                                  std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      HttpResponse out;
      out.status = 500;
      handler(what, out);
      apply(out, res);
    });
  }

  void on_answered(std::function<void(const std::string&, int)> log) override {
    server_.set_logger([log = std::move(log)](const httplib::Request& req, const httplib::Response& res) {
      log(req.path, res.status);
    });
  }

  int bind(const std::string& host, int port) override {
    if (port == 0) return server_.bind_to_any_port(host);
    return server_.bind_to_port(host, port) ? port : -1;
  }

  void run() override { server_.listen_after_bind(); }
  void stop() override { server_.stop(); }

 private:
  httplib::Server server_;
};

}  // namespace
}  // namespace mambalm::serve

extern "C" __attribute__((visibility("default"))) mambalm::serve::HttpFront* mambalm_http_front_create() {
  return new mambalm::serve::HttplibFront();
}
