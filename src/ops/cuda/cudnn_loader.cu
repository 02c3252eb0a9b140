// Opens libcudnn.so.9 with dlopen on first use (see cudnn_loader.h). libcudnn.so.9 is cuDNN 9's
// small front library: it loads its sub-libraries (libcudnn_graph.so.9, libcudnn_engines_*.so.9,
// libcudnn_heuristic.so.9) itself, by name, so they must be on the library path too
// (scripts/gpu-env.sh adds the nvidia-cudnn wheel's lib directory). Unlike cublas_loader.cu a
// missing library is not an error here: the caller falls back to our own kernels.
#include "ops/cuda/cudnn_loader.h"

#if MAMBALM_HAVE_CUDNN
#include <dlfcn.h>

#include <string>

namespace mambalm::ops::cuda {

namespace {

struct Loaded {
  CudnnApi api;
  std::string why;  // empty when api is usable
};

template <class F>
bool resolve(void* lib, const char* name, F& out, std::string& why) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (!out && why.empty()) why = std::string("libcudnn.so.9 has no symbol ") + name;
  return out != nullptr;
}

Loaded load() {
  Loaded l;
  void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    l.why = std::string("cannot load libcudnn.so.9: ") + (e ? e : "unknown dlopen error") +
            " (put cuDNN 9's lib directory on LD_LIBRARY_PATH; scripts/gpu-env.sh does for the nvidia-cudnn wheel)";
    return l;
  }
  CudnnApi& a = l.api;
  resolve(lib, "cudnnGetVersion", a.get_version, l.why);
  resolve(lib, "cudnnCreate", a.create, l.why);
  resolve(lib, "cudnnSetStream", a.set_stream, l.why);
  resolve(lib, "cudnnBackendCreateDescriptor", a.create_descriptor, l.why);
  resolve(lib, "cudnnBackendDestroyDescriptor", a.destroy_descriptor, l.why);
  resolve(lib, "cudnnBackendSetAttribute", a.set_attribute, l.why);
  resolve(lib, "cudnnBackendGetAttribute", a.get_attribute, l.why);
  resolve(lib, "cudnnBackendFinalize", a.finalize, l.why);
  resolve(lib, "cudnnBackendExecute", a.execute, l.why);
  resolve(lib, "cudnnGetErrorString", a.error_string, l.why);
  if (!l.why.empty()) return l;
  // Optional (cuDNN 9.0+ has it; checked anyway so that a stripped build still works).
  a.last_error_string = reinterpret_cast<decltype(a.last_error_string)>(dlsym(lib, "cudnnGetLastErrorString"));
  a.version = a.get_version();
  if (a.version < 90000)
    l.why = "libcudnn.so.9 reports version " + std::to_string(a.version) + ", the attention graphs need 9.0 or newer";
  // The library stays open for the life of the process (its plans and handles live as long).
  return l;
}

}  // namespace

std::string CudnnApi::describe(cudnnStatus_t s) const {
  std::string m = error_string ? error_string(s) : ("cuDNN status " + std::to_string(int(s)));
  if (last_error_string) {
    char buf[1024] = {0};
    last_error_string(buf, sizeof buf);
    if (buf[0]) m += std::string(": ") + buf;
  }
  return m;
}

const CudnnApi* cudnn_api(std::string* why) {
  static const Loaded l = load();
  if (!l.why.empty()) {
    if (why) *why = l.why;
    return nullptr;
  }
  return &l.api;
}

}  // namespace mambalm::ops::cuda
#endif  // MAMBALM_HAVE_CUDNN
