// The conformance harness shared by the case files: random CPU inputs, device copies, the
// normalised-MSE score, timing, and the result table. Each cases_*.cpp registers its groups with
// MAMBALM_CONFORMANCE_CASES; main.cpp runs every group in registration order.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include "core/device.h"
#include "core/tensor.h"

namespace conformance {

using namespace mambalm;

extern std::mt19937_64 rng;

Tensor rand_cpu(const Shape& s, float lo, float hi);  // uniform [lo, hi), F32
// Document ids I32 [B, T] of packed rows: each row cut into 1-5 documents at random places.
Tensor random_documents(int64_t B, int64_t T);
inline Tensor up(const Tensor& t) { return to_device(t, Device::CUDA); }
inline Tensor down(const Tensor& t) { return to_device(t, Device::CPU); }
inline Tensor poisoned(const Shape& s, DType d = DType::F32) { return empty_cuda_poisoned(s, d); }

// ||gpu - cpu||^2 / ||cpu||^2 in double (F32 tensors); NaN if the GPU wrote a non-finite value.
double nmse(const Tensor& gpu, const Tensor& cpu);
// Median wall time of `reps` synchronised calls.
double time_ms(const std::function<void()>& f, int reps = 5);
// Adds a row to the table (and prints it as it goes).
void record(const std::string& op, const std::string& shape, const std::string& what, double err,
            double limit, double gpu_ms, double cpu_ms);
// Runs cpu() then gpu() once each (cpu timed), then times gpu() again as a median.
struct Timed { double cpu_ms, gpu_ms; };
Timed run_pair(const std::function<void()>& cpu, const std::function<void()>& gpu, bool retime = true);

// Thresholds (normalised MSE), docs/numerics.md "CUDA vs CPU".
constexpr double kExact = 0.0;
constexpr double kElementwise = 1e-12;
constexpr double kNorm = 1e-12;
constexpr double kGemm = 1e-10;
constexpr double kScan = 1e-10;
constexpr double kAttention = 1e-10;

// A group of cases; `quick` asks for the short variant (smaller T, no long prefill).
struct CaseGroup {
  const char* name;
  void (*run)(bool quick);
};
int register_cases(const char* name, void (*run)(bool quick));
#define MAMBALM_CONFORMANCE_CASES(name, fn) \
  static const int conformance_registered_##fn = ::conformance::register_cases(name, fn)

}  // namespace conformance
