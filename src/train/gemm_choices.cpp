#include "train/gemm_choices.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "ops/ops.h"

namespace mambalm {

std::string gemm_choices_path(const std::string& run_dir) {
  return (std::filesystem::path(run_dir) / "gemm_choices.txt").string();
}

void pin_saved_gemm_choices(const std::string& run_dir, bool say) {
  const std::string path = gemm_choices_path(run_dir);
  if (!std::filesystem::exists(path)) return;
  const std::string why = ops::pin_gemm_choices(io::read_text_file(path));
  if (!why.empty() && say)
    std::fprintf(stderr,
                 "warning: %s not used (%s); the GEMM algorithms are chosen again, so the losses may differ from the "
                 "uninterrupted run's in the last bits\n",
                 path.c_str(), why.c_str());
}

void pin_gemm_choices_file(const std::string& path) {
  const std::string why = ops::pin_gemm_choices(io::read_text_file(path));
  check(why.empty(), path, "cannot be used: " + why, "give a gemm_choices.txt made on this GPU and cuBLASLt, or --gemm-algos timed");
}

void GemmChoicesWriter::save() {
  std::string text = ops::gemm_choices();
  if (text.empty() || text == written_) return;
  io::write_file_atomically(path_, text);
  written_ = std::move(text);
}

}  // namespace mambalm
