#include "core/cuda_graph.h"

#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace mambalm {

namespace {
void graph_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("cuda graph", std::string(what) + ": " + cudaGetErrorString(e));
}
}  // namespace

struct CudaGraph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~Impl() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}
CudaGraph::~CudaGraph() = default;

void CudaGraph::capture(const std::function<void()>& work) {
  impl_ = std::make_unique<Impl>();
  // Thread-local mode: other host threads may keep using CUDA while this one captures.
  graph_check(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeThreadLocal), "begin capture");
  try {
    work();
  } catch (...) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(cudaStreamPerThread, &partial);
    if (partial) cudaGraphDestroy(partial);
    (void)cudaGetLastError();
    throw;
  }
  graph_check(cudaStreamEndCapture(cudaStreamPerThread, &impl_->graph), "end capture");
  graph_check(cudaGraphInstantiate(&impl_->exec, impl_->graph, 0), "instantiate");
}

bool CudaGraph::ready() const { return impl_->exec != nullptr; }

void CudaGraph::replay() {
  check(ready(), "cuda graph", "replay before capture");
  graph_check(cudaGraphLaunch(impl_->exec, cudaStreamPerThread), "launch");
}

}  // namespace mambalm
