// mambalm eval: the study's evaluations on any model mambalm loads. Prints a table (task,
// metric, value, stderr, n) on stdout and, with --output, JSON with the model, the task's
// configuration, the seed, per-length/per-depth breakdowns and the state/KV memory held.
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "eval/task_table.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

int cmd_eval(int argc, char** argv) {
  Args args("eval", "--model DIR --task NAME [task options] [--limit N --seed S --batch B] [--output results.json]",
            {{"model", "DIR", "model directory"},
             {"tokenizer", "PATH", "tokenizer (default: the model directory's; 'bytes' for byte-level models)"},
             {"task", "NAME", "phonebook, mqar, selective_copy, passkey, mc (multiple choice), perplexity"},
             {"lengths", "L,...", "phonebook/passkey: lengths in tokens; mqar: pairs; selective_copy: items"},
             {"depths", "D,...", "phonebook/passkey: target depths in [0, 1]"},
             {"samples", "N", "synthetic tasks: samples per (length, depth) cell"},
             {"shots", "K", "phonebook / mc: few-shot examples (default 1 / 0)"},
             {"reversed", "", "phonebook: instructions, examples and the name before the book"},
             {"names", "WHICH", "phonebook names: auto (fetched lists if present), built-in, or a directory"},
             {"queries", "N", "mqar: queries per prompt (default 4)"},
             {"letters", "N", "selective_copy: letters to copy (default 8)"},
             {"file", "JSONL", "mc: task file ({context|query, choices, gold} per line)"},
             {"examples", "JSONL", "mc: few-shot example file (default: the task file)"},
             {"format", "F", "mc: cloze (default) or letter"},
             {"text", "FILE,...", "perplexity: text files, one document each"},
             {"data", "PREFIX", "perplexity: Megatron indexed token dataset"},
             {"limit", "N", "evaluate at most N samples / documents"},
             {"seed", "S", "task generation and few-shot seed (default 0)"},
             {"batch", "B", "sequences per forward call when scoring (default 8)"},
             {"max-length", "T", "tokens the model may see (default: config's, unbounded for SSMs)"},
             {"prefix-token", "ID", "token standing for an empty context (default BOS, else EOS)"},
             {"write-train", "PREFIX", "synthetic tasks: write prompt+answer documents as a Megatron dataset and exit"},
             {"output", "FILE", "write results as JSON"}});
  if (!args.parse(argc, argv)) return 0;
  const std::string model_dir = args.required("model"), task = args.required("task");
  eval::TaskOptions o;
  o.seed = static_cast<uint64_t>(args.integer("seed", 0));
  o.limit = args.integer("limit", -1);
  if (args.has("lengths")) o.lengths = args.sizes("lengths");
  if (args.has("depths")) o.depths = args.reals("depths");
  if (args.has("samples")) o.samples_per_cell = args.positive("samples", 0);
  if (args.has("shots")) o.shots = args.integer("shots", 0);
  o.reversed = args.flag("reversed");
  o.names = args.str("names", "auto");
  if (args.has("queries")) o.queries = args.integer("queries", 0);
  if (args.has("letters")) o.letters = args.integer("letters", 0);
  o.file = args.str("file");
  o.examples = args.str("examples");
  o.format = args.str("format", "cloze");
  o.text_files = split_list(args.str("text"));
  o.data = args.str("data");
  const eval::TaskInfo& info = eval::find_task(task);
  check(info.synthetic || !args.has("write-train"), "--write-train", "only synthetic tasks write training data");

  Model model = Model::load(model_dir);
  std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(args.str("tokenizer", model_dir));
  eval::ScorerOptions so;
  so.batch = args.integer("batch", 8);
  so.max_length = args.integer("max-length", 0);
  so.prefix_token = args.integer("prefix-token", -1);
  eval::Scorer scorer(model, tokenizer.get(), so);
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
  if (args.has("output")) {
    std::ofstream f(args.str("output"));
    check(f.good(), args.str("output"), "cannot write the results file");
    f << result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    check(f.good(), args.str("output"), "write failed");
  }
  return 0;
}

}  // namespace mambalm::cli
