#include "ops/op_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "core/device.h"

namespace mambalm::ops {

namespace {

bool g_on = false;
std::map<std::string, OpTime> g_totals;
struct GemmTotal {
  int64_t calls = 0;
  double seconds = 0.0, flops = 0.0;
};
std::map<std::string, GemmTotal> g_gemms;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

void set_op_profiling(bool on) { g_on = on; }
bool op_profiling() { return g_on; }
const std::map<std::string, OpTime>& op_profile() { return g_totals; }
void clear_op_profile() {
  g_totals.clear();
  g_gemms.clear();
}

void add_gemm_time(const std::string& key, double seconds, double flops) {
  GemmTotal& t = g_gemms[key];
  t.calls += 1;
  t.seconds += seconds;
  t.flops += flops;
}

std::string gemm_profile_summary(size_t max_shapes) {
  std::vector<std::pair<double, std::string>> rows;  // (seconds, its text)
  char text[64];
  for (const auto& [key, t] : g_gemms) {
    if (t.flops > 0 && t.seconds > 0)
      std::snprintf(text, sizeof text, " %.1f (%.0f TFLOP/s) |", 1e3 * t.seconds, t.flops / t.seconds / 1e12);
    else
      std::snprintf(text, sizeof text, " %.1f |", 1e3 * t.seconds);
    rows.emplace_back(t.seconds, " " + key + " x" + std::to_string(t.calls) + text);
  }
  std::sort(rows.rbegin(), rows.rend());
  std::string out;
  for (size_t i = 0; i < rows.size() && i < max_shapes; ++i) out += rows[i].second;
  return out;
}

std::string op_profile_summary(size_t max_ops) {
  std::vector<std::pair<double, std::string>> ops;  // (ms, "name xN")
  for (const auto& [name, t] : g_totals) ops.emplace_back(1e3 * t.seconds, name + " x" + std::to_string(t.calls));
  std::sort(ops.rbegin(), ops.rend());
  std::string out;
  char ms[32];
  for (size_t i = 0; i < ops.size() && i < max_ops; ++i) {
    std::snprintf(ms, sizeof ms, " %.1f |", ops[i].first);
    out += " " + ops[i].second + ms;
  }
  return out;
}

ScopedOpTimer::ScopedOpTimer(const char* call, bool gpu) {
  if (!g_on) return;
  gpu_ = gpu;
  if (gpu_) cuda_synchronize();  // the work queued before this op is not its time
  call_ = call;
  start_ = now_s();
}

ScopedOpTimer::~ScopedOpTimer() {
  if (!call_) return;
  if (gpu_) cuda_synchronize();
  const char* paren = std::strchr(call_, '(');
  OpTime& t = g_totals[paren ? std::string(call_, paren) : std::string(call_)];
  t.calls += 1;
  t.seconds += now_s() - start_;
}

}  // namespace mambalm::ops
