// mambalm train: train a model directory on a Megatron indexed dataset or a weighted blend of them.
#include <algorithm>
#include <csignal>
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "run_file.h"
#include "config/hf_config.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "core/limits.h"
#include "train/trainer.h"

namespace mambalm::cli {

namespace {

// On the CPU everything training keeps lives in host memory: refuse up front what cannot fit
// (F32 weights, gradients and two AdamW moments, and the micro-batch's token tensors) instead
// of being killed by the OOM killer part way through.
void check_training_fits(const TrainConfig& cfg) {
  const ModelConfig model = load_model_config(cfg.model_dir);
  const int64_t params = model.parameter_upper_bound(cfg.model_dir);
  const int64_t state = limits::checked_mul(params, 16, "train", "the training state in bytes");
  const int64_t batch = limits::checked_mul(limits::checked_mul(cfg.micro_batch, cfg.seq_len, "train", "the batch"), 12, "train",
                                            "the batch in bytes");
  check_fits_host_memory(limits::checked_add(state, batch, "train", "the training memory"), "train",
                         "training (" + std::to_string(params) + " parameters with gradients and AdamW state, and a micro-batch of " +
                             std::to_string(cfg.micro_batch) + " x " + std::to_string(cfg.seq_len) + " tokens)",
                         "use a smaller model or --micro-batch, or --device cuda");
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("train", "--model DIR --data PREFIX --out RUN_DIR [options] [--device cuda [--dtype bf16|f32]]\n       mambalm train --config RUN.toml [options]",
            {{"config", "FILE",
              "TOML run file holding any of these options by name (seq-len = 1024, resume = true); the command line "
              "overrides it; each run saves its options as RUN_DIR/run.toml"},
             {"model", "DIR", "initial model directory (from 'mambalm init' or an HF model)"},
             {"data", "PREFIX", "dataset from 'mambalm prepare': PREFIX_train (+ PREFIX_valid), or PREFIX; or a weighted blend, "
                              "\"0.7 PREFIX_A 0.3 PREFIX_B\" (weights normalised; run file: data = [0.7, \"A\", 0.3, \"B\"])"},
             {"valid-data", "PREFIX", "validation dataset or blend (default: the PREFIX_valid of each --data part that has one, "
                                      "with the parts' weights)"},
             {"out", "RUN_DIR", "run directory: metrics.jsonl and checkpoints/"},
             {"seq-len", "L", "tokens per sample (default 256)"},
             {"micro-batch", "B", "samples per forward/backward (default 8)"},
             {"grad-accum", "N", "micro-batches per optimizer step (default 1)"},
             {"steps", "N", "optimizer steps (default 1000)"},
             {"tokens", "N", "train on N tokens instead of --steps"},
             {"lr", "LR", "peak learning rate (default 3e-4)"},
             {"min-lr", "LR", "final learning rate (default lr / 10)"},
             {"schedule", "S", "cosine (default), wsd or constant"},
             {"warmup", "N", "linear warm-up steps (default 1% of steps)"},
             {"decay-fraction", "F", "WSD: share of steps in the final decay (default 0.2)"},
             {"weight-decay", "W", "AdamW decoupled weight decay (default 0.1)"},
             {"decay-all", "", "also decay norms, biases, A_log, D and dt_bias"},
             {"beta1", "B", "AdamW beta1 (default 0.9)"},
             {"beta2", "B", "AdamW beta2 (default 0.95)"},
             {"clip", "C", "global gradient-norm clip (default 1.0; 0 = off)"},
             {"seed", "S", "data order seed (default 1234)"},
             {"log-interval", "N", "steps between progress lines (default 10)"},
             {"val-interval", "N", "steps between validations (default 100)"},
             {"val-batches", "N", "micro-batches per validation (default 8)"},
             {"checkpoint-interval", "N", "steps between checkpoints (default 500)"},
             {"no-packing-mask", "", "let packed documents see each other (no mask, no state reset)"},
             {"resume", "", "continue from RUN_DIR/checkpoints/latest (--steps may grow: the schedule then ends later)"},
             {"overwrite", "", "start afresh in a RUN_DIR that holds a run (its checkpoints and metrics are removed)"},
             {"keep-last", "K", "keep only the newest K checkpoints (default: all)"},
             {"tensorboard", "DIR", "also write loss, validation loss, lr, grad norm and speed as TensorBoard scalars in DIR"},
             {"peak-tflops", "R", "the device's matrix rate for MFU (default: measured at start)"},
             {"profile-step", "N", "print where step N's time goes: its parts, the model's stages and every op (synchronised)"}},
            with(with(placement_options(), activation_options()), gemm_options()));
  // A blend may be a TOML array in a run file: data = [0.7, "A", 0.3, "B"].
  const ListOptions lists = {"data", "valid-data"};
  if (!args.parse(expand_run_file(argc, argv, args, lists))) return 0;
  TrainConfig cfg;
  // resume/overwrite say what to do with the directory, not what the run is: left out so that
  // `--config RUN/run.toml` repeats the run.
  cfg.run_file = run_file_text(args, {"config", "resume", "overwrite", "profile-step"}, lists);
  cfg.model_dir = args.required("model");
  cfg.data = args.required("data");
  cfg.valid_data = args.str("valid-data");
  cfg.run_dir = args.required("out");
  // Every number is range-checked here and every product checked (core/limits.h): an absurd
  // --micro-batch must be a one-line error, not an overflowed allocation.
  cfg.seq_len = args.integer_in("seq-len", 256, 1, limits::kMaxSequence);
  cfg.micro_batch = args.integer_in("micro-batch", 8, 1, limits::kMaxBatch);
  cfg.grad_accum = args.integer_in("grad-accum", 1, 1, limits::kMaxBatch);
  const int64_t tokens_per_step =
      limits::checked_mul(limits::checked_mul(cfg.seq_len, cfg.micro_batch, "--micro-batch", "seq-len x micro-batch"),
                          cfg.grad_accum, "--grad-accum", "tokens per optimizer step", limits::kMaxTokensPerStep);
  cfg.steps = args.has("tokens") ? std::max<int64_t>(1, args.integer_in("tokens", 0, 1, INT64_MAX) / tokens_per_step)
                                 : args.positive("steps", 1000);
  cfg.schedule.kind = parse_schedule(args.str("schedule", "cosine"));
  cfg.schedule.max_lr = args.real("lr", 3e-4);
  cfg.schedule.min_lr = args.real("min-lr", cfg.schedule.max_lr / 10);
  cfg.schedule.warmup_steps = args.integer_in("warmup", cfg.steps / 100, 0, INT64_MAX);
  cfg.schedule.total_steps = cfg.steps;
  cfg.schedule.decay_fraction = args.real("decay-fraction", 0.2);
  check(cfg.schedule.max_lr > 0 && cfg.schedule.min_lr >= 0, "--lr", "learning rates must be positive");
  check(cfg.schedule.decay_fraction >= 0 && cfg.schedule.decay_fraction <= 1, "--decay-fraction", "must be in [0, 1]");
  cfg.adamw.weight_decay = args.real("weight-decay", 0.1);
  cfg.adamw.decay_all = args.flag("decay-all");
  cfg.adamw.beta1 = args.real("beta1", 0.9);
  cfg.adamw.beta2 = args.real("beta2", 0.95);
  check(cfg.adamw.weight_decay >= 0, "--weight-decay", "must be >= 0");
  check(cfg.adamw.beta1 >= 0 && cfg.adamw.beta1 < 1, "--beta1", "must be in [0, 1)");
  check(cfg.adamw.beta2 >= 0 && cfg.adamw.beta2 < 1, "--beta2", "must be in [0, 1)");
  cfg.clip = args.real("clip", 1.0);
  check(cfg.clip >= 0, "--clip", "must be >= 0 (0 = off)");
  cfg.seed = static_cast<uint64_t>(args.integer_in("seed", 1234, 0, INT64_MAX));
  cfg.log_interval = args.integer_in("log-interval", 10, 1, INT64_MAX);
  cfg.val_interval = args.integer_in("val-interval", 100, 0, INT64_MAX, "0 = only at the end");
  cfg.val_batches = args.integer_in("val-batches", 8, 1, limits::kMaxBatch);
  cfg.checkpoint_interval = args.integer_in("checkpoint-interval", 500, 0, INT64_MAX, "0 = only at the end");
  const ActivationPolicy policy = parse_activation_policy(args);
  cfg.recompute = policy.recompute;
  cfg.keep_activations = policy.keep;
  const GemmAlgos gemm = parse_gemm_algos(args);
  cfg.timed_gemms = gemm.timed;
  cfg.gemm_choices_file = gemm.choices_file;
  cfg.pack_documents = !args.flag("no-packing-mask");
  cfg.resume = args.flag("resume");
  cfg.overwrite = args.flag("overwrite");
  check(!(cfg.resume && cfg.overwrite), "--overwrite", "cannot be combined with --resume");
  cfg.keep_last = args.integer_in("keep-last", 0, 0, INT64_MAX, "0 = keep all");
  cfg.tensorboard_dir = args.str("tensorboard", "");
  const Placement placement = parse_placement(args);
  cfg.device = placement.device;
  cfg.matrix_dtype = placement.dtype;
  cfg.peak_tflops = args.real("peak-tflops", 0.0);
  cfg.profile_step = args.integer_in("profile-step", 0, 0, INT64_MAX, "0 = none");
  if (cfg.device == Device::CPU) check_training_fits(cfg);
  TrainResult r = train(cfg);
  std::printf("trained %lld steps: loss %.4f", static_cast<long long>(r.steps_done), r.last_loss);
  if (r.last_val_loss >= 0) std::printf(", validation loss %.4f", r.last_val_loss);
  std::printf("%s\n", r.interrupted ? " (interrupted; resume with --resume)" : "");
  // Interrupted: the checkpoint is saved, but the run is not done; 128 + signal, as a shell
  // reports a process the signal ended, so that `set -e` pipelines stop.
  return r.interrupted ? 128 + (r.stop_signal > 0 ? r.stop_signal : SIGINT) : 0;
}

}  // namespace mambalm::cli
