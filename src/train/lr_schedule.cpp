#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mambalm {

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const int64_t after = total_steps - warmup_steps;  // steps after warm-up
  if (kind == ScheduleKind::Constant || after <= 1) return max_lr;
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(after - 1), 0.0, 1.0);
  if (kind == ScheduleKind::Cosine) return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
  // WSD: hold max_lr, then decay linearly to min_lr over the last decay_fraction of the steps.
  const double decay_start = 1.0 - decay_fraction;
  if (progress <= decay_start || decay_fraction <= 0) return max_lr;
  return max_lr + (min_lr - max_lr) * (progress - decay_start) / decay_fraction;
}

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "wsd") return ScheduleKind::Wsd;
  if (name == "constant") return ScheduleKind::Constant;
  fail("--schedule", "unknown schedule '" + name + "'", "valid: cosine, wsd, constant");
}

std::string schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Wsd: return "wsd";
    case ScheduleKind::Constant: return "constant";
  }
  return "?";
}

}  // namespace mambalm
