// mambalm eval: the study's evaluations on any model mambalm loads. Prints a table (task,
// metric, value, stderr, n) on stdout and, with --output, JSON with the model, the task's
// configuration, the seed, per-length/per-depth breakdowns and the state/KV memory held.
// With --lm-eval-samples it scores the requests of lm-evaluation-harness's --log_samples files
// instead of a task of its own (docs/eval.md).
#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "config/hf_config.h"
#include "core/error.h"
#include "core/limits.h"
#include "device_options.h"
#include "eval/bos_policy.h"
#include "eval/generation_metrics.h"
#include "eval/lm_eval_scoring.h"
#include "eval/task_table.h"
#include "io/atomic_file.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

namespace {
// The results JSON, written atomically and checked (a full disk is an error, never a partial or
// empty file that exits 0).
void write_results(const std::string& path, const nlohmann::json& result) {
  io::write_file_atomically(path, result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}
}  // namespace

int cmd_eval(int argc, char** argv) {
  Args args("eval",
            "--model DIR (--task NAME [task options] | --lm-eval-samples FILE,...) [--limit N --seed S --batch B] [--device cuda] [--output results.json]",
            {{"model", "DIR", "model directory"},
             {"tokenizer", "PATH", "tokenizer (default: the model directory's; 'bytes' for byte-level models)"},
             {"task", "NAME", "phonebook (the study's), phonebook_depth, mqar, selective_copy, passkey, ruler_niah_single_1..3, ruler_niah_multikey_1..3, "
                             "ruler_niah_multivalue, ruler_niah_multiquery, ruler_vt, ruler_cwe, ruler_fwe, mc (multiple choice), facts_mc, "
                             "loglikelihood, generate, perplexity"},
             {"lm-eval-samples", "FILE,...", "score the requests of lm-eval --log_samples files (samples_<task>_<date>.jsonl)"},
             {"target-delimiter", "S", "lm-eval samples: the text before each choice in a continuation (default ' ')"},
             {"add-bos", "auto|yes|no", "BOS before every context, document and prompt (default auto: as the tokenizer's files say)"},
             {"lengths", "L,...", "phonebook(_depth)/passkey/ruler_*: lengths in tokens; mqar: pairs; selective_copy: items; facts_mc: facts"},
             {"depths", "D,...", "phonebook_depth/passkey: target depths in [0, 1]"},
             {"samples", "N", "synthetic tasks: samples per (length, depth) cell; facts_mc: questions"},
             {"shots", "K", "phonebook / phonebook_depth / mc / facts_mc: few-shot examples (default 2 / 1 / 0 / 5)"},
             {"reversed", "", "phonebook(_depth): the question (and phonebook_depth's instructions and examples) before the book"},
             {"names", "WHICH", "phonebook names: auto (fetched lists if present), built-in, or a directory"},
             {"queries", "N", "mqar: queries per prompt (default 4)"},
             {"letters", "N", "selective_copy: letters to copy (default 8)"},
             {"haystack", "WHICH", "ruler_* essay haystack: auto (the corpus's moby-dick), noise, or a text file / directory"},
             {"until", "S,...", "generate: stop strings (default \\n; escapes \\n \\t \\, \\\\)"},
             {"max-gen-tokens", "N", "generate: tokens to generate at most (default 32)"},
             {"file", "JSONL", "mc: {context|query, choices, gold} per line; loglikelihood: {context, continuation} or {text}; "
                               "generate: {prompt, answers} per line"},
             {"examples", "JSONL", "mc: few-shot example file (default: the task file)"},
             {"format", "F", "mc, facts_mc: cloze (default) or letter"},
             {"text", "FILE,...", "perplexity: text files, one document each"},
             {"data", "PREFIX", "perplexity: Megatron indexed token dataset"},
             {"limit", "N", "evaluate at most N samples / documents"},
             {"seed", "S", "task generation and few-shot seed (default 0)"},
             {"batch", "B", "sequences per forward call when scoring (default 8)"},
             {"max-length", "T", "tokens the model may see (default: config's, unbounded for SSMs)"},
             {"prefix-token", "ID", "token standing for an empty context (default BOS, else EOS)"},
             {"write-train", "PREFIX", "synthetic tasks: write prompt+answer documents as a Megatron dataset and exit"},
             {"output", "FILE", "write results as JSON"}},
            placement_options_with_kv());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  const std::string model_dir = args.required("model");
  const std::vector<std::string> sample_files = split_list(args.str("lm-eval-samples"));
  check(sample_files.empty() != !args.has("task"), args.where(), "give either --task NAME or --lm-eval-samples FILE,...");
  const std::string task = sample_files.empty() ? args.required("task") : "";
  eval::TaskOptions o;
  // Every number is range-checked here, before a file or the model is read.
  o.seed = args.seed("seed", 0);
  o.limit = args.has("limit") ? args.integer_in("limit", 0, 1, INT64_MAX) : -1;
  if (args.has("lengths")) o.lengths = args.sizes("lengths", "", limits::kMaxSequence);
  if (args.has("depths")) o.depths = args.reals("depths", {}, 0.0, 1.0);
  if (args.has("samples")) o.samples_per_cell = args.integer_in("samples", 0, 1, int64_t{1} << 20);
  if (args.has("shots")) o.shots = args.integer_in("shots", 0, 0, 1024);
  o.reversed = args.flag("reversed");
  o.names = args.str("names", "auto");
  if (args.has("queries")) o.queries = args.integer_in("queries", 0, 1, 26 * 26 * 26, "mqar has at most 17576 distinct keys");
  if (args.has("letters")) o.letters = args.integer_in("letters", 0, 1, limits::kMaxSequence);
  o.haystack = args.str("haystack", "auto");
  if (args.has("until")) o.until = eval::parse_stop_list(args.str("until"));
  if (args.has("max-gen-tokens")) o.max_gen_tokens = args.integer_in("max-gen-tokens", 0, 1, limits::kMaxSequence);
  eval::ScorerOptions so;
  so.batch = args.integer_in("batch", 8, 1, int64_t{1} << 20);
  so.max_length = args.integer_in("max-length", 0, 0, limits::kMaxSequence, "0 = the config's (unbounded for SSMs)");
  so.prefix_token = args.integer_in("prefix-token", -1, -1, limits::kMaxTokenId, "a token id; -1 = BOS, else EOS");
  limits::checked_mul(so.batch, std::max<int64_t>(so.max_length, 1), "--batch", "tokens of a batch (batch x max-length)",
                      limits::kMaxTokensPerStep);
  o.file = args.str("file");
  o.examples = args.str("examples");
  o.format = args.str("format", "cloze");
  o.text_files = split_list(args.str("text"));
  o.data = args.str("data");
  if (!task.empty()) {
    const eval::TaskInfo& info = eval::find_task(task);
    check(info.synthetic || !args.has("write-train"), "--write-train", "only synthetic tasks write training data");
  }
  // Read every samples file before loading the model: a malformed file fails at once.
  std::vector<eval::LmEvalSamplesFile> samples;
  for (const std::string& path : sample_files) samples.push_back(eval::read_lm_eval_samples(path));

  // A batch of --batch sequences of --max-length tokens (2048 when unbounded); the scorer caps
  // one batch's logits at so.logits_budget_bytes.
  const int64_t eval_tokens = so.max_length > 0 ? so.max_length : 2048;
  const int64_t vocab = load_model_config(model_dir).vocab_size;
  const int64_t logit_rows = std::min(so.batch * eval_tokens, std::max<int64_t>(1, so.logits_budget_bytes / (4 * vocab)));
  // On CUDA the scorer runs the forward there (eval/scoring.h).
  Model model = load_placed(model_dir, placement, InferenceWork{so.batch, eval_tokens, 0, logit_rows}, "mambalm eval");
  const std::string tokenizer_path = args.str("tokenizer", model_dir);
  std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(tokenizer_path);
  const eval::BosPolicy bos = eval::parse_bos_policy(args.str("add-bos", "auto"), tokenizer_path);
  so.add_bos = bos.add;
  eval::Scorer scorer(model, tokenizer.get(), so);
  const nlohmann::json scorer_record = {{"add_bos", bos.add}, {"add_bos_source", bos.source}, {"max_length", scorer.max_length()},
                                        {"batch", so.batch},
                                        {"device", std::string(placement.device == Device::CUDA ? "cuda" : "cpu")},
                                        {"dtype", std::string(dtype_name(placement.dtype))},
                                        {"kv_dtype", dtype_name(model.kv_dtype())}};
  if (!samples.empty()) {
    std::vector<eval::MetricRow> rows;
    nlohmann::json result = {{"model", eval::model_record(model, *tokenizer, model_dir)}, {"scorer", scorer_record}};
    eval::LmEvalScoreOptions lo;
    lo.target_delimiter = args.str("target-delimiter", " ");
    for (eval::LmEvalSamplesFile& f : samples) {
      if (o.limit >= 0 && static_cast<int64_t>(f.samples.size()) > o.limit) f.samples.resize(static_cast<size_t>(o.limit));
      result["tasks"][f.task] = eval::score_lm_eval_samples(scorer, f, lo, rows);
    }
    std::fputs(eval::format_table(rows).c_str(), stdout);
    if (args.has("output")) {
      write_results(args.str("output"), result);
    }
    return 0;
  }
  if (args.has("write-train")) {
    const std::string prefix = args.str("write-train");
    const eval::TrainingDataSummary w = eval::write_task_training_data(task, o, *tokenizer, model.config().vocab_size, prefix);
    std::printf("wrote %s.bin/.idx: %lld documents, %lld tokens\n", prefix.c_str(), static_cast<long long>(w.documents),
                static_cast<long long>(w.tokens));
    return 0;
  }
  eval::TaskResult r = eval::run_task(task, scorer, o);
  std::fputs(eval::format_table(r.rows).c_str(), stdout);
  nlohmann::json& result = r.json;
  result["model"] = eval::model_record(model, *tokenizer, model_dir);
  result["scorer"] = scorer_record;
  if (args.has("output")) {
    write_results(args.str("output"), result);
  }
  return 0;
}

}  // namespace mambalm::cli
