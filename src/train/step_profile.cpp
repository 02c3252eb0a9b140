#include "train/step_profile.h"

#include <chrono>

#include "core/device.h"
#include "model/model.h"
#include "ops/op_profile.h"

namespace mambalm {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void wait_for_device(Model& model) {
  if (model.device() == Device::CUDA) cuda_synchronize();
}

}  // namespace

StepProfile::StepProfile(bool on, Model& model) : on_(on), model_(&model) {
  if (!on_) return;
  wait_for_device(model);
  model.profile().clear();
  model.set_profiling(true);
  ops::clear_op_profile();
  ops::set_op_profiling(true);
  last_ = now_s();
}

StepProfile::~StepProfile() {
  if (!on_) return;
  model_->set_profiling(false);
  ops::set_op_profiling(false);
}

void StepProfile::lap(const char* part) {
  if (!on_) return;
  wait_for_device(*model_);
  const double now = now_s();
  parts_.emplace_back(part, 1e3 * (now - last_));
  last_ = now;
}

void StepProfile::report(std::FILE* out, int64_t step) {
  if (!on_) return;
  model_->set_profiling(false);
  ops::set_op_profiling(false);
  double total = 0;
  for (const auto& [part, ms] : parts_) total += ms;
  std::fprintf(out, "profile of step %lld, synchronised at every part, stage and op (ms): total %.1f |",
               static_cast<long long>(step), total);
  for (const auto& [part, ms] : parts_) std::fprintf(out, " %s %.1f |", part.c_str(), ms);
  std::fprintf(out, "\n  stages of forward + backward (ms):");
  for (const auto& [stage, sec] : model_->profile()) std::fprintf(out, " %s %.1f |", stage.c_str(), 1e3 * sec);
  std::fprintf(out, "\n  ops (ms):%s\n", ops::op_profile_summary().c_str());
  const std::string gemms = ops::gemm_profile_summary();
  if (!gemms.empty()) std::fprintf(out, "  GEMMs by shape (rows x columns x summed, kernel ms):%s\n", gemms.c_str());
  std::fflush(out);
  on_ = false;
}

}  // namespace mambalm
