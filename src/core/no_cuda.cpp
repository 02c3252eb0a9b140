// core/cuda_backend.h for a build without the CUDA backend (compiled instead of
// core/cuda_memory.cu and core/cuda_graph.cu): no device is ever found, and whatever needs one
// fails with one clear line.
#include "core/cuda_backend.h"
#include "core/cuda_graph.h"
#include "core/error.h"

namespace mambalm {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  fail(what, "this binary was built without the CUDA backend", "build where nvcc is installed (MAMBALM_CUDA=ON)");
}
}  // namespace

namespace cuda_backend {

bool built() { return false; }
int device_count() { return 0; }
std::string device_summary() { return "no CUDA backend"; }
Tensor empty(const Shape&, DType) { no_cuda("cuda"); }
void fill_bytes(Tensor&, int) { no_cuda("cuda"); }
void copy(const Tensor&, Tensor&) { no_cuda("copy_tensor"); }
void copy_async(const Tensor&, Tensor&) { no_cuda("copy_async"); }
void synchronize() {}
Tensor empty_pinned(const Shape& shape, DType dtype) { return Tensor::empty(shape, dtype); }
bool capturing() { return false; }
void fill_uniform(Tensor&, uint64_t, float, float) { no_cuda("fill_uniform_cuda"); }
void memory_info(size_t*, size_t*) { no_cuda("cuda_memory_info"); }

}  // namespace cuda_backend

struct CudaGraph::Impl {};
CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;
void CudaGraph::capture(const std::function<void()>&) { no_cuda("cuda graph"); }
bool CudaGraph::ready() const { return false; }
void CudaGraph::replay() { no_cuda("cuda graph"); }

}  // namespace mambalm
