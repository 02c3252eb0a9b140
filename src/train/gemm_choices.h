// The GEMM algorithms of a training run, kept in RUN/gemm_choices.txt (ops::gemm_choices): the
// CUDA GEMMs time cuBLASLt's candidates per shape, which can choose differently in another
// process, and different algorithms sum in different orders. So the run saves its choices with
// every checkpoint and a resume pins them: the same algorithms, the same bits as the
// uninterrupted run.
#pragma once
#include <string>

#include "ops/gemm_choice.h"

namespace mambalm {

// RUN/gemm_choices.txt.
std::string gemm_choices_path(const std::string& run_dir);

// The file's text (docs/file-formats.md): a header line, the device line, then one line per
// shape, "KEY HEX RANK/OF", HEX the algorithm's 8 words as 128 hex digits. "" when there are no
// choices.
std::string format_gemm_choices(const ops::GemmChoices& choices);
// Parses that text into `out`; returns "" or what is wrong with it (the first bad line).
std::string parse_gemm_choices(const std::string& text, ops::GemmChoices& out);

// Pins the run's saved choices, when it has them. A file made on another GPU or cuBLASLt version
// is not used, with a warning on stderr (when `say`): the run goes on with choices made afresh,
// and its losses may then differ from the uninterrupted run's in the last bits.
void pin_saved_gemm_choices(const std::string& run_dir, bool say);

// Reads the choices in `path` (--gemm-algos FILE) and pins them when training runs `on_gpu`; a
// clear error when the file is malformed or was made on another GPU or cuBLASLt version.
void pin_gemm_choices_file(const std::string& path, bool on_gpu);

// Writes the choices made so far when they differ from what this process wrote last (new shapes
// get planned at the first step, and at the first validation).
class GemmChoicesWriter {
 public:
  explicit GemmChoicesWriter(std::string run_dir) : path_(gemm_choices_path(run_dir)) {}
  void save();

 private:
  std::string path_;
  std::string written_;
};

}  // namespace mambalm
