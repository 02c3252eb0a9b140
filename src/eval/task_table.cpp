// The task table: for each name, how its inputs are built from TaskOptions and which runner
// scores them. Synthetic tasks share one path (generate samples, cut to the limit, greedy
// generation with exact match); mc, loglikelihood and perplexity read their documents from files.
#include "eval/task_table.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "eval/tasks/facts_mc.h"
#include "eval/tasks/loglikelihood_task.h"
#include "eval/tasks/multiple_choice.h"
#include "eval/generation_metrics.h"
#include "eval/tasks/phonebook.h"
#include "eval/tasks/ruler.h"
#include "eval/tasks/study_phonebook.h"
#include "eval/tasks/synthetic.h"
#include "io/atomic_file.h"
#include "io/indexed_dataset.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::eval {

namespace {

// A synthetic task's samples, its settings recorded into `config`.
using SampleMaker = std::function<std::vector<GenerationSample>(const TaskOptions&, const TokenCounter&, nlohmann::json& config)>;
// A task that scores documents: metrics JSON, table rows appended, settings into `config`.
using DocumentRunner = nlohmann::json (*)(Scorer&, const std::string& task, const TaskOptions&, nlohmann::json& config,
                                          std::vector<MetricRow>& rows, bool show_progress);

struct Entry {
  TaskInfo info;
  SampleMaker make_samples = nullptr;  // synthetic tasks
  DocumentRunner run = nullptr;        // the others
  std::vector<std::string> metrics = {};  // synthetic tasks scored by run_scored_generation; empty = exact match
};

template <class T>
void set_if(const std::optional<T>& value, T& field) {
  if (value) field = *value;
}

// What every synthetic task shares: its list of lengths (recorded under `key`), the samples
// per cell and the seed.
template <class Options>
Options synthetic_options(const TaskOptions& o, std::vector<int64_t> Options::*lengths, const char* key, nlohmann::json& config) {
  Options t;
  set_if(o.lengths, t.*lengths);
  set_if(o.samples_per_cell, t.samples_per_cell);
  t.seed = o.seed;
  config.update({{key, t.*lengths}, {"samples_per_cell", t.samples_per_cell}});
  return t;
}

// `phonebook_depth`: mambalm's own Phonebook (eval/tasks/phonebook.h), the target by depth.
std::vector<GenerationSample> phonebook_depth(const TaskOptions& o, const TokenCounter& count, nlohmann::json& config) {
  PhonebookOptions p = synthetic_options(o, &PhonebookOptions::book_tokens, "lengths", config);
  set_if(o.depths, p.depths);
  p.shots = o.shots.value_or(1);
  p.reversed = o.reversed;
  const NameLists names = load_name_lists(o.names);
  config.update({{"depths", p.depths}, {"shots", p.shots}, {"format", p.reversed ? "reversed" : "standard"}, {"names", names.source},
                 {"names_count", {{"first", names.first.size()}, {"last", names.last.size()}}}});
  return make_phonebook(p, names, count);
}

// `phonebook`: the study's Phonebook (eval/tasks/study_phonebook.h).
std::vector<GenerationSample> phonebook_study(const TaskOptions& o, const TokenCounter& count, nlohmann::json& config) {
  StudyPhonebookOptions p;
  p.lengths = o.lengths.value_or(study_phonebook_lengths(o.longest));
  set_if(o.samples_per_cell, p.samples_per_cell);
  set_if(o.shots, p.shots);
  p.reversed = o.reversed;
  p.seed = o.seed;
  const NameLists names = load_name_lists(o.names);
  config.update({{"lengths", p.lengths}, {"samples_per_cell", p.samples_per_cell}, {"shots", p.shots},
                 {"format", p.reversed ? "reversed" : "standard"}, {"names", names.source},
                 {"names_count", {{"first", names.first.size()}, {"last", names.last.size()}}},
                 {"source", "Jelassi et al. 2024 (pretrained_exps/data_utils.py PhoneBookDataset), as the Mamba study"}});
  return make_study_phonebook(p, names, count);
}

// One of RULER's synthetic tasks (eval/tasks/ruler.h).
SampleMaker ruler_maker(const RulerTaskSpec& spec) {
  return [&spec](const TaskOptions& o, const TokenCounter& count, nlohmann::json& config) {
    RulerOptions r;
    r.lengths = o.lengths.value_or(ruler_lengths(o.longest));
    set_if(o.samples_per_cell, r.samples_per_cell);
    r.seed = o.seed;
    r.haystack = o.haystack;
    RulerSamples s = make_ruler(spec, r, count);
    config.update({{"lengths", r.lengths}, {"samples_per_cell", r.samples_per_cell}, {"haystack", s.haystack_source},
                   {"tokens_to_generate", spec.tokens_to_generate}, {"metric", "string_match_all"},
                   {"source", "RULER (Hsieh et al. 2024), NVIDIA/RULER scripts/synthetic.yaml"}});
    return std::move(s.samples);
  };
}

std::vector<GenerationSample> mqar(const TaskOptions& o, const TokenCounter&, nlohmann::json& config) {
  MqarOptions m = synthetic_options(o, &MqarOptions::pairs, "pairs", config);
  set_if(o.queries, m.queries);
  config["queries"] = m.queries;
  return make_mqar(m);
}

std::vector<GenerationSample> selective_copy(const TaskOptions& o, const TokenCounter&, nlohmann::json& config) {
  SelectiveCopyOptions s = synthetic_options(o, &SelectiveCopyOptions::lengths, "lengths", config);
  set_if(o.letters, s.letters);
  config["letters"] = s.letters;
  return make_selective_copy(s);
}

std::vector<GenerationSample> passkey(const TaskOptions& o, const TokenCounter& count, nlohmann::json& config) {
  PasskeyOptions p = synthetic_options(o, &PasskeyOptions::lengths, "lengths", config);
  set_if(o.depths, p.depths);
  config["depths"] = p.depths;
  return make_passkey(p, count);
}

// Calls `work` with a progress callback: a report on stderr named `label`, or none.
template <class Work>
nlohmann::json with_progress(bool show, const std::string& label, size_t total, const char* unit, Work work) {
  if (!show) return work(ProgressFn{});
  Progress bar(label, static_cast<int64_t>(total), 1.0, unit);
  nlohmann::json result = work(ProgressFn([&](int64_t done) { bar.update(done); }));
  bar.finish();
  return result;
}

nlohmann::json multiple_choice(Scorer& scorer, const std::string& task, const TaskOptions& o, nlohmann::json& config,
                               std::vector<MetricRow>& rows, bool show_progress) {
  check(!o.file.empty(), task, "no task file given", "--file JSONL: {context|query, choices, gold} per line");
  std::vector<McDoc> docs = read_mc_jsonl(o.file);
  McOptions m;
  m.format = parse_mc_format(o.format);
  m.shots = o.shots.value_or(0);
  m.seed = o.seed;
  const std::string examples_file = o.examples.empty() ? o.file : o.examples;
  const std::vector<McDoc> examples = m.shots > 0 ? read_mc_jsonl(examples_file) : std::vector<McDoc>{};
  if (o.limit >= 0 && static_cast<int64_t>(docs.size()) > o.limit) docs.resize(static_cast<size_t>(o.limit));
  config.update({{"file", o.file}, {"format", o.format}, {"shots", m.shots}, {"examples", examples_file}});
  return with_progress(show_progress, "eval mc", docs.size(), "docs", [&](const ProgressFn& progress) {
    return run_multiple_choice(scorer, task, docs, examples, m, rows, progress);
  });
}

// Generated multiple-choice questions (eval/tasks/facts_mc.h): samples_per_cell questions,
// lengths[0] facts per passage (default 4), shots solved questions from the same set (default 5).
nlohmann::json facts_mc(Scorer& scorer, const std::string& task, const TaskOptions& o, nlohmann::json& config,
                        std::vector<MetricRow>& rows, bool show_progress) {
  FactsMcOptions f;
  set_if(o.samples_per_cell, f.documents);
  if (o.lengths && !o.lengths->empty()) f.facts = o.lengths->front();
  f.seed = o.seed;
  McOptions m;
  m.format = parse_mc_format(o.format);
  m.shots = o.shots.value_or(5);
  m.seed = o.seed;
  std::vector<McDoc> docs = make_facts_mc(f, m.format);
  // lm-eval draws shots from the task's own documents, never the one asked; a set too small
  // for that is extended with further questions of the same seed (the first ones are `docs`).
  FactsMcOptions pool = f;
  pool.documents = std::max(f.documents, m.shots + 1);
  const std::vector<McDoc> examples = make_facts_mc(pool, m.format);
  if (o.limit >= 0 && static_cast<int64_t>(docs.size()) > o.limit) docs.resize(static_cast<size_t>(o.limit));
  config.update({{"format", o.format}, {"shots", m.shots}, {"questions", f.documents}, {"facts", f.facts}, {"chance", 1.0 / static_cast<double>(f.facts)}});
  return with_progress(show_progress, "eval facts_mc", docs.size(), "docs", [&](const ProgressFn& progress) {
    return run_multiple_choice(scorer, task, docs, examples, m, rows, progress);
  });
}

// Generation from JSON Lines (eval/generation_metrics.h): SQuAD exact match and F1, contains.
nlohmann::json generate(Scorer& scorer, const std::string& task, const TaskOptions& o, nlohmann::json& config,
                        std::vector<MetricRow>& rows, bool show_progress) {
  check(!o.file.empty(), task, "no task file given", "--file JSONL: {prompt, answers} per line");
  const std::vector<std::string> until = o.until.value_or(std::vector<std::string>{"\n"});
  const int64_t max_gen = o.max_gen_tokens.value_or(32);
  std::vector<GenerationSample> samples = read_generation_jsonl(o.file, until, max_gen);
  if (o.limit >= 0 && static_cast<int64_t>(samples.size()) > o.limit) samples.resize(static_cast<size_t>(o.limit));
  config.update({{"file", o.file}, {"until", until}, {"max_gen_tokens", max_gen}, {"metrics", {"exact_match", "f1", "contains"}}});
  return with_progress(show_progress, "eval generate", samples.size(), "samples", [&](const ProgressFn& progress) {
    return run_scored_generation(scorer, task, samples, {"exact_match", "f1", "contains"}, rows, progress);
  });
}

nlohmann::json loglikelihood(Scorer& scorer, const std::string& task, const TaskOptions& o, nlohmann::json& config,
                             std::vector<MetricRow>& rows, bool show_progress) {
  check(!o.file.empty(), task, "no task file given", "--file JSONL: {context, continuation} or {text} per line");
  std::vector<LoglikelihoodDoc> docs = read_loglikelihood_jsonl(o.file);
  if (o.limit >= 0 && static_cast<int64_t>(docs.size()) > o.limit) docs.resize(static_cast<size_t>(o.limit));
  config["file"] = o.file;
  return with_progress(show_progress, "eval loglikelihood", docs.size(), "docs",
                       [&](const ProgressFn& progress) { return run_loglikelihood(scorer, task, docs, rows, progress); });
}

std::string join_commas(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

nlohmann::json perplexity(Scorer& scorer, const std::string& task, const TaskOptions& o, nlohmann::json& config,
                          std::vector<MetricRow>& rows, bool show_progress) {
  const auto within_limit = [&](size_t n) { return o.limit < 0 || static_cast<int64_t>(n) < o.limit; };
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> token_docs;
  if (!o.text_files.empty()) {
    for (const std::string& path : o.text_files)
      if (within_limit(texts.size())) texts.push_back(io::read_text_file(path));
    config["text"] = join_commas(o.text_files);
  } else {
    check(!o.data.empty(), task, "no text files or indexed dataset given", "--text FILE,... or --data PREFIX");
    io::IndexedDataset ds(o.data);
    for (int64_t d = 0; d < ds.document_count() && within_limit(token_docs.size()); ++d) token_docs.push_back(ds.document_tokens(d));
    config["data"] = o.data;
  }
  return with_progress(show_progress, "eval perplexity", texts.empty() ? token_docs.size() : texts.size(), "docs",
                       [&](const ProgressFn& progress) { return run_perplexity(scorer, task, texts, token_docs, rows, progress); });
}

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = [] {
    std::vector<Entry> e = {
      {{"phonebook", "the Mamba study's Phonebook: Jelassi et al.'s format, by book length, --reversed, --shots", true}, phonebook_study},
      {{"phonebook_depth", "look up a phone number in a book of names (mambalm's own format, by depth; the study pipeline trains on it)", true}, phonebook_depth},
      {{"mqar", "multi-query associative recall (Arora et al. 2023)", true}, mqar},
      {{"selective_copy", "copy the letters scattered among filler (Gu & Dao 2023)", true}, selective_copy},
      {{"passkey", "repeat a number hidden in filler text (Mohtashami & Jaggi 2023)", true}, passkey},
      {{"mc", "multiple choice from JSON Lines, scored as lm-evaluation-harness does", false}, nullptr, multiple_choice},
      {{"facts_mc", "multiple choice on facts stated in a short passage (generated; --format cloze or letter)", false}, nullptr, facts_mc},
      {{"loglikelihood", "continuation given context from JSON Lines (LAMBADA-style acc and perplexity)", false}, nullptr, loglikelihood},
      {{"generate", "generation from JSON Lines with stop strings: SQuAD exact match and F1, contains-match", false}, nullptr, generate},
      {{"perplexity", "token, word and byte perplexity of text files or a token dataset", false}, nullptr, perplexity},
    };
    for (const RulerTaskSpec& spec : ruler_tasks())
      e.push_back({{spec.name, "RULER " + spec.name.substr(6) + " (Hsieh et al. 2024), string_match_all by length", true},
                   ruler_maker(spec), nullptr, {"string_match_all"}});
    return e;
  }();
  return entries;
}

const Entry& find_entry(const std::string& name) {
  std::string valid;
  for (const Entry& e : table()) {
    if (e.info.name == name) return e;
    valid += (valid.empty() ? "" : ", ") + e.info.name;
  }
  fail("--task", "unknown task '" + name + "'", "valid: " + valid);
}

// The samples of a synthetic task, cut to the limit.
std::vector<GenerationSample> synthetic_samples(const Entry& e, const TaskOptions& o, const Tokenizer& tokenizer, nlohmann::json& config) {
  check(e.make_samples != nullptr, e.info.name, "only synthetic tasks generate samples and training data");
  check(!o.samples_per_cell || *o.samples_per_cell > 0, e.info.name, "samples per cell must be positive");
  const TokenCounter count = [&](const std::string& s) { return static_cast<int64_t>(tokenizer.encode(s).size()); };
  std::vector<GenerationSample> samples = e.make_samples(o, count, config);
  if (o.limit >= 0 && static_cast<int64_t>(samples.size()) > o.limit) samples.resize(static_cast<size_t>(o.limit));
  return samples;
}

}  // namespace

