#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>

#include "core/device.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "model/model.h"
#include "ops/ops.h"
#include "io/append_file.h"
#include "io/atomic_file.h"
#include "io/tensorboard_events.h"
#include "train/checkpoint.h"
#include "train/gemm_choices.h"
#include "train/run_dir.h"
#include "train/sharded_adamw.h"
#include "train/step_profile.h"
#include "train/blended_windows.h"

namespace mambalm {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop_requested{false};
std::atomic<int> g_stop_signal{0};
// The first SIGINT/SIGTERM asks for a checkpoint and a clean exit; the handler then steps aside
// so that a second one ends the process at once (checkpoint writes are atomic either way).
extern "C" void request_stop(int sig) {
  g_stop_signal = sig;
  g_stop_requested = true;
  std::signal(sig, SIG_DFL);
}

// One micro-batch of windows starting at sample k.
struct Batch {
  Tensor ids, targets, doc_ids;  // I32 [B, L] each
  Batch(int64_t B, int64_t L)
      : ids(Tensor::empty({B, L}, DType::I32)), targets(Tensor::empty({B, L}, DType::I32)), doc_ids(Tensor::empty({B, L}, DType::I32)) {}
  void fill(const BlendedWindows& data, int64_t first_sample) {
    const int64_t B = ids.dim(0), L = ids.dim(1);
    for (int64_t b = 0; b < B; ++b)
      data.sample(first_sample + b, ids.data<int32_t>() + b * L, targets.data<int32_t>() + b * L, doc_ids.data<int32_t>() + b * L);
  }
};

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(std::fmod(s, 3600) / 60));
  else std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(std::fmod(s, 60)));
  return buf;
}

// Mean loss over the first val_batches batches of validation windows, a batch being what one
// step's micro-batch holds over all ranks (so the same windows whatever the number of ranks);
// each rank scores its part of every batch and the sums are added up.
double validation_loss(Model& model, const BlendedWindows& valid, const TrainConfig& cfg, dist::Communicator* comm) {
  Batch batch(cfg.micro_batch, cfg.seq_len);
  double sum = 0;
  int64_t n = 0;
  const int64_t rank = comm ? comm->rank() : 0, per_batch = cfg.micro_batch * (comm ? comm->size() : 1);
  const int64_t batches = std::min<int64_t>(cfg.val_batches, (valid.window_count() + per_batch - 1) / per_batch);
  for (int64_t i = 0; i < batches; ++i) {
    batch.fill(valid, i * per_batch + rank * cfg.micro_batch);  // unshuffled: the same windows every time
    // The documents of a window kept apart as in training (a model trained with the masks has
    // never seen another document's tokens: unmasked, short documents scored far worse).
    Tensor logits = model.forward(batch.ids, nullptr, false, cfg.pack_documents ? &batch.doc_ids : nullptr);
    Tensor logits_2d = logits.reshape({cfg.micro_batch * cfg.seq_len, logits.dim(2)});
    ops::CrossEntropyResult r = ops::cross_entropy_mean(logits_2d, batch.targets.reshape({cfg.micro_batch * cfg.seq_len}), nullptr);
    sum += r.sum_loss;
    n += r.n_valid;
  }
  if (comm) {
    std::vector<double> totals{sum, static_cast<double>(n)};
    comm->sum(totals);
    sum = totals[0];
    n = static_cast<int64_t>(totals[1]);
  }
  return n ? sum / static_cast<double>(n) : NAN;
}

// Bytes that stay resident through training: each parameter as the ops read it, its F32 master
// (mixed precision), its F32 gradient and the two AdamW moments.
int64_t training_state_bytes(const Model& model) {
  int64_t bytes = 0;
  for (const ParamRef& p : const_cast<Model&>(model).params()) {
    bytes += static_cast<int64_t>(p.tensor->nbytes());
    if (p.master && p.master->defined()) bytes += static_cast<int64_t>(p.master->nbytes());
    bytes += 3 * shape_numel(p.shape) * 4;  // gradient, exp_avg, exp_avg_sq
  }
  return bytes;
}

