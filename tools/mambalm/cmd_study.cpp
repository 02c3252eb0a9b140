// mambalm study: the Mamba study's four comparisons reproduced at a small scale, resumable
// phase by phase (src/study/study.h, docs/study.md).
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "core/limits.h"
#include "study/study.h"
#include "study/train_phase.h"

namespace mambalm::cli {

int cmd_study(int argc, char** argv) {
  Args args("study", "--scale tiny|small|base --out DIR [--device cpu|cuda] [--phase all|data|train|eval|speed|report] [--families F,...] [options]",
            {{"scale", "S", "tiny (~0.4M non-embedding parameters, CPU minutes), small (~26M, one GPU) or base (~190M)"},
             {"out", "DIR", "study directory: data/, train/, eval/, speed/ and results.json, report.md, report.html"},
             {"device", "D", "cpu (default) or cuda: where training, evaluation and the speed phase run (bf16 weights on cuda)"},
             {"phase", "P", "all (default) or one of data, train, eval, speed, report (earlier phases must be done)"},
             {"families", "F,...", "train, evaluate and measure only these (default all: transformer, mamba, mamba2, hybrid); "
                                   "a phase's marker is written once all four are done (docs/study.md)"},
             {"corpus", "DIR,...", "plain-text corpora, one document per .txt file (default $MAMBALM_CACHE/corpus and corpus-extra)"},
             {"steps", "N", "training steps per model (default: the scale's); shortens a test run"},
             {"eval-samples", "N", "synthetic-task samples per (length, depth) cell (default: the scale's)"},
             {"mc-questions", "N", "multiple-choice questions per format (default: the scale's)"},
             {"synthetic-fraction", "F", "share of training tokens from the retrieval tasks, in [0, 0.9] (default 0.2)"},
             {"mc-fraction", "F", "share of training tokens from multiple-choice questions, in [0, 0.5] (default 0.05)"},
             {"speed-contexts", "L,...", "context lengths of the speed phase (default: the scale's)"},
             {"seed", "S", "initialisation, data order and synthetic-data seed (default 1234)"},
             {"charts", "FILE", "Chart.js UMD build to inline (default $MAMBALM_CACHE/study/chart.umd.min.js)"}});
  if (!args.parse(argc, argv)) return 0;
  study::StudyPlan plan = study::plan_for_scale(args.required("scale"));
  plan.out_dir = std::filesystem::absolute(args.required("out")).lexically_normal().string();
  const std::string device = args.str("device", "cpu");
  check(device == "cpu" || device == "cuda", "--device", "unknown device '" + device + "'", "valid: cpu, cuda");
  plan.device = device == "cuda" ? Device::CUDA : Device::CPU;
  if (args.has("families")) plan.only_families = study::parse_families(split_list(args.str("families")));
  plan.corpus_dirs = args.has("corpus") ? split_list(args.str("corpus")) : study::default_corpus_dirs();
  for (std::string& d : plan.corpus_dirs) d = std::filesystem::absolute(d).lexically_normal().string();
  if (args.has("steps")) {
    plan.steps = args.integer_in("steps", plan.steps, 1, int64_t{1} << 40);
    plan.warmup = std::min(plan.warmup, plan.steps / 10);
  }
  if (args.has("eval-samples")) plan.eval_samples = args.integer_in("eval-samples", plan.eval_samples, 1, 100000);
  if (args.has("mc-questions")) plan.eval_mc_questions = args.integer_in("mc-questions", plan.eval_mc_questions, 1, 100000);
  plan.synthetic_fraction = args.real("synthetic-fraction", plan.synthetic_fraction);
  check(plan.synthetic_fraction >= 0 && plan.synthetic_fraction <= 0.9, "--synthetic-fraction", "must be in [0, 0.9]");
  plan.mc_fraction = args.real("mc-fraction", plan.mc_fraction);
  check(plan.mc_fraction >= 0 && plan.mc_fraction <= 0.5, "--mc-fraction", "must be in [0, 0.5]");
  check(plan.synthetic_fraction + plan.mc_fraction <= 0.9, "--mc-fraction", "with --synthetic-fraction it leaves under 10% for the corpus");
  if (args.has("speed-contexts")) plan.speed_contexts = args.sizes("speed-contexts");
  plan.seed = static_cast<uint64_t>(args.integer_in("seed", static_cast<int64_t>(plan.seed), 0, INT64_MAX));
  const std::string charts = args.str("charts", study::default_chart_library());
  try {
    study::run_study(plan, args.str("phase", "all"), charts);
  } catch (const study::StudyInterrupted& e) {
    std::fprintf(stderr, "mambalm: %s\n", e.what());
    return 128 + (e.signal() > 0 ? e.signal() : SIGINT);
  }
  return 0;
}

}  // namespace mambalm::cli