const std::vector<TaskInfo>& tasks() {
  static const std::vector<TaskInfo> infos = [] {
    std::vector<TaskInfo> out;
    for (const Entry& e : table()) out.push_back(e.info);
    return out;
  }();
  return infos;
}

const TaskInfo& find_task(const std::string& name) { return find_entry(name).info; }

TaskResult run_task(const std::string& name, Scorer& scorer, const TaskOptions& task_options, bool show_progress) {
  const Entry& e = find_entry(name);
  TaskOptions options = task_options;
  if (options.longest <= 0) options.longest = scorer.max_length();
  TaskResult r;
  nlohmann::json config = {{"task", name}, {"seed", options.seed}, {"batch", scorer.options().batch}, {"max_length", scorer.max_length()}};
  if (e.make_samples) {
    const std::vector<GenerationSample> samples = synthetic_samples(e, options, scorer.tokenizer(), config);
    r.json = with_progress(show_progress, "eval " + name, samples.size(), "samples", [&](const ProgressFn& progress) {
      return e.metrics.empty() ? run_generation(scorer, name, samples, r.rows, progress)
                               : run_scored_generation(scorer, name, samples, e.metrics, r.rows, progress);
    });
  } else {
    r.json = e.run(scorer, name, options, config, r.rows, show_progress);
  }
  r.json["config"] = config;
  return r;
}

