// The HTTP/1.1 transport under `mambalm serve` (http_server.h), behind an interface of our own:
// its implementation (http_module/httplib_front.cpp, over Debian's cpp-httplib) is a module the
// binary opens only when it serves. cpp-httplib's Debian build links OpenSSL, whose start-up
// (error strings, libcrypto's pages) put ~4 MiB into every process that merely linked it: every
// generate, bench and train run (bench/NOTES.md, "The HTTP front opened at run time").
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mambalm::serve {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string body;
};

// Writes one piece of a streamed body; false once the client has gone.
using HttpWrite = std::function<bool(const char* data, size_t size)>;

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;
  // A chunked body instead of `body`: called once, on the connection's thread, after the status
  // line; returns true when the body is complete (false ends the connection).
  std::function<bool(const HttpWrite& write)> stream;
  // Called when a streamed response ends, completed or not (the client may have gone).
  std::function<void(bool completed)> stream_end;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

class HttpFront {
 public:
  virtual ~HttpFront() = default;
  // threads: connections served at once; bodies over max_body_bytes get 413; reads and writes
  // give up after timeout_s.
  virtual void configure(int threads, size_t max_body_bytes, int timeout_s) = 0;
  virtual void route(const std::string& method, const std::string& path, HttpHandler handler) = 0;
  // Called for every response with a status >= 400 and an empty body (no route, a body over the
  // limit, a malformed request), to fill it in.
  virtual void on_error(HttpHandler handler) = 0;
  // Called when a handler throws, with the exception's message, to fill the response in.
  virtual void on_exception(std::function<void(const std::string& what, HttpResponse&)> handler) = 0;
  // Called once per request answered: its path and status.
  virtual void on_answered(std::function<void(const std::string& path, int status)> log) = 0;
  // Binds host:port (port 0: any free one); returns the port, or -1 when it cannot.
  virtual int bind(const std::string& host, int port) = 0;
  // Serves until stop() (from any thread).
  virtual void run() = 0;
  virtual void stop() = 0;
};

// Opens the module and makes a transport. The module is $MAMBALM_HTTP_MODULE when that is set;
// else it is looked for beside the running executable, then in ../lib/mambalm/ from it (the installed layout), then in
// the install prefix's lib/mambalm/, then where this build put it. Throws a one-line Error naming
// the places tried when none loads.
std::unique_ptr<HttpFront> open_http_front();

}  // namespace mambalm::serve

// The module's one export (extern "C", so dlsym finds it by this name).
extern "C" mambalm::serve::HttpFront* mambalm_http_front_create();
