#include "study/data_phase.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/prepare.h"
#include "eval/task_table.h"
#include "eval/tasks/facts_mc.h"
#include "io/indexed_dataset.h"
#include "study/phase_marker.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train_sentencepiece.h"

namespace mambalm::study {

namespace fs = std::filesystem;

namespace {

fs::path data_dir(const StudyPlan& plan) { return fs::path(plan.out_dir) / "data"; }

// Every *.txt file under the corpus directory, sorted, so that the split never depends on the
// order the file system lists them in.
std::vector<std::string> corpus_files(const std::vector<std::string>& dirs) {
  std::vector<std::string> files;
  for (const std::string& dir : dirs) {
    check(fs::is_directory(dir), dir, "no corpus directory here", "run scripts/fetch-corpus.sh, or give --corpus DIR");
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".txt" && e.file_size() > 0) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  const std::string dir = dirs.empty() ? std::string("--corpus") : dirs.front();
  check(files.size() >= 4, dir, "holds " + std::to_string(files.size()) + " non-empty .txt files; the study needs at least 4",
        "run scripts/fetch-corpus.sh, or give --corpus DIR with more documents");
  return files;
}

data::PrepareSummary tokenize(const Tokenizer& tok, const std::vector<std::string>& files, const std::string& prefix) {
  data::PrepareOptions o;
  o.inputs = files;
  o.out_prefix = prefix;
  o.valid_fraction = 0;
  o.show_progress = false;
  return data::prepare_dataset(tok, o);
}

struct SyntheticSet {
  std::string task, prefix;
  int64_t documents = 0, tokens = 0;
};

// One retrieval task's training documents, about `target_tokens` of them: a small probe run
// measures tokens per sample, then the full set is drawn with a seed the evaluation never uses.
// `label` names the set (its files, its key in the data summary and results); `task` is the
// evaluation task that generates it.
SyntheticSet write_synthetic(const StudyPlan& plan, const std::string& label, const std::string& task,
                             const std::vector<int64_t>& lengths, const Tokenizer& tok,
                             int64_t vocab, int64_t target_tokens) {
  eval::TaskOptions o;
  o.seed = plan.seed + 7919;  // evaluation seeds are 1..3 (eval_phase.cpp): no prompt is shared
  o.lengths = lengths;
  if (task == "phonebook_depth") o.depths = std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0};
  o.samples_per_cell = 1;
  const std::string probe = (data_dir(plan) / ("probe-" + label)).string();
  const eval::TrainingDataSummary p = eval::write_task_training_data(task, o, tok, vocab, probe);
  fs::remove(probe + ".bin");
  fs::remove(probe + ".idx");
  const double per_round = static_cast<double>(std::max<int64_t>(1, p.tokens));
  o.samples_per_cell = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(target_tokens) / per_round)));
  SyntheticSet s{label, (data_dir(plan) / ("synthetic-" + label)).string()};
  const eval::TrainingDataSummary w = eval::write_task_training_data(task, o, tok, vocab, s.prefix);
  s.documents = w.documents;
  s.tokens = w.tokens;
  return s;
}

