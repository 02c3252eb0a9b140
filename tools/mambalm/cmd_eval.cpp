// mambalm eval: the study's evaluations on any model mambalm loads. Prints a table (task,
// metric, value, stderr, n) on stdout and, with --output, JSON with the model, the task's
// configuration, the seed, per-length/per-depth breakdowns and the state/KV memory held.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/runner.h"
#include "eval/tasks/phonebook.h"
#include "eval/tasks/synthetic.h"
#include "io/indexed_dataset.h"
#include "model/model.h"

namespace mambalm::cli {

namespace {

template <class T>
std::vector<T> parse_list(const Args& args, const std::string& name, std::vector<T> fallback) {
  if (!args.has(name)) return fallback;
  std::vector<T> out;
  std::stringstream ss(args.str(name));
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    double v = std::strtod(item.c_str(), &end);
    check(!item.empty() && *end == '\0', "--" + name, "'" + item + "' is not a number", "give a comma-separated list such as 1024,8192");
    out.push_back(static_cast<T>(v));
  }
  check(!out.empty(), "--" + name, "empty list");
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(f.good(), path, "cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

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
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0));
  const int64_t limit = args.integer("limit", -1);
  Model model = Model::load(model_dir);
  std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(args.str("tokenizer", model_dir));
  eval::ScorerOptions so;
  so.batch = args.integer("batch", 8);
  so.max_length = args.integer("max-length", 0);
  so.prefix_token = args.integer("prefix-token", -1);
  eval::Scorer scorer(model, tokenizer.get(), so);
  const Tokenizer& tok = *tokenizer;
  eval::TokenCounter count = [&](const std::string& s) { return static_cast<int64_t>(tok.encode(s).size()); };

  nlohmann::json config = {{"task", task}, {"seed", seed}, {"batch", so.batch}, {"max_length", scorer.max_length()}};
  std::vector<eval::GenerationSample> samples;
  const int64_t per_cell = args.integer("samples", -1);
  if (task == "phonebook") {
    eval::PhonebookOptions o;
    o.book_tokens = parse_list<int64_t>(args, "lengths", o.book_tokens);
    o.depths = parse_list<double>(args, "depths", o.depths);
    o.shots = args.integer("shots", 1);
    o.reversed = args.flag("reversed");
    o.seed = seed;
    if (per_cell > 0) o.samples_per_cell = per_cell;
    eval::NameLists names = eval::load_name_lists(args.str("names", "auto"));
    samples = eval::make_phonebook(o, names, count);
    config.update({{"lengths", o.book_tokens}, {"depths", o.depths}, {"shots", o.shots}, {"format", o.reversed ? "reversed" : "standard"},
                   {"samples_per_cell", o.samples_per_cell}, {"names", names.source},
                   {"names_count", {{"first", names.first.size()}, {"last", names.last.size()}}}});
  } else if (task == "mqar") {
    eval::MqarOptions o;
    o.pairs = parse_list<int64_t>(args, "lengths", o.pairs);
    o.queries = args.integer("queries", o.queries);
    o.seed = seed;
    if (per_cell > 0) o.samples_per_cell = per_cell;
    samples = eval::make_mqar(o);
    config.update({{"pairs", o.pairs}, {"queries", o.queries}, {"samples_per_cell", o.samples_per_cell}});
  } else if (task == "selective_copy") {
    eval::SelectiveCopyOptions o;
    o.lengths = parse_list<int64_t>(args, "lengths", o.lengths);
    o.letters = args.integer("letters", o.letters);
    o.seed = seed;
    if (per_cell > 0) o.samples_per_cell = per_cell;
    samples = eval::make_selective_copy(o);
    config.update({{"lengths", o.lengths}, {"letters", o.letters}, {"samples_per_cell", o.samples_per_cell}});
  } else if (task == "passkey") {
    eval::PasskeyOptions o;
    o.lengths = parse_list<int64_t>(args, "lengths", o.lengths);
    o.depths = parse_list<double>(args, "depths", o.depths);
    o.seed = seed;
    if (per_cell > 0) o.samples_per_cell = per_cell;
    samples = eval::make_passkey(o, count);
    config.update({{"lengths", o.lengths}, {"depths", o.depths}, {"samples_per_cell", o.samples_per_cell}});
  } else {
    check(task == "mc" || task == "perplexity", "--task", "unknown task '" + task + "'",
          "valid: phonebook, mqar, selective_copy, passkey, mc, perplexity");
    check(!args.has("write-train"), "--write-train", "only synthetic tasks write training data");
  }
  if (limit >= 0 && static_cast<int64_t>(samples.size()) > limit) samples.resize(static_cast<size_t>(limit));

