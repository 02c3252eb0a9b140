// Definitions of harness.h plus the table and the group registry main.cpp reads.
#include "harness.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "harness_table.h"

namespace conformance {

std::mt19937_64 rng;

Tensor rand_cpu(const Shape& s, float lo, float hi) {
  Tensor t = Tensor::empty(s);
  std::uniform_real_distribution<float> u(lo, hi);
  float* p = t.f32();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = u(rng);
  return t;
}

Tensor random_documents(int64_t B, int64_t T) {
  Tensor seq = Tensor::empty({B, T}, DType::I32);
  std::uniform_int_distribution<int64_t> where(1, std::max<int64_t>(1, T - 1));
  std::uniform_int_distribution<int> count(0, 4);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> cuts;
    for (int c = count(rng); c > 0; --c) cuts.push_back(where(rng));
    for (int64_t t = 0; t < T; ++t) {
      int32_t doc = 0;
      for (int64_t cut : cuts) doc += t >= cut;
      seq.data<int32_t>()[b * T + t] = doc;
    }
  }
  return seq;
}

double nmse(const Tensor& gpu, const Tensor& cpu) {
  Tensor g = down(gpu);
  const float* a = g.f32();
  const float* b = cpu.f32();
  double num = 0.0, den = 0.0;
  for (int64_t i = 0, n = cpu.numel(); i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * b[i];
    if (!std::isfinite(a[i])) return NAN;
  }
  return den > 0 ? num / den : (num == 0 ? 0.0 : INFINITY);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Median wall time of `reps` synchronised calls (after the checked call has warmed up).
double time_ms(const std::function<void()>& f, int reps) {
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) {
    cuda_synchronize();
    auto t0 = std::chrono::steady_clock::now();
    f();
    cuda_synchronize();
    v.push_back(ms_since(t0));
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}


void record(const std::string& op, const std::string& shape, const std::string& what, double err,
            double limit, double gpu_ms, double cpu_ms) {
  std::vector<Row>& rows = table();
  rows.push_back({op, shape, what, err, limit, gpu_ms, cpu_ms});
  std::printf("  %-18s %-34s %-6s nmse %.3e (limit %.0e)%s\n", op.c_str(), shape.c_str(), what.c_str(),
              err, limit, rows.back().ok() ? "" : "  FAIL");
  std::fflush(stdout);
}

Timed run_pair(const std::function<void()>& cpu, const std::function<void()>& gpu, bool retime) {
  auto t0 = std::chrono::steady_clock::now();
  cpu();
  const double c = ms_since(t0);
  gpu();
  cuda_synchronize();
  return {c, retime ? time_ms(gpu) : NAN};
}


std::vector<Row>& table() {
  static std::vector<Row> rows;
  return rows;
}

std::vector<CaseGroup>& groups() {
  static std::vector<CaseGroup> g;
  return g;
}

int register_cases(const char* name, void (*run)(bool quick)) {
  groups().push_back({name, run});
  return static_cast<int>(groups().size());
}

}  // namespace conformance
