// Per-op time, for profiling: while on, every dispatched op (ops/dispatch*.cpp) waits for the
// device before and after itself and adds the elapsed wall time to its name's total. Off (the
// default) it costs one branch per op. The synchronisation makes a profiled run slower than a
// plain one; read the totals as shares, not as the plain run's time.
#pragma once
#include <cstdint>
#include <cstddef>
#include <map>
#include <string>

namespace mambalm::ops {

struct OpTime {
  int64_t calls = 0;
  double seconds = 0.0;
};

void set_op_profiling(bool on);
bool op_profiling();
// The totals since the last clear, by op name ("linear", "ssd_chunked_backward", ...).
const std::map<std::string, OpTime>& op_profile();
void clear_op_profile();
// The totals as "name xCALLS MS | ..." (milliseconds), largest first, at most max_ops of them.
std::string op_profile_summary(size_t max_ops = 40);

// The tensor-core GEMMs inside the CUDA linear ops, by shape, while profiling is on: each call's
// kernel time alone (CUDA events around the GEMM, not the op's rounding passes), booked under its
// key ("fwd 16384x10304x2048 bf16" = M x N x K and D's type) with its FLOPs (2 M N K), so that the
// summary can give each shape's rate. Cleared with the op totals.
void add_gemm_time(const std::string& key, double seconds, double flops);
// "key xCALLS MS (TFLOP/s) | ..." by time, largest first, at most max_shapes of them (no rate
// where no FLOPs were booked: the linear ops also book the gathering of dy's column blocks).
std::string gemm_profile_summary(size_t max_shapes = 24);

// Times one op call when profiling is on. `call` is the call's text, "name(args...)"; `gpu`
// whether it runs on the CUDA device (then the device is waited for).
class ScopedOpTimer {
 public:
  ScopedOpTimer(const char* call, bool gpu);
  ~ScopedOpTimer();
  ScopedOpTimer(const ScopedOpTimer&) = delete;
  ScopedOpTimer& operator=(const ScopedOpTimer&) = delete;

 private:
  const char* call_ = nullptr;  // null when profiling is off
  bool gpu_ = false;
  double start_ = 0.0;
};

}  // namespace mambalm::ops