  if (args.has("write-train")) {
    check(!samples.empty(), "--write-train", "no samples generated");
    io::IndexedDatasetWriter w(args.str("write-train"), model.config().vocab_size);
    for (const eval::GenerationSample& s : samples) w.add_document(tok.encode(s.prompt + " " + s.answer + "\n"));
    w.finish();
    std::printf("wrote %s.bin/.idx: %lld documents, %lld tokens\n", args.str("write-train").c_str(), static_cast<long long>(w.document_count()),
                static_cast<long long>(w.token_count()));
    return 0;
  }

  std::vector<eval::MetricRow> rows;
  nlohmann::json result;
  if (!samples.empty()) {
    Progress bar("eval " + task, static_cast<int64_t>(samples.size()), 1.0, "samples");
    result = eval::run_generation(scorer, task, samples, rows, [&](int64_t d) { bar.update(d); });
    bar.finish();
  } else if (task == "mc") {
    const std::string file = args.required("file");
    std::vector<eval::McDoc> docs = eval::read_mc_jsonl(file);
    eval::McOptions o;
    o.format = eval::parse_mc_format(args.str("format", "cloze"));
    o.shots = args.integer("shots", 0);
    o.seed = seed;
    std::vector<eval::McDoc> examples = o.shots > 0 ? eval::read_mc_jsonl(args.str("examples", file)) : std::vector<eval::McDoc>{};
    if (limit >= 0 && static_cast<int64_t>(docs.size()) > limit) docs.resize(static_cast<size_t>(limit));
    config.update({{"file", file}, {"format", args.str("format", "cloze")}, {"shots", o.shots}, {"examples", args.str("examples", file)}});
    Progress bar("eval mc", static_cast<int64_t>(docs.size()), 1.0, "docs");
    result = eval::run_multiple_choice(scorer, task, docs, examples, o, rows, [&](int64_t d) { bar.update(d); });
    bar.finish();
  } else {
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> token_docs;
    if (args.has("text")) {
      std::stringstream ss(args.str("text"));
      std::string path;
      while (std::getline(ss, path, ',')) texts.push_back(read_file(path));
      config["text"] = args.str("text");
    } else {
      io::IndexedDataset ds(args.required("data"));
      for (int64_t d = 0; d < ds.document_count() && (limit < 0 || d < limit); ++d) token_docs.push_back(ds.document_tokens(d));
      config["data"] = args.str("data");
    }
    if (limit >= 0 && static_cast<int64_t>(texts.size()) > limit) texts.resize(static_cast<size_t>(limit));
    Progress bar("eval perplexity", static_cast<int64_t>(texts.empty() ? token_docs.size() : texts.size()), 1.0, "docs");
    result = eval::run_perplexity(scorer, task, texts, token_docs, rows, [&](int64_t d) { bar.update(d); });
    bar.finish();
  }
  std::fputs(eval::format_table(rows).c_str(), stdout);
  const ModelConfig& cfg = model.config();
  result["model"] = {{"dir", model_dir},
                     {"model_type", cfg.model_type},
                     {"pattern", cfg.pattern},
                     {"parameters", model.parameter_count()},
                     {"tokenizer", tok.kind()},
                     {"state_bytes_per_sequence", cfg.state_bytes()},
                     {"kv_bytes_per_token", cfg.kv_bytes_per_token()}};
  result["config"] = config;
  if (args.has("output")) {
    std::ofstream f(args.str("output"));
    check(f.good(), args.str("output"), "cannot write the results file");
    f << result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    check(f.good(), args.str("output"), "write failed");
  }
  return 0;
}

}  // namespace mambalm::cli
