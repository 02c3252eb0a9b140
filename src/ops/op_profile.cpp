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

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

void set_op_profiling(bool on) { g_on = on; }
bool op_profiling() { return g_on; }
const std::map<std::string, OpTime>& op_profile() { return g_totals; }
void clear_op_profile() { g_totals.clear(); }

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
