// What one `mambalm study` run does, fixed before any phase starts: the scale's model presets,
// tokenizer size, training schedule, synthetic-data fraction, evaluation lengths and speed
// contexts. Every phase reads its settings from here, and each phase's done-marker records a
// fingerprint of the settings it used (study/phase_marker.h), so a rerun with other settings
// is refused instead of silently mixing results.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace mambalm::study {

// The four families, in the order every table lists them (the Transformer is the baseline).
const std::vector<std::string>& families();

struct StudyPlan {
  std::string scale;       // tiny, small or base
  std::string preset_size;  // the presets' size suffix: tiny, 26m (small) or base
  std::string out_dir;     // absolute
  std::vector<std::string> corpus_dirs;  // plain-text files, one document each (scripts/fetch-corpus.sh,
                                         // scripts/fetch-study-data.sh)
  Device device = Device::CPU;
  // --families: the train, eval and speed phases run these alone (empty: all four). In no
  // fingerprint: a family's results do not depend on which others ran in the same call.
  std::vector<std::string> only_families;

  // Data.
  int64_t vocab_size = 1024;            // SentencePiece BPE pieces
  int64_t tokenizer_sentences = 50000;  // lines sampled to train it
  int64_t heldout_every = 50;           // every Nth corpus file (sorted order) is held out
  int64_t heldout_eval_docs = 8;        // held-out documents scored for perplexity / bits per byte
  double synthetic_fraction = 0.2;      // share of training-set tokens from the retrieval tasks
  double mc_fraction = 0.05;            // share of training-set tokens from facts_mc questions (both formats)
  std::vector<int64_t> train_phonebook_tokens;  // book lengths in the training mix
  std::vector<int64_t> train_mqar_pairs;
  std::vector<int64_t> train_copy_items;

  // Training (the same for all four families).
  int64_t seq_len = 256;
  int64_t micro_batch = 8;
  int64_t steps = 300;
  double lr = 2e-3;
  int64_t warmup = 30;
  uint64_t seed = 1234;  // initialisation, data order and synthetic data
  int64_t checkpoint_interval = 50;

  // Evaluation (lengths beyond seq_len test extrapolation).
  std::vector<int64_t> eval_phonebook_tokens;
  std::vector<double> eval_phonebook_depths;
  std::vector<int64_t> eval_mqar_pairs;
  std::vector<int64_t> eval_copy_items;
  int64_t eval_samples = 8;  // samples per (length, depth) cell
  // Multiple choice (eval/tasks/facts_mc.h), scored in the cloze and the letter format.
  int64_t eval_mc_questions = 32;  // per format
  int64_t mc_shots = 3;            // solved questions before each one (evaluation and training documents)
  int64_t mc_facts = 4;            // facts per passage = choices per question (chance 1/4)

  // Speed.
  std::vector<int64_t> speed_contexts;
  int64_t speed_gen_tokens = 32;

  // Whether this run trains, evaluates and measures `family` (--families).
  bool runs(const std::string& family) const;
  // The preset of a family at this scale ("hybrid-tiny", "hybrid-26m", ...).
  std::string preset(const std::string& family) const;
  // The settings one phase depends on, for its fingerprint.
  nlohmann::json data_settings() const;
  nlohmann::json train_settings() const;
  nlohmann::json eval_settings() const;
  nlohmann::json speed_settings() const;
  nlohmann::json to_json() const;
};

// The families named in a --families list (comma-separated), in the study's order; throws
// naming an unknown one and listing the valid ones.
std::vector<std::string> parse_families(const std::vector<std::string>& names);

// "a, b, c": family names for messages.
std::string join_names(const std::vector<std::string>& names);

// The defaults of a scale; throws listing the valid scales.
StudyPlan plan_for_scale(const std::string& scale);

// $MAMBALM_CACHE, else ~/.cache/mambalm (the setup scripts' cache).
std::string default_cache_dir();
// The default corpus: CACHE/corpus (scripts/fetch-corpus.sh) and, when it has been fetched,
// CACHE/corpus-extra (scripts/fetch-study-data.sh).
std::vector<std::string> default_corpus_dirs();
// Where scripts/fetch-study-data.sh puts the charting library (chart.umd.min.js).
std::string default_chart_library();

}  // namespace mambalm::study