TrainingDataSummary write_task_training_data(const std::string& name, const TaskOptions& options, const Tokenizer& tokenizer,
                                             int64_t vocab_size, const std::string& prefix) {
  nlohmann::json config;  // not recorded anywhere: the dataset is the output
  const std::vector<GenerationSample> samples = synthetic_samples(find_entry(name), options, tokenizer, config);
  check(!samples.empty(), prefix, "no samples generated");
  io::IndexedDatasetWriter w(prefix, vocab_size);
  // Each document ends with the end-of-document token (where the vocabulary has it), as prepare
  // ends the corpus's: a model
  // learns to stop after the answer even where the tokenizer cannot write the "\n" the
  // evaluation stops at (SentencePiece's default normalisation turns it into a space).
  for (const GenerationSample& s : samples) {
    std::vector<int32_t> ids = tokenizer.encode(s.prompt + " " + s.answer + "\n");
    if (tokenizer.eos_id() >= 0 && tokenizer.eos_id() < vocab_size) ids.push_back(tokenizer.eos_id());
    w.add_document(ids);
  }
  w.finish();
  return {w.document_count(), w.token_count()};
}

nlohmann::json model_record(const Model& model, const Tokenizer& tokenizer, const std::string& dir) {
  const ModelConfig& cfg = model.config();
  return {{"dir", dir},
          {"model_type", cfg.model_type},
          {"pattern", cfg.pattern},
          {"parameters", model.parameter_count()},
          {"tokenizer", tokenizer.kind()},
          {"state_bytes_per_sequence", cfg.state_bytes()},
          {"kv_bytes_per_token", cfg.kv_bytes_per_token()}};
}

}  // namespace mambalm::eval
