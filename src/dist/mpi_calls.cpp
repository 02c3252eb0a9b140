// Opens the MPI module (dist/mpi_calls.h) on first use.
#include "dist/mpi_calls.h"

#include <atomic>
#include <mutex>
#include <string>

#include "core/error.h"
#include "core/project_module.h"

namespace mambalm::dist {

namespace {
std::atomic<const MambalmMpiCalls*> g_calls{nullptr};
}  // namespace

const MambalmMpiCalls& mpi_calls() {
  if (const MambalmMpiCalls* c = g_calls.load(std::memory_order_acquire)) return *c;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (const MambalmMpiCalls* c = g_calls.load(std::memory_order_acquire)) return *c;
#ifndef MAMBALM_MPI_MODULE_BUILT
  fail("MPI", "this build has no MPI",
       "install Debian's libopenmpi-dev and openmpi-bin (scripts/setup.sh does) and rebuild");
#else
  const ProjectModule module{"mambalm-mpi.so", "MAMBALM_MPI_MODULE",
#ifdef MAMBALM_MPI_MODULE_INSTALLED
                             MAMBALM_MPI_MODULE_INSTALLED,
#else
                             nullptr,
#endif
                             MAMBALM_MPI_MODULE_BUILT, "mambalm_mpi_calls", "MPI"};
  using Get = const MambalmMpiCalls* (*)();
  const MambalmMpiCalls* c = reinterpret_cast<Get>(open_project_module(module))();
  check(c != nullptr && c->version == kMambalmMpiCallsVersion, "MPI",
        "the module mambalm-mpi.so is of another version than this binary", "rebuild and install both together");
  g_calls.store(c, std::memory_order_release);
  return *c;
#endif
}

bool mpi_calls_loaded() { return g_calls.load(std::memory_order_acquire) != nullptr; }

}  // namespace mambalm::dist