// train = corpus documents with the synthetic ones interleaved (round robin over the tasks),
// each synthetic document added as soon as the synthetic share falls below the fraction.
nlohmann::json write_mixture(const StudyPlan& plan, double f, int64_t vocab, const std::vector<SyntheticSet>& sets) {
  io::IndexedDataset corpus((data_dir(plan) / "corpus").string());
  std::vector<io::IndexedDataset> synth;
  for (const SyntheticSet& s : sets) synth.emplace_back(s.prefix);
  std::vector<int64_t> next(synth.size(), 0);
  io::IndexedDatasetWriter w(train_prefix(plan), vocab);
  int64_t corpus_tokens = 0, synthetic_tokens = 0, synthetic_docs = 0;
  size_t turn = 0;
  if (synth.empty()) f = 0;
  auto add_synthetic = [&]() {
    for (size_t tried = 0; tried < synth.size(); ++tried, turn = (turn + 1) % synth.size()) {
      if (next[turn] >= synth[turn].document_count()) continue;
      const std::vector<int32_t> doc = synth[turn].document_tokens(next[turn]++);
      w.add_document(doc);
      synthetic_tokens += static_cast<int64_t>(doc.size());
      ++synthetic_docs;
      turn = (turn + 1) % synth.size();
      return true;
    }
    return false;
  };
  for (int64_t d = 0; d < corpus.document_count(); ++d) {
    const std::vector<int32_t> doc = corpus.document_tokens(d);
    w.add_document(doc);
    corpus_tokens += static_cast<int64_t>(doc.size());
    while (static_cast<double>(synthetic_tokens) < f * static_cast<double>(corpus_tokens + synthetic_tokens) && add_synthetic()) {
    }
  }
  w.finish();
  const double share = static_cast<double>(synthetic_tokens) / static_cast<double>(std::max<int64_t>(1, corpus_tokens + synthetic_tokens));
  return {{"documents", w.document_count()}, {"tokens", w.token_count()},     {"corpus_tokens", corpus_tokens},
          {"synthetic_tokens", synthetic_tokens}, {"synthetic_documents", synthetic_docs}, {"synthetic_share", share}};
}

}  // namespace

std::string tokenizer_path(const StudyPlan& plan) { return (data_dir(plan) / "tokenizer.model").string(); }
std::string train_prefix(const StudyPlan& plan) { return (data_dir(plan) / "train").string(); }
std::string heldout_prefix(const StudyPlan& plan) { return (data_dir(plan) / "heldout").string(); }
std::string heldout_text_dir(const StudyPlan& plan) { return (data_dir(plan) / "heldout").string(); }
int64_t padded_vocab(int64_t tokenizer_vocab) { return (tokenizer_vocab + 63) / 64 * 64; }

