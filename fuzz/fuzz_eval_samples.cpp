// Eval task files: lm-evaluation-harness sample logs (JSON Lines).
#include "eval/lm_eval_samples.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mambalm::fuzz::write_input("samples_task_2024.jsonl", data, size);
  return mambalm::fuzz::expect_error_or_success([&] { (void)mambalm::eval::read_lm_eval_samples(path).samples.size(); });
}