// Activation memory as a + b * micro_batch, measured by two probe steps of one and two sequences
// (their gradients are discarded); then the peak of the requested micro-batch is predicted and
// checked against the device's free memory before any real step runs.
// state: the bytes of training_state_bytes(), or of the sharded optimizer's layout.
void plan_device_memory(Model& model, const BlendedWindows& data, const TrainConfig& cfg, int64_t state, bool print) {
  size_t free_bytes = 0, total_bytes = 0;
  cuda_memory_info(&free_bytes, &total_bytes);
  double peak[2] = {0, 0};
  for (int64_t b = 1; b <= 2; ++b) {
    Batch probe(b, cfg.seq_len);
    probe.fill(data, 0);
    try {
      model.train_step(probe.ids, probe.targets, cfg.pack_documents ? &probe.doc_ids : nullptr, 1.0f, cfg.recompute);
    } catch (const Error& e) {
      fail("memory", "a training step of " + std::to_string(b) + " sequence(s) of " + std::to_string(cfg.seq_len) +
                         " tokens does not run: " + e.what(),
           "try --recompute, a shorter --seq-len or a smaller model");
    }
    peak[b - 1] = static_cast<double>(model.workspace_peak());
  }
  model.zero_grads();
  const double per_seq = std::max(0.0, peak[1] - peak[0]), fixed = std::max(0.0, peak[0] - per_seq);
  const double activations = fixed + per_seq * static_cast<double>(cfg.micro_batch);
  const double need = static_cast<double>(state) + activations;
  // Room for the other residents: cuBLAS workspaces, kernel scratch, the probes' allocator slack.
  const double usable = static_cast<double>(free_bytes) * 0.95 + static_cast<double>(state);
  if (print)
    std::fprintf(stderr,
               "memory plan (%s): parameters, masters, gradients and AdamW %.2f GB; activations %.2f GB at micro-batch %lld "
               "(%.3f GB per sequence of %lld tokens%s); peak %.2f GB of %.2f GB\n",
               cuda_device_summary().c_str(), static_cast<double>(state) / 1e9, activations / 1e9,
               static_cast<long long>(cfg.micro_batch), per_seq / 1e9, static_cast<long long>(cfg.seq_len),
               cfg.recompute ? ", recomputed" : cfg.keep_activations ? (", kept: " + keep_kinds_name(cfg.keep_activations)).c_str() : "", need / 1e9, static_cast<double>(total_bytes) / 1e9);
  if (need > usable) {
    const int64_t fits = per_seq > 0 ? static_cast<int64_t>((usable - static_cast<double>(state) - fixed) / per_seq) : 0;
    fail("memory",
         "micro-batch " + std::to_string(cfg.micro_batch) + " needs " + std::to_string(need / 1e9).substr(0, 6) + " GB but " +
             std::to_string(usable / 1e9).substr(0, 6) + " GB are usable",
         cfg.keep_activations ? std::string("keep less (--keep) or nothing")
         : fits > 0           ? "use --micro-batch " + std::to_string(fits) + " (with --grad-accum to keep the batch), or --recompute"
                              : "use --recompute or a shorter --seq-len");
  }
}

}  // namespace

nlohmann::json TrainConfig::identity(int world_size) const {
  // The batch counts in sequences per optimizer step, however it is split into ranks,
  // micro-batches and accumulation: a run may resume on another number of GPUs.
  // A blend as its parts with normalised weights ("0.7 A 0.3 B" and "7 A 3 B" are one blend).
  const std::vector<BlendPart> parts = parse_data_blend(data);
  return {{"data", parts.size() > 1 ? blend_text(parts) : data},
          {"seq_len", seq_len},         {"batch_sequences", micro_batch * grad_accum * world_size},
          {"steps", steps},             {"lr", schedule.max_lr},
          {"min_lr", schedule.min_lr}, {"warmup", schedule.warmup_steps}, {"schedule", schedule_name(schedule.kind)},
          {"weight_decay", adamw.weight_decay}, {"clip", clip},    {"seed", seed},
          {"pack_documents", pack_documents}, {"precision", dtype_name(matrix_dtype)},
          // Added with run identity (issue 20): options older checkpoints did not record.
          {"beta1", adamw.beta1}, {"beta2", adamw.beta2}, {"eps", adamw.eps}, {"decay_all", adamw.decay_all},
          {"decay_fraction", schedule.decay_fraction}, {"device", device == Device::CUDA ? "cuda" : "cpu"}};
}

