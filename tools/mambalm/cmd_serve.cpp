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
#include "config/presets.h"
#include "core/device.h"
#include "core/error.h"
#include "model/model.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

namespace {

// On the GPU the batch's memory is allocated up front: its KV cache (max-batch x max-context
// rows, at fixed addresses for the decode graph) and its SSM/conv state, plus while a prompt is
// prefilled its own state. Say so before allocating when that cannot fit, with the context that
// would; 80% of the free memory leaves room for the workspace and the prompt cache.
void check_batch_fits(const serve::SchedulerOptions& so, int64_t kv_bytes_per_token, int64_t state_bytes_per_sequence) {
  size_t free_bytes = 0, total_bytes = 0;
  cuda_memory_info(&free_bytes, &total_bytes);
  const double room = 0.8 * static_cast<double>(free_bytes);
  const double batch = static_cast<double>(so.max_batch);
  const double states = 2.0 * batch * static_cast<double>(state_bytes_per_sequence);  // batch slots + prefills
  const double per_context_token = batch * static_cast<double>(kv_bytes_per_token);
  const double need = states + per_context_token * static_cast<double>(so.max_context);
  if (need <= room) return;
  const auto gb = [](double b) { return std::to_string(static_cast<int64_t>(b / 1e9)) + " GB"; };
  const std::string hint = per_context_token > 0 && room > states
                               ? "lower --max-context to " + std::to_string(static_cast<int64_t>((room - states) / per_context_token)) + " or --max-batch"
                               : "lower --max-batch";
  fail("serve", std::to_string(so.max_batch) + " sequences of " + std::to_string(so.max_context) + " tokens need " + gb(need) +
                    " (KV cache and SSM state) but the GPU has " + gb(static_cast<double>(free_bytes)) + " free",
       hint);
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  Args args("serve", "--model DIR | --preset NAME --tokenizer PATH [--host H] [--port N] [--max-batch N] [--max-context N] [--device cuda]",
            {{"model", "DIR", "model directory"},
             {"preset", "NAME", "serve a preset with random weights instead of --model (load tests: an 8B model is drawn on the GPU in seconds)"},
             {"seed", "N", "seed of --preset's random weights (default 1)"},
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
            placement_options_with_kv());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  const bool random_preset = args.has("preset");
  check(random_preset != args.has("model"), "serve", "give exactly one of --model DIR and --preset NAME");
  const std::string model_dir = random_preset ? "" : args.required("model");
  const uint64_t seed = static_cast<uint64_t>(args.integer_in("seed", 1, 0, int64_t{1} << 62));
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
  ho.model_name = args.str("name", random_preset ? args.str("preset") : std::filesystem::path(model_dir).lexically_normal().filename().string());
  if (ho.model_name.empty()) ho.model_name = std::filesystem::path(model_dir).lexically_normal().parent_path().filename().string();

  // max-batch sequences of max-context tokens, prefilled a chunk at a time.
  const InferenceWork work{so.max_batch, so.prefill_chunk, so.max_context, so.max_batch};
  Model model = random_preset ? Model(preset_config(args.str("preset")))
                              : load_placed(model_dir, placement, work, "mambalm serve");
  if (random_preset && placement.device == Device::CUDA) {
    model.init_random_on(placement.device, placement.dtype, seed);  // the matrices drawn on the device, in place
  } else if (random_preset) {
    model.init_random(seed);
    place(model, placement);
  }
  std::unique_ptr<Tokenizer> tokenizer;
  if (args.has("tokenizer")) tokenizer = open_tokenizer(args.str("tokenizer"));
  else if (!random_preset && has_tokenizer(model_dir)) tokenizer = open_tokenizer(model_dir);
  check(tokenizer != nullptr, "--model", model_dir + " has no tokenizer", "pass --tokenizer PATH (or --tokenizer bytes)");
  check(tokenizer->vocab_size() <= model.config().vocab_size, "--tokenizer",
        "the tokenizer has " + std::to_string(tokenizer->vocab_size()) + " tokens but the model only " +
            std::to_string(model.config().vocab_size));

  so.vocab_limit = tokenizer->vocab_size();
  so.eos_token = tokenizer->eos_id() >= 0 ? tokenizer->eos_id() : static_cast<int32_t>(model.config().eos_token_id);
  limits.vocab = model.config().vocab_size;
  // What one sequence holds: the M layers' state (fp32), and per token the * layers' KV cache
  // (in model.kv_dtype(), as the scheduler's states hold it).
  ho.state_bytes_per_sequence = model.config().state_bytes();
  ho.kv_bytes_per_token = model.config().kv_bytes_per_token(static_cast<int64_t>(dtype_size(model.kv_dtype())));

  // /v1/chat/completions renders messages with the model's tokenizer_config.json chat_template.
  ho.chat_template = std::make_shared<const ChatTemplate>(random_preset ? ChatTemplate() : ChatTemplate::from_model_dir(model_dir));

  if (placement.device == Device::CUDA) check_batch_fits(so, ho.kv_bytes_per_token, ho.state_bytes_per_sequence);

  serve::Metrics metrics;
  serve::Scheduler scheduler(model, so, metrics);
  serve::HttpServer server(scheduler, *tokenizer, metrics, ho, limits);
  const int port = server.bind();
  std::fprintf(stderr, "mambalm serve: %s on http://%s:%d (max batch %lld, max context %lld)\n", ho.model_name.c_str(),
               ho.host.c_str(), port, static_cast<long long>(so.max_batch), static_cast<long long>(so.max_context));
  std::fprintf(stderr, "mambalm serve: chat_template: %s\n", ho.chat_template->source_name().c_str());
  // The port file is the readiness signal: written after the startup log, so that whoever waits
  // for it finds the log complete, and renamed into place, so that it is never read half-written.
  if (args.has("port-file")) {
    const std::string path = args.str("port-file"), partial = path + ".partial";
    {
      std::ofstream f(partial);
      f << port << "\n";
      check(static_cast<bool>(f), "--port-file", "cannot write " + partial);
    }
    check(std::rename(partial.c_str(), path.c_str()) == 0, "--port-file", "cannot rename " + partial + " to " + path);
  }
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
