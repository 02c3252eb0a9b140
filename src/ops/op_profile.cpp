#include "ops/op_profile.h"

#include <chrono>
#include <cstring>

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
