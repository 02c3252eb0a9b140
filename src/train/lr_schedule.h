// Learning-rate schedules: linear warm-up, then cosine decay or WSD (warm-up, stable, decay).
#pragma once
#include <cstdint>
#include <string>

namespace mambalm {

enum class ScheduleKind { Cosine, Wsd, Constant };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double max_lr = 3e-4;
  double min_lr = 3e-5;        // floor reached at the end of the decay
  int64_t warmup_steps = 0;    // linear from max_lr / warmup_steps up to max_lr
  int64_t total_steps = 1;     // the last step is total_steps - 1
  double decay_fraction = 0.2; // WSD: share of the steps spent in the final decay

  // Learning rate for 0-based `step`.
  double at(int64_t step) const;
};

ScheduleKind parse_schedule(const std::string& name);  // "cosine", "wsd", "constant"
std::string schedule_name(ScheduleKind kind);

}  // namespace mambalm
