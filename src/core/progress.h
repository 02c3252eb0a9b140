// A progress report for long jobs: on a terminal, one line redrawn in place with a bar, the
// amount done, the rate and the time left; otherwise (a log file, CI) a plain line at every
// 10% so logs stay short. Updates are throttled, so calling update() often is cheap.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace mambalm {

class Progress {
 public:
  // `total` units of work (0 = unknown). Amounts are shown as units * scale + unit_name,
  // for example bytes shown as MB: scale 1e-6, unit_name "MB".
  Progress(std::string label, int64_t total, double scale = 1e-6, std::string unit_name = "MB",
           std::FILE* out = stderr);
  // Reports that `done` units (cumulative) are finished.
  void update(int64_t done);
  // Draws the final state and ends the line. Without it (an error), the destructor only ends
  // a half-drawn terminal line.
  void finish();
  ~Progress();

  double elapsed_seconds() const;

 private:
  void draw(bool final);

  std::string label_;
  int64_t total_;
  double scale_;
  std::string unit_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  int64_t done_ = 0;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace mambalm
