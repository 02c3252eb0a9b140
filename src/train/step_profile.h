// One training step taken apart (`mambalm train --profile-step N`): the host's wall time for
// each part of the step (zeroing the gradients, filling the batch, forward + backward, the
// gradient norm, the optimizer), the model's stages and every op's device time. Each part, stage
// and op waits for the device before and after itself, so the profiled step is slower than a
// plain one: compare the parts with each other, and their sum with the plain steps' time in
// metrics.jsonl (the difference is time the device waited for the host).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace mambalm {

class Model;

class StepProfile {
 public:
  // Off: every call is a no-op. On: turns on the model's stage timing and the op profile.
  StepProfile(bool on, Model& model);
  ~StepProfile();
  StepProfile(const StepProfile&) = delete;
  StepProfile& operator=(const StepProfile&) = delete;

  // Waits for the device and books the wall time since the previous lap (or the start) to part.
  void lap(const char* part);
  // Prints the three tables to out (and ends the profiling).
  void report(std::FILE* out, int64_t step);

 private:
  bool on_ = false;
  Model* model_ = nullptr;
  double last_ = 0.0;
  std::vector<std::pair<std::string, double>> parts_;  // (part, ms) in step order
};

}  // namespace mambalm
