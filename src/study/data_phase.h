// The study's data phase, under DIR/data/:
//   tokenizer.model        SentencePiece BPE trained on the training files only
//   heldout/*.txt          every Nth corpus file (sorted order), never trained on: perplexity
//                          and bits per byte are measured on these texts
//   heldout.{bin,idx}      the same texts tokenized (the trainer's validation loss)
//   corpus.{bin,idx}       the other corpus files tokenized
//   synthetic-<task>.*     phonebook lookups, multi-query associative recall and selective
//                          copying as prompt + answer documents (eval/task_table.h), so that
//                          small models can learn the formats the evaluation asks for
//   train.{bin,idx}        corpus and synthetic documents interleaved, the synthetic share of
//                          tokens equal to the plan's fraction
#pragma once
#include <nlohmann/json.hpp>

#include "study/study_plan.h"

namespace mambalm::study {

// Runs the phase (or skips it when done with the same inputs); returns its summary (file and
// token counts, the synthetic share).
nlohmann::json run_data_phase(const StudyPlan& plan);

// Paths inside DIR/data.
std::string tokenizer_path(const StudyPlan& plan);
std::string train_prefix(const StudyPlan& plan);
std::string heldout_prefix(const StudyPlan& plan);
std::string heldout_text_dir(const StudyPlan& plan);

// The embedding rows of the study's models: the tokenizer's vocabulary padded to 64, as `init` does.
int64_t padded_vocab(int64_t tokenizer_vocab);

}  // namespace mambalm::study