TrainResult train(const TrainConfig& cfg) {
  check(cfg.micro_batch > 0 && cfg.grad_accum > 0 && cfg.steps > 0, "train", "micro-batch, accumulation and steps must be positive");
  // Data parallel: one process per GPU (or per MPI rank on the CPU). The communicator comes
  // first: on CUDA it picks this rank's GPU before anything is allocated.
  const dist::World world = dist::detect_world();
  std::unique_ptr<dist::Communicator> comm;
  if (world.distributed()) comm = dist::open_communicator(world, cfg.device);
  const int64_t ranks = world.size;
  const bool lead = world.rank == 0;  // rank 0 owns the run directory, the log and the checkpoints

  const DataBlends blends = resolve_data_blends(cfg.data, cfg.valid_data);
  BlendedWindows train_data(blends.train, cfg.seq_len, cfg.seed);
  std::unique_ptr<BlendedWindows> valid_data;
  if (!blends.valid.empty()) valid_data = std::make_unique<BlendedWindows>(blends.valid, cfg.seq_len, cfg.seed, /*shuffle=*/false);

  // Run identity (issue 20): one process per run directory, a run never mixes with another.
  std::unique_ptr<RunLock> run_lock;
  RunStart run;
  std::string resume_from;
  if (lead) {
    fs::create_directories(cfg.run_dir);
    run_lock = std::make_unique<RunLock>(cfg.run_dir);
    run = open_run(cfg.run_dir,
                   run_identity(cfg.model_dir, blend_identity(blends.train), blend_identity(blends.valid), cfg.identity(world.size)),
                   cfg.resume, cfg.overwrite);
    resume_from = cfg.resume ? resume_checkpoint(cfg.run_dir, run.run_id, run.legacy) : "";
    // Written once the directory is ours (a refused start leaves the old run's file alone).
    if (!cfg.run_file.empty()) io::write_file_atomically((fs::path(cfg.run_dir) / "run.toml").string(), cfg.run_file);
  }
  if (comm) resume_from = comm->broadcast_string(resume_from, 0);
  const std::string source_dir = resume_from.empty() ? cfg.model_dir : resume_from;  // weights and tokenizer
  Model model = Model::load(source_dir);
  for (const BlendedWindows* data : {&train_data, valid_data.get()})
    for (size_t i = 0; data && i < data->part_count(); ++i)
      check(data->windows(i).max_token() < model.config().vocab_size, data->part(i).prefix,
            "holds token id " + std::to_string(data->windows(i).max_token()) + " but the model's vocabulary has " +
                std::to_string(model.config().vocab_size) + " entries",
            "tokenize every dataset with the model's tokenizer");
  if (lead && (train_data.part_count() > 1 || (valid_data && valid_data->part_count() > 1)))
    std::fprintf(stderr, "data blend (weight, dataset): training\n%s%s%s", train_data.describe().c_str(),
                 valid_data ? "validation\n" : "no validation data\n", valid_data ? valid_data->describe().c_str() : "");
  // GEMM algorithms timed per shape (the default; the fastest) or the heuristic's first (the same
  // in every run); a resume pins the ones its run chose (train/gemm_choices.h). Data-parallel ranks
  // take the heuristic's: their choices would differ from rank to rank and are not saved. The CPU
  // has no choices to pin (a given file is still checked).
  ops::set_gemm_autotune(cfg.timed_gemms && !comm);
  const bool on_gpu = cfg.device == Device::CUDA;
  if (!cfg.gemm_choices_file.empty()) pin_gemm_choices_file(cfg.gemm_choices_file, on_gpu);
  else if (!resume_from.empty() && !comm && on_gpu) pin_saved_gemm_choices(cfg.run_dir, lead);
  GemmChoicesWriter gemm_choices(cfg.run_dir);
  model.prepare_training(cfg.device, cfg.matrix_dtype);
  model.set_keep_activations(cfg.keep_activations);
  std::unique_ptr<Optimizer> opt;
  ShardedAdamW* sharded = nullptr;
  int64_t state_bytes = 0;
  if (comm) {
    auto s = std::make_unique<ShardedAdamW>(model.params(), cfg.adamw, *comm);
    sharded = s.get();
    state_bytes = s->buffer_bytes() + s->shard_bytes();
    opt = std::move(s);
  } else {
    opt = std::make_unique<AdamW>(model.params(), cfg.adamw);
    state_bytes = training_state_bytes(model);
  }
  if (cfg.device == Device::CUDA) plan_device_memory(model, train_data, cfg, state_bytes, lead);
  const double flops_per_token = model.training_flops_per_token(cfg.seq_len);
  double peak_tflops = cfg.peak_tflops > 0 ? cfg.peak_tflops : ops::measure_matmul_tflops(cfg.device);
  if (comm) peak_tflops = comm->sum(peak_tflops, 600.0) / static_cast<double>(ranks);  // one figure for every rank
  if (lead) {
    std::fprintf(stderr, "model FLOPs: %.3g per token (forward + backward); matrix rate %.3g TFLOP/s (%s)\n", flops_per_token,
                 peak_tflops, cfg.peak_tflops > 0 ? "given" : "measured");
    if (sharded)
      std::fprintf(stderr,
                   "data parallel: %lld ranks over %s (started by %s); %lld sequences per step = %lld ranks x %lld x %lld "
                   "accumulated; optimizer state %.3f GB per rank (%.3f GB unsharded)\n",
                   static_cast<long long>(ranks), comm->backend().c_str(), dist::launcher_name(world.launcher).c_str(),
                   static_cast<long long>(ranks * cfg.micro_batch * cfg.grad_accum), static_cast<long long>(ranks),
                   static_cast<long long>(cfg.micro_batch), static_cast<long long>(cfg.grad_accum), sharded->shard_bytes() / 1e9,
                   sharded->unsharded_bytes() / 1e9);
  }
  TrainerState state;
  state.config = cfg.identity(world.size);
  state.run_id = run.run_id;
  if (!resume_from.empty()) {
    TrainerState saved = load_checkpoint_state(resume_from, *opt);
    check_same_options(saved.config, state.config, resume_from);
    check(cfg.steps >= saved.step, "--steps",
          std::to_string(cfg.steps) + " steps, but the run has already reached step " + std::to_string(saved.step),
          "give more --steps to extend it");
    if (lead && saved.config.contains("steps") && saved.config["steps"] != cfg.steps)
      std::fprintf(stderr, "extending the run from %lld to %lld steps: the learning-rate schedule now ends at step %lld\n",
                   static_cast<long long>(saved.config["steps"].get<int64_t>()), static_cast<long long>(cfg.steps),
                   static_cast<long long>(cfg.steps));
    saved.config = state.config;
    saved.run_id = run.run_id;
    state = saved;
    if (lead) std::fprintf(stderr, "resuming from %s (step %lld)\n", resume_from.c_str(), static_cast<long long>(state.step));
  }
  std::unique_ptr<io::AppendFile> metrics;
  std::unique_ptr<io::TensorBoardWriter> tensorboard;
  if (lead) {
    truncate_metrics(cfg.run_dir, state.step);  // steps after the checkpoint are logged again, once
    metrics = std::make_unique<io::AppendFile>((fs::path(cfg.run_dir) / "metrics.jsonl").string());
    if (!cfg.tensorboard_dir.empty()) tensorboard = std::make_unique<io::TensorBoardWriter>(cfg.tensorboard_dir);
  }
  // Every rank has loaded and planned: from here on a rank that does not answer is lost.
  if (comm) comm->sum(0.0, 600.0);

  // Gathers the optimizer state (and in a sharded run the masters) on every rank and copies the
  // checkpoint to host memory; rank 0 writes it on a background thread while the next steps run
  // (a 26M-parameter model's 0.4 GB took ~0.55 s a checkpoint on the H200 machine, 3% of a
  // 200-step interval). A checkpoint waits for the write before it; `wait` (the last one, a stop)
  // returns only once its own is on disk. A failed write is reported by the next wait.
  std::future<std::string> writing;  // the checkpoint being written: its directory
  const auto checkpoint = [&](bool wait) {
    NamedTensors optimizer_state = opt->state_tensors();
    if (sharded) sharded->gather_masters();
    std::string dir;
    if (lead) {
      if (writing.valid()) writing.get();
      if (!comm) gemm_choices.save();  // before the checkpoint that a resume would start from
      metrics->sync();  // the log up to a checkpoint is as durable as the checkpoint
      if (tensorboard) tensorboard->sync();
      writing = std::async(std::launch::async,
                           [snapshot = snapshot_checkpoint(model, std::move(optimizer_state), opt->steps_taken(), state,
                                                           source_dir),
                            run_dir = cfg.run_dir, keep_last = cfg.keep_last] {
                             std::string written = write_checkpoint(run_dir, snapshot);
                             prune_checkpoints(run_dir, keep_last);
                             return written;
                           });
      if (wait) dir = writing.get();
    }
    if (sharded) sharded->release_masters();
    if (comm) comm->sum(0.0, 3600.0);  // with `wait`, the others wait for rank 0's write, however long it takes
    return dir;
  };

  g_stop_requested = false;
  g_stop_signal = 0;
  auto previous_int = std::signal(SIGINT, request_stop);
  auto previous_term = std::signal(SIGTERM, request_stop);
  const bool tty = lead && ::isatty(STDERR_FILENO);
  const int64_t tokens_per_step = ranks * cfg.micro_batch * cfg.grad_accum * cfg.seq_len;
  Batch batch(cfg.micro_batch, cfg.seq_len);
  TrainResult result;
  auto t_start = std::chrono::steady_clock::now();
  auto t_log = t_start;
  int64_t steps_this_run = 0, tokens_since_log = 0;
  bool stop = false;  // a stop request, seen by every rank at the same step

  while (state.step < cfg.steps && !(comm ? stop : g_stop_requested.load())) {
    const double lr = cfg.schedule.at(state.step);
    StepProfile profile(cfg.profile_step == state.step + 1, model);
    if (sharded) sharded->zero_grads();
    else model.zero_grads();
    profile.lap("zero gradients");
    double loss = 0;
    // Micro-batch a of rank r holds the windows a single process with micro-batch
    // ranks * micro_batch would have put in the r-th part of its a-th micro-batch.
    for (int64_t a = 0; a < cfg.grad_accum; ++a) {
      batch.fill(train_data, state.samples_seen + (a * ranks + world.rank) * cfg.micro_batch);
      profile.lap("data");
      const bool overlap = sharded && a == cfg.grad_accum - 1;  // reduce while the last backward runs
      if (overlap) {
        sharded->start_reduction();
        model.set_grads_ready_hook([sharded](size_t first, size_t end) { sharded->grads_ready(first, end); });
      }
      ops::CrossEntropyResult r = model.train_step(batch.ids, batch.targets, cfg.pack_documents ? &batch.doc_ids : nullptr,
                                                   1.0f / static_cast<float>(cfg.grad_accum * ranks), cfg.recompute);
      if (overlap) model.set_grads_ready_hook(nullptr);
      loss += r.mean_loss / static_cast<double>(cfg.grad_accum);
      profile.lap("forward + backward");
    }
    state.samples_seen += ranks * cfg.micro_batch * cfg.grad_accum;
    if (comm) {
      sharded->reduce_gradients();
      std::vector<double> totals{loss, g_stop_requested ? 1.0 : 0.0};
      comm->sum(totals);
      loss = totals[0] / static_cast<double>(ranks);
      stop = totals[1] > 0;
    }
    if (!std::isfinite(loss)) fail("training", "loss is " + std::to_string(loss) + " at step " + std::to_string(state.step + 1), "lower the learning rate");
    if (comm) profile.lap("reduce gradients");
    const double grad_norm = sharded ? sharded->grad_norm() : global_grad_norm(model.params());
    profile.lap("gradient norm");
    if (!std::isfinite(grad_norm)) {  // names the tensor
      if (sharded) sharded->check_finite_grads();
      else check_finite_grads(model.params());
    }
    opt->step(lr, clip_factor(grad_norm, cfg.clip));
    profile.lap("optimizer");
    if (lead) profile.report(stderr, state.step + 1);
    ++state.step;
    ++steps_this_run;
    state.tokens_seen += tokens_per_step;
    tokens_since_log += tokens_per_step;
    result.last_loss = loss;

    const auto wall = std::chrono::system_clock::now();
    nlohmann::json row = {{"step", state.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                          {"time", std::chrono::duration<double>(wall.time_since_epoch()).count()},
                          {"elapsed_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()},
                          {"tokens", state.tokens_seen}};
    const bool last = state.step == cfg.steps;
    if (valid_data && ((cfg.val_interval > 0 && state.step % cfg.val_interval == 0) || last)) {
      result.last_val_loss = validation_loss(model, *valid_data, cfg, comm.get());
      row["val_loss"] = result.last_val_loss;
    }
    if (lead && (state.step % cfg.log_interval == 0 || last || row.contains("val_loss"))) {
      auto now = std::chrono::steady_clock::now();
      double dt = std::chrono::duration<double>(now - t_log).count();
      double tps = dt > 0 ? static_cast<double>(tokens_since_log) / dt : 0;
      double elapsed = std::chrono::duration<double>(now - t_start).count();
      double eta = elapsed / static_cast<double>(steps_this_run) * static_cast<double>(cfg.steps - state.step);
      const double tflops = tps * flops_per_token / 1e12;
      // MFU per device: the job's model FLOP rate over the ranks' combined matrix rate.
      const double mfu = tflops / (peak_tflops * static_cast<double>(ranks));
      row["tokens_per_s"] = tps;
      row["model_tflops"] = tflops;
      row["mfu"] = mfu;
      char line[320];
      std::snprintf(line, sizeof line,
                    "step %lld/%lld | loss %.4f%s | grad norm %.3f | lr %.3e | %.0f tok/s | %.1f TFLOP/s | MFU %.1f%% | ETA %s",
                    static_cast<long long>(state.step), static_cast<long long>(cfg.steps), loss,
                    row.contains("val_loss") ? (" | val " + std::to_string(result.last_val_loss).substr(0, 6)).c_str() : "",
                    grad_norm, lr, tps, tflops, 100.0 * mfu, format_duration(eta).c_str());
      if (tty) {  // the line stays (the loss history), a live bar under it
        int width = 30, filled = static_cast<int>(width * state.step / cfg.steps);
        std::fprintf(stderr, "\r\x1b[K%s\n", line);
        if (!last)
          std::fprintf(stderr, "[%s%s] %lld/%lld", std::string(static_cast<size_t>(filled), '#').c_str(),
                       std::string(static_cast<size_t>(width - filled), '.').c_str(), static_cast<long long>(state.step),
                       static_cast<long long>(cfg.steps));
      } else {
        std::fprintf(stderr, "%s\n", line);
      }
      t_log = now;
      tokens_since_log = 0;
    }
    if (lead) metrics->write_line(row.dump());  // throws on a full disk: a run never goes on without its log
    if (tensorboard) {  // the same row, one scalar per number (a resumed run rewrites later steps: TensorBoard keeps the newest)
      const double wall_s = row["time"].get<double>();
      for (const auto& [key, tag] : {std::pair<const char*, const char*>{"loss", "train/loss"}, {"val_loss", "valid/loss"},
                                     {"lr", "train/lr"}, {"grad_norm", "train/grad_norm"},
                                     {"tokens_per_s", "speed/tokens_per_s"}, {"mfu", "speed/mfu"}})
        if (row.contains(key)) tensorboard->scalar(tag, row[key].get<double>(), state.step, wall_s);
    }
    if ((cfg.checkpoint_interval > 0 && state.step % cfg.checkpoint_interval == 0) || last) checkpoint(last);
  }
  if (writing.valid()) writing.get();  // the loop may end (a stop) with a write in flight
  const bool stopped = comm ? stop : g_stop_requested.load();
  if (stopped && state.step < cfg.steps) {
    std::string dir = checkpoint(true);
    if (lead) std::fprintf(stderr, "%sinterrupted: saved %s; continue with --resume\n", tty ? "\n" : "", dir.c_str());
    result.interrupted = true;
    result.stop_signal = g_stop_signal ? g_stop_signal.load() : SIGTERM;
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  result.steps_done = state.step;
  return result;
}

}  // namespace mambalm
