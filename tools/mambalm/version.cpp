// `mambalm --version`: the version, how this binary was built, and which backends it finds here.
#include "version.h"

#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "core/device.h"
#include "ops/blas_core.h"
#include "version_info.h"  // generated: MAMBALM_VERSION, MAMBALM_BUILD_OPTIONS

namespace mambalm::cli {

namespace {
// Whether the dynamic loader finds `name` (opened and closed again; only --version pays for it).
bool loadable(const char* name) {
  void* h = dlopen(name, RTLD_LAZY | RTLD_LOCAL);
  if (h) dlclose(h);
  return h != nullptr;
}
}  // namespace

void print_version() {
  std::printf("mambalm %s\n", MAMBALM_VERSION);
  std::printf("build: %s\n", MAMBALM_BUILD_OPTIONS);
  std::printf("backends: cpu (OpenBLAS %s kernels%s, OpenMP)", ops::openblas_core().c_str(),
              ops::onednn_bf16_prefill() ? ", oneDNN bf16 GEMM for bf16 prefill" : "");
  if (!cuda_built()) {
    std::printf("; cuda not built in\n");
    return;
  }
  const int devices = cuda_device_count();
  const bool blas = loadable("libcublasLt.so.13") && loadable("libcublas.so.13");
  std::printf("; cuda built in: %d device%s visible, cuBLAS 13 %s\n", devices, devices == 1 ? "" : "s",
              blas ? "found" : "not found (needed for --device cuda)");
  if (devices > 0) std::printf("device 0: %s\n", cuda_device_summary().c_str());
}

}  // namespace mambalm::cli