nlohmann::json run_data_phase(const StudyPlan& plan) {
  const std::string fp = fingerprint_of(plan.data_settings());
  if (phase_done(plan.out_dir, "data", fp)) {
    std::printf("data: done (%s)\n", marker_path(plan.out_dir, "data").c_str());
    return done_summary(plan.out_dir, "data");
  }
  std::string dirs;
  for (const std::string& d : plan.corpus_dirs) dirs += (dirs.empty() ? "" : ", ") + d;
  std::printf("data: corpus %s\n", dirs.c_str());
  std::fflush(stdout);
  const std::vector<std::string> files = corpus_files(plan.corpus_dirs);
  std::vector<std::string> train_files, heldout_files;
  for (size_t i = 0; i < files.size(); ++i)
    (static_cast<int64_t>(i) % plan.heldout_every == plan.heldout_every / 2 ? heldout_files : train_files).push_back(files[i]);
  if (heldout_files.empty()) {  // a small corpus: hold out its middle file
    heldout_files.push_back(train_files[train_files.size() / 2]);
    train_files.erase(train_files.begin() + static_cast<std::ptrdiff_t>(train_files.size() / 2));
  }
  // A fresh start: nothing of an interrupted earlier attempt is reused.
  fs::remove_all(data_dir(plan));
  fs::create_directories(heldout_text_dir(plan));
  int64_t heldout_bytes = 0;
  std::vector<std::string> heldout_copies;
  for (size_t i = 0; i < heldout_files.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%04zu.txt", i);
    const fs::path dst = fs::path(heldout_text_dir(plan)) / name;
    fs::copy_file(heldout_files[i], dst);
    heldout_bytes += static_cast<int64_t>(fs::file_size(dst));
    heldout_copies.push_back(dst.string());
  }

  SentencePieceTrainOptions so;
  so.inputs = train_files;
  so.vocab_size = plan.vocab_size;
  so.out = tokenizer_path(plan);
  so.max_sentences = plan.tokenizer_sentences;
  train_sentencepiece(so);
  std::unique_ptr<Tokenizer> tok = open_tokenizer(tokenizer_path(plan));
  const int64_t vocab = padded_vocab(tok->vocab_size());

  const data::PrepareSummary corpus = tokenize(*tok, train_files, (data_dir(plan) / "corpus").string());
  const data::PrepareSummary heldout = tokenize(*tok, heldout_copies, heldout_prefix(plan));
  std::printf("data: tokenizer %lld pieces; corpus %lld files, %lld tokens; held out %lld files, %lld tokens\n",
              static_cast<long long>(tok->vocab_size()), static_cast<long long>(corpus.files), static_cast<long long>(corpus.tokens),
              static_cast<long long>(heldout.files), static_cast<long long>(heldout.tokens));
  std::fflush(stdout);

  // Shares of the whole mix: f from the retrieval tasks, mc from multiple-choice questions.
  const double f = plan.synthetic_fraction, mc = plan.mc_fraction;
  check(f >= 0 && mc >= 0 && f + mc < 1, "--synthetic-fraction", "the synthetic shares must be >= 0 and leave room for the corpus");
  const double per_corpus_token = static_cast<double>(corpus.tokens) / (1.0 - f - mc);
  const int64_t retrieval_target = static_cast<int64_t>(per_corpus_token * f);
  const int64_t mc_target = static_cast<int64_t>(per_corpus_token * mc);
  std::vector<SyntheticSet> sets;
  if (retrieval_target > 0) {
    // mambalm's own Phonebook format (by depth), which the evaluation below also asks
    sets.push_back(write_synthetic(plan, "phonebook", "phonebook_depth", plan.train_phonebook_tokens, *tok, vocab, retrieval_target / 3));
    sets.push_back(write_synthetic(plan, "mqar", "mqar", plan.train_mqar_pairs, *tok, vocab, retrieval_target / 3));
    sets.push_back(write_synthetic(plan, "selective_copy", "selective_copy", plan.train_copy_items, *tok, vocab, retrieval_target / 3));
  }
  if (mc_target > 0) {
    // The evaluation's questions in its own k-shot shape, cloze and letter format alternating,
    // drawn with a seed the evaluation never uses (it uses 4).
    eval::FactsMcOptions o;
    o.documents = 4096;
    o.facts = plan.mc_facts;
    o.seed = plan.seed + 7919;
    SyntheticSet s{"facts_mc", (data_dir(plan) / "synthetic-facts_mc").string()};
    const eval::FactsMcTrainingSummary w = eval::write_facts_mc_training_data(o, plan.mc_shots, mc_target, *tok, vocab, s.prefix);
    s.documents = w.documents;
    s.tokens = w.tokens;
    sets.push_back(s);
  }
  nlohmann::json mix = write_mixture(plan, f + mc, vocab, sets);
  nlohmann::json synthetic = nlohmann::json::object();
  for (const SyntheticSet& s : sets) synthetic[s.task] = {{"documents", s.documents}, {"tokens", s.tokens}};
  const nlohmann::json summary = {
      {"corpus_dirs", plan.corpus_dirs},
      {"tokenizer", {{"path", tokenizer_path(plan)}, {"pieces", tok->vocab_size()}, {"embedding_rows", vocab}}},
      {"corpus", {{"files", corpus.files}, {"bytes", corpus.text_bytes}, {"tokens", corpus.tokens}}},
      {"heldout", {{"files", heldout.files}, {"bytes", heldout_bytes}, {"tokens", heldout.tokens}}},
      {"synthetic", synthetic},
      {"synthetic_fraction", f},
      {"mc_fraction", mc},
      {"train", mix}};
  std::printf("data: training mix %lld tokens, %.1f%% synthetic\n", static_cast<long long>(mix["tokens"].get<int64_t>()),
              100.0 * mix["synthetic_share"].get<double>());
  mark_done(plan.out_dir, "data", fp, summary);
  return summary;
}

}  // namespace mambalm::study
