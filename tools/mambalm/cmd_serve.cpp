// mambalm serve: an OpenAI-compatible HTTP server over one model, with continuous batching
// (src/serve/). Runs until SIGINT or SIGTERM; docs/serving.md has the endpoints.
#include <pthread.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "core/error.h"
#include "model/model.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

int cmd_serve(int argc, char** argv) {
  Args args("serve", "--model DIR [--tokenizer PATH] [--host H] [--port N] [--max-batch N] [--max-context N] [--device cuda]",
            {{"model", "DIR", "model directory"},
             {"tokenizer", "PATH", "tokenizer (default: the model directory's; 'bytes' for raw bytes)"},
             {"host", "H", "address to listen on (default 127.0.0.1)"},
             {"port", "N", "TCP port (default 8080; 0 = any free port, see --port-file)"},
             {"port-file", "FILE", "write the port listened on to FILE once ready"},
             {"max-batch", "N", "sequences decoded together (default 8)"},
             {"max-context", "N", "prompt + generated tokens per sequence (default 2048)"},
             {"prefill-chunk", "N", "prompt tokens per prefill step between decode steps (default 128)"},
             {"prompt-cache-mb", "MB", "memory for prompt-state snapshots (default 256; 0 = no prompt cache)"},
             {"snapshot-interval", "N", "tokens between prompt-state snapshots (default 512; also at every prompt's end)"},
             {"max-queue", "N", "sequences that may wait for a slot before requests get 503 (default 1024)"},
             {"max-body", "BYTES", "largest request body accepted (default 8388608)"},
             {"threads", "N", "HTTP connection threads = clients served at once (default max(128, 4 * max-batch + 8))"},
             {"name", "ID", "model id reported by /v1/models (default: the directory's name)"}},
            placement_options());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  const std::string model_dir = args.required("model");
  // Block the stop signals before any thread starts, so that only the waiter below takes them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a signal

  serve::SchedulerOptions so;
  so.max_batch = args.integer_in("max-batch", 8, 1, 4096);
  so.max_context = args.integer_in("max-context", 2048, 2, int64_t{1} << 30);
  so.prefill_chunk = args.integer_in("prefill-chunk", 128, 1, int64_t{1} << 20);
  so.max_queue = args.integer_in("max-queue", 1024, 1, int64_t{1} << 24);
  so.prompt_cache_bytes = args.integer_in("prompt-cache-mb", 256, 0, int64_t{1} << 24) << 20;
  so.snapshot_interval = args.integer_in("snapshot-interval", 512, 1, int64_t{1} << 30);
  serve::RequestLimits limits;
  limits.max_context = so.max_context;
  serve::HttpOptions ho;
  ho.host = args.str("host", "127.0.0.1");
  ho.port = static_cast<int>(args.integer_in("port", 8080, 0, 65535));
  ho.max_body_bytes = static_cast<size_t>(args.integer_in("max-body", int64_t{8} << 20, 1024, int64_t{1} << 32));
  ho.threads = static_cast<int>(args.integer_in("threads", 0, 0, 4096));
  ho.model_name = args.str("name", std::filesystem::path(model_dir).lexically_normal().filename().string());
  if (ho.model_name.empty()) ho.model_name = std::filesystem::path(model_dir).lexically_normal().parent_path().filename().string();

  Model model = Model::load(model_dir);
  place(model, placement);
  std::unique_ptr<Tokenizer> tokenizer;
  if (args.has("tokenizer")) tokenizer = open_tokenizer(args.str("tokenizer"));
  else if (has_tokenizer(model_dir)) tokenizer = open_tokenizer(model_dir);
  check(tokenizer != nullptr, "--model", model_dir + " has no tokenizer", "pass --tokenizer PATH (or --tokenizer bytes)");
  check(tokenizer->vocab_size() <= model.config().vocab_size, "--tokenizer",
        "the tokenizer has " + std::to_string(tokenizer->vocab_size()) + " tokens but the model only " +
            std::to_string(model.config().vocab_size));

  so.vocab_limit = tokenizer->vocab_size();
  so.eos_token = tokenizer->eos_id() >= 0 ? tokenizer->eos_id() : static_cast<int32_t>(model.config().eos_token_id);
  limits.vocab = model.config().vocab_size;
  // What one sequence holds: the M layers' state (fp32), and per token the * layers' KV cache.
  ho.state_bytes_per_sequence = model.config().state_bytes();
  ho.kv_bytes_per_token = model.config().kv_bytes_per_token(placement.device == Device::CUDA ? dtype_size(placement.dtype) : 4);

  serve::Metrics metrics;
  serve::Scheduler scheduler(model, so, metrics);
  serve::HttpServer server(scheduler, *tokenizer, metrics, ho, limits);
  const int port = server.bind();
  if (args.has("port-file")) {
    std::ofstream f(args.str("port-file"));
    f << port << "\n";
    check(static_cast<bool>(f), "--port-file", "cannot write " + args.str("port-file"));
  }
  std::fprintf(stderr, "mambalm serve: %s on http://%s:%d (max batch %lld, max context %lld)\n", ho.model_name.c_str(),
               ho.host.c_str(), port, static_cast<long long>(so.max_batch), static_cast<long long>(so.max_context));
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "mambalm serve: stopping (signal %d)\n", sig);
    server.stop();
  });
  server.run();
  // Stopped by a signal: the waiter has returned. Stopped otherwise: wake the waiter.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return 0;
}

}  // namespace mambalm::cli
