// mambalm train: train a model directory on a Megatron indexed dataset.
#include <algorithm>
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "core/error.h"
#include "train/trainer.h"

namespace mambalm::cli {

int cmd_train(int argc, char** argv) {
  Args args("train", "--model DIR --data PREFIX --out RUN_DIR [options] [--device cuda [--dtype bf16|f32]]",
            {{"model", "DIR", "initial model directory (from 'mambalm init' or an HF model)"},
             {"data", "PREFIX", "dataset from 'mambalm prepare': PREFIX_train (+ PREFIX_valid), or PREFIX"},
             {"valid-data", "PREFIX", "validation dataset (default PREFIX_valid when it exists)"},
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
             {"decay-all", "", "also decay norms, biases, A_log, D, dt_bias and embeddings"},
             {"beta1", "B", "AdamW beta1 (default 0.9)"},
             {"beta2", "B", "AdamW beta2 (default 0.95)"},
             {"clip", "C", "global gradient-norm clip (default 1.0; 0 = off)"},
             {"seed", "S", "data order seed (default 1234)"},
             {"log-interval", "N", "steps between progress lines (default 10)"},
             {"val-interval", "N", "steps between validations (default 100)"},
             {"val-batches", "N", "micro-batches per validation (default 8)"},
             {"checkpoint-interval", "N", "steps between checkpoints (default 500)"},
             {"recompute", "", "keep only layer inputs for backward; recompute the rest (less memory)"},
             {"no-packing-mask", "", "let packed documents see each other (no mask, no state reset)"},
             {"resume", "", "continue from RUN_DIR/checkpoints/latest"},
             {"peak-tflops", "R", "the device's matrix rate for MFU (default: measured at start)"}},
            placement_options());
  if (!args.parse(argc, argv)) return 0;
  TrainConfig cfg;
  cfg.model_dir = args.required("model");
  cfg.data = args.required("data");
  cfg.valid_data = args.str("valid-data");
  cfg.run_dir = args.required("out");
  cfg.seq_len = args.positive("seq-len", 256);
  cfg.micro_batch = args.positive("micro-batch", 8);
  cfg.grad_accum = args.positive("grad-accum", 1);
  cfg.steps = args.has("tokens") ? std::max<int64_t>(1, args.integer("tokens", 0) / (cfg.seq_len * cfg.micro_batch * cfg.grad_accum))
                                 : args.positive("steps", 1000);
  cfg.schedule.kind = parse_schedule(args.str("schedule", "cosine"));
  cfg.schedule.max_lr = args.real("lr", 3e-4);
  cfg.schedule.min_lr = args.real("min-lr", cfg.schedule.max_lr / 10);
  cfg.schedule.warmup_steps = args.integer("warmup", cfg.steps / 100);
  cfg.schedule.total_steps = cfg.steps;
  cfg.schedule.decay_fraction = args.real("decay-fraction", 0.2);
  check(cfg.schedule.max_lr > 0 && cfg.schedule.min_lr >= 0, "--lr", "learning rates must be positive");
  cfg.adamw.weight_decay = args.real("weight-decay", 0.1);
  cfg.adamw.decay_all = args.flag("decay-all");
  cfg.adamw.beta1 = args.real("beta1", 0.9);
  cfg.adamw.beta2 = args.real("beta2", 0.95);
  cfg.clip = args.real("clip", 1.0);
  cfg.seed = static_cast<uint64_t>(args.integer("seed", 1234));
  cfg.log_interval = std::max<int64_t>(1, args.integer("log-interval", 10));
  cfg.val_interval = args.integer("val-interval", 100);
  cfg.val_batches = args.integer("val-batches", 8);
  cfg.checkpoint_interval = args.integer("checkpoint-interval", 500);
  cfg.recompute = args.flag("recompute");
  cfg.pack_documents = !args.flag("no-packing-mask");
  cfg.resume = args.flag("resume");
  const Placement placement = parse_placement(args);
  cfg.device = placement.device;
  cfg.matrix_dtype = placement.dtype;
  cfg.peak_tflops = args.real("peak-tflops", 0.0);
  TrainResult r = train(cfg);
  std::printf("trained %lld steps: loss %.4f", static_cast<long long>(r.steps_done), r.last_loss);
  if (r.last_val_loss >= 0) std::printf(", validation loss %.4f", r.last_val_loss);
  std::printf("%s\n", r.interrupted ? " (interrupted; resume with --resume)" : "");
  return 0;
}

}  // namespace mambalm::cli
