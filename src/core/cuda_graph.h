// A CUDA graph of the work one host function queues: captured once, replayed many times with
// one launch. Decode steps use it: a step is hundreds of small kernels whose launch gaps would
// otherwise dominate at batch 1. Everything the captured work reads or writes must stay at the
// same addresses between replays (planned memory: core/workspace.h, preallocated state).
// Declared in every build; without the CUDA backend capture() fails (core/no_cuda.cpp).
#pragma once
#include <functional>
#include <memory>

namespace mambalm {

class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Runs `work` in capture mode (nothing executes) and instantiates the graph it queued.
  void capture(const std::function<void()>& work);
  bool ready() const;
  // Queues one replay on the ops' stream (returns at once).
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mambalm
