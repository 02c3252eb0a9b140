// Opens the MPI module (dist/mpi_calls.h) on first use.
#include "dist/mpi_calls.h"

#include <atomic>

#include "core/error.h"
#include "core/project_module.h"

namespace mambalm::dist {

namespace {
std::atomic<bool> g_loaded{false};  // mpi_calls_loaded(), without opening the module
}  // namespace

const MambalmMpiCalls& mpi_calls() {
  // A static initialiser runs once across threads, and again on the next call if it threw.
  static const MambalmMpiCalls* const calls = [] {
#ifndef MAMBALM_MPI_MODULE_BUILT
    fail("MPI", "this build has no MPI",
         "install Debian's libopenmpi-dev and openmpi-bin (scripts/setup.sh does) and rebuild");
    return static_cast<const MambalmMpiCalls*>(nullptr);
#else
    const ProjectModule module{"mambalm-mpi.so",      "MAMBALM_MPI_MODULE", MAMBALM_MPI_MODULE_INSTALLED,
                               MAMBALM_MPI_MODULE_BUILT, "mambalm_mpi_calls",  "MPI"};
    using Get = const MambalmMpiCalls* (*)();
    const MambalmMpiCalls* c = reinterpret_cast<Get>(open_project_module(module))();
    check(c != nullptr && c->version == kMambalmMpiCallsVersion, "MPI",
          "the module mambalm-mpi.so is of another version than this binary", "rebuild and install both together");
    g_loaded.store(true, std::memory_order_release);
    return c;
#endif
  }();
  return *calls;
}

bool mpi_calls_loaded() { return g_loaded.load(std::memory_order_acquire); }

}  // namespace mambalm::dist
