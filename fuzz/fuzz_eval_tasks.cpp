// Eval task files of mambalm's own tasks (JSON Lines): multiple choice (--task mc: context or
// query or question, choices, gold) and loglikelihood (--task loglikelihood: context +
// continuation, or text). The first byte picks the reader. What a reader accepts must hold what
// the scorer relies on (at least 2 choices, gold an index into them, a non-empty continuation):
// a document that breaks it is a finding too (abort).
#include <cstdlib>

#include "eval/tasks/loglikelihood_task.h"
#include "eval/tasks/multiple_choice.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool multiple_choice = (data[0] & 1) == 0;
  const std::string path = mambalm::fuzz::write_input("task.jsonl", data + 1, size - 1);
  return mambalm::fuzz::expect_error_or_success([&] {
    if (multiple_choice) {
      for (const mambalm::eval::McDoc& d : mambalm::eval::read_mc_jsonl(path))
        if (d.choices.size() < 2 || d.gold < 0 || d.gold >= static_cast<int64_t>(d.choices.size())) std::abort();
    } else {
      for (const mambalm::eval::LoglikelihoodDoc& d : mambalm::eval::read_loglikelihood_jsonl(path))
        if (d.continuation.empty()) std::abort();
    }
  });
}
