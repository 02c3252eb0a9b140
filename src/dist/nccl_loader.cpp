// NCCL opened on first use (dlopen of libnccl.so.2) instead of linked, as cuBLAS is
// (ops/cuda/cublas_loader.cu): the binary starts on machines without NCCL, and only a
// multi-GPU run needs it (from the CUDA toolkit's lib/ or the nvidia-nccl-cu13 wheel, on
// LD_LIBRARY_PATH). Each function keeps the prototype nccl.h declares and forwards to the real
// symbol, resolved once.
#ifdef MAMBALM_HAVE_NCCL
#include <nccl.h>

#include "core/shared_library.h"

namespace {

constexpr const char* kLibnccl = "libnccl.so.2";

void* libnccl() {
  static void* const handle = mambalm::open_shared_library(
      kLibnccl, "multi-GPU training needs NCCL 2 on the library path (the CUDA toolkit's lib/ or the nvidia-nccl wheel)");
  return handle;
}

template <class F>
F resolve(const char* name) {
  return mambalm::shared_library_symbol<F>(libnccl(), kLibnccl, name, "NCCL 2.19 or newer is needed");
}

}  // namespace

#define MAMBALM_NCCL_FORWARD(name, ...)                        \
  static const auto real = resolve<decltype(&name)>(#name);   \
  return real(__VA_ARGS__)

extern "C" {

ncclResult_t ncclGetVersion(int* version) { MAMBALM_NCCL_FORWARD(ncclGetVersion, version); }
ncclResult_t ncclGetUniqueId(ncclUniqueId* id) { MAMBALM_NCCL_FORWARD(ncclGetUniqueId, id); }
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  MAMBALM_NCCL_FORWARD(ncclCommInitRank, comm, nranks, id, rank);
}
ncclResult_t ncclCommDestroy(ncclComm_t comm) { MAMBALM_NCCL_FORWARD(ncclCommDestroy, comm); }
ncclResult_t ncclCommAbort(ncclComm_t comm) { MAMBALM_NCCL_FORWARD(ncclCommAbort, comm); }
const char* ncclGetErrorString(ncclResult_t r) { MAMBALM_NCCL_FORWARD(ncclGetErrorString, r); }
const char* ncclGetLastError(ncclComm_t comm) { MAMBALM_NCCL_FORWARD(ncclGetLastError, comm); }
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* e) { MAMBALM_NCCL_FORWARD(ncclCommGetAsyncError, comm, e); }
ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
  MAMBALM_NCCL_FORWARD(ncclAllReduce, send, recv, count, type, op, comm, stream);
}
ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t stream) {
  MAMBALM_NCCL_FORWARD(ncclReduceScatter, send, recv, count, type, op, comm, stream);
}
ncclResult_t ncclAllGather(const void* send, void* recv, size_t count, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t stream) {
  MAMBALM_NCCL_FORWARD(ncclAllGather, send, recv, count, type, comm, stream);
}
ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  MAMBALM_NCCL_FORWARD(ncclBroadcast, send, recv, count, type, root, comm, stream);
}
ncclResult_t ncclGroupStart() { MAMBALM_NCCL_FORWARD(ncclGroupStart); }
ncclResult_t ncclGroupEnd() { MAMBALM_NCCL_FORWARD(ncclGroupEnd); }

}  // extern "C"

#endif  // MAMBALM_HAVE_NCCL
