// What the GPU kernel benchmarks (bench/cuda/*.cpp) time with: CUDA events around each call of a
// function on the ops' stream, the median of `reps` calls after `warm` untimed ones. The calls
// are numbered on from the warm-up's (f(0) .. f(warm + reps - 1)), so that a benchmark rotating
// through copies of its inputs by that number (to stream them from memory rather than the L2)
// keeps rotating into the timed calls.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "core/device.h"

namespace mambalm::bench_cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "mambalm bench (cuda): %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median ms of the event-timed calls f(warm) .. f(warm + reps - 1) after the calls f(0 .. warm-1).
inline double median_ms(const std::function<void(int)>& f, int reps = 30, int warm = 3) {
  for (int i = 0; i < warm; ++i) f(i);
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  std::vector<float> v;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a, cudaStreamPerThread), "record");
    f(warm + i);
    check(cudaEventRecord(b, cudaStreamPerThread), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    v.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cuda_synchronize();
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace mambalm::bench_cuda
