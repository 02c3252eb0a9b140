// cuDNN opened on first use (dlopen of libcudnn.so.9), never linked: the binary starts, and
// every op runs on our own kernels, on a machine without cuDNN. Only the attention path
// (attention/cudnn_attention.cu) uses it, through the backend (graph) C API below.
// Built only when cuDNN's headers were found at configure time (MAMBALM_HAVE_CUDNN, see
// CMakeLists.txt); without them this header declares nothing and the attention path reports
// "built without cuDNN headers".
#pragma once
#include <string>

#if MAMBALM_HAVE_CUDNN
#include <cudnn_graph.h>
#endif

namespace mambalm::ops::cuda {

#if MAMBALM_HAVE_CUDNN
// The entry points of libcudnn.so.9 the attention graphs need, resolved once. Prototypes come
// from cudnn_graph.h (decltype), so a mismatch is a compile error, not a crash.
struct CudnnApi {
  size_t version = 0;  // cudnnGetVersion() of the library actually loaded, e.g. 91000 for 9.10.0
  decltype(&cudnnGetVersion) get_version = nullptr;
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnSetStream) set_stream = nullptr;
  decltype(&cudnnBackendCreateDescriptor) create_descriptor = nullptr;
  decltype(&cudnnBackendDestroyDescriptor) destroy_descriptor = nullptr;
  decltype(&cudnnBackendSetAttribute) set_attribute = nullptr;
  decltype(&cudnnBackendGetAttribute) get_attribute = nullptr;
  decltype(&cudnnBackendFinalize) finalize = nullptr;
  decltype(&cudnnBackendExecute) execute = nullptr;
  decltype(&cudnnGetErrorString) error_string = nullptr;
  decltype(&cudnnGetLastErrorString) last_error_string = nullptr;  // null when the library lacks it

  // "CUDNN_STATUS_...: <the library's last error message>" for a failed call.
  std::string describe(cudnnStatus_t s) const;
};

// The loaded library, or null with the reason in *why (library missing, symbol missing,
// version older than 9.0). Thread-safe; the answer never changes within a process.
const CudnnApi* cudnn_api(std::string* why);
#endif

}  // namespace mambalm::ops::cuda
