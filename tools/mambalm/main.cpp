// mambalm: train, evaluate and run Transformer, Mamba, Mamba-2 and hybrid language models.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "ops/blas_core.h"
#include "version.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"init", mambalm::cli::cmd_init, "write a randomly initialised model directory"},
    {"convert", mambalm::cli::cmd_convert, "Megatron-LM checkpoints to model directories and back (tensor-parallel shards merged)"},
    {"info", mambalm::cli::cmd_info, "describe a model: pattern, parameters, state and KV-cache sizes"},
    {"forward", mambalm::cli::cmd_forward, "logits of every position of a token sequence, as .npy"},
    {"generate", mambalm::cli::cmd_generate, "continue a prompt (prefill, then one token per step)"},
    {"train", mambalm::cli::cmd_train, "train on a token dataset: AdamW, schedules, checkpoints, resume"},
    {"grad", mambalm::cli::cmd_grad, "gradients of the next-token loss on one sequence, HF names (.safetensors)"},
    {"bench", mambalm::cli::cmd_bench, "prefill and decode speed, memory and state size"},
    {"tokenize", mambalm::cli::cmd_tokenize, "text on stdin to token ids (or ids to text with --decode)"},
    {"tokenizer", mambalm::cli::cmd_tokenizer, "train a SentencePiece vocabulary on text files (tokenizer train ...)"},
    {"prepare", mambalm::cli::cmd_prepare, "text or JSON Lines to Megatron .bin/.idx token datasets (train/valid split)"},
    {"eval", mambalm::cli::cmd_eval, "evaluate: perplexity, multiple choice, phonebook, MQAR, selective copy, passkey"},
    {"plot", mambalm::cli::cmd_plot, "loss curves of training runs, overlaid, as a self-contained .html or a .png"},
    {"study", mambalm::cli::cmd_study, "the study's four comparisons at small scale: data, train, eval, speed, report"},
    {"serve", mambalm::cli::cmd_serve, "OpenAI-compatible HTTP server with continuous batching (docs/serving.md)"},
};

void print_usage() {
  std::printf("usage: mambalm <command> [options]   (mambalm <command> --help for its options; mambalm --version)\n\ncommands:\n");
  for (const Command& c : kCommands) std::printf("  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  // libgomp reads its wait policy when it loads, before main(). By default a thread that ends a
  // parallel region spins ~300k iterations for more work; on a loaded machine (few cores shared
  // with other processes) each region then waits for descheduled spinners: decode measured 9x
  // slower (bench/NOTES.md). A short spin avoids that; the user's own setting always wins.
  bool start_again = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    setenv("GOMP_SPINCOUNT", "10000", 1);
    start_again = true;
  }
  // OpenBLAS chose its kernels when it loaded, also before main(): a CPU model it does not know
  // gets SSE3 ones (ops/blas_core.h), which OPENBLAS_CORETYPE corrects at the next load.
  if (const char* core = mambalm::ops::openblas_core_to_force()) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    start_again = true;
  }
  if (start_again) execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
  // glibc serves blocks above its mmap threshold (128 KiB, rising to at most 32 MiB) with fresh
  // mappings and returns a free heap top above its trim threshold to the kernel, so memory freed
  // and asked for again (per decode token, per op) was faulted in page by page each time. Both
  // thresholds raised: decode of mamba-130m as q8 ran up to 2x faster and prefill 1.3-2.5x
  // (bench/NOTES.md). The forward's large intermediate tensors do not use this heap but
  // core/host_blocks.h (Tensor::scratch), so that they cannot fragment it around long-lived
  // blocks; blocks above 256 MiB (the largest weight tables) still get mappings of their own.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  try {
    if (!std::strcmp(argv[1], "--version")) {
      mambalm::cli::print_version();
      return 0;
    }
    for (const Command& c : kCommands)
      if (!std::strcmp(argv[1], c.name)) return c.run(argc - 2, argv + 2);
    std::fprintf(stderr, "mambalm: unknown command '%s' (see 'mambalm --help')\n", argv[1]);
    return 2;
  } catch (const mambalm::Error& e) {
    std::fprintf(stderr, "mambalm: error: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mambalm: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mambalm: error: %s\n", e.what());
  }
  mambalm::dist::abort_job_after_error();  // in a data-parallel job, the other ranks end too
  return 1;
}
