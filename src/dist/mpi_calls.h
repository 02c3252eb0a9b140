// MPI's calls as the CPU backend (dist/mpi_communicator.cpp) and NCCL's bootstrap use them, behind
// a table of our own: its implementation (mpi_module/mpi_module.cpp, over Open MPI or any MPI)
// is the module mambalm-mpi.so, opened only by a job that mpirun or srun started. Linked, Open
// MPI (with hwloc, libevent, udev) added ~2 ms and ~1-2 MiB to every run's start
// (bench/NOTES.md, "MPI opened at run time").
#pragma once
#include <cstddef>
#include <cstdint>

// Element types the collectives move (the module maps each to its MPI_Datatype).
enum MambalmMpiElem : int { kMpiF32 = 0, kMpiF64 = 1, kMpiI32 = 2, kMpiI64 = 3, kMpiU16 = 4, kMpiByte = 5 };

// Each call that can fail returns 0, or non-zero with a one-line message in err (kMpiErrBytes).
// Counts are elements and may exceed MPI's int: the module splits what it must.
struct MambalmMpiCalls {
  int version;  // kMambalmMpiCallsVersion, checked at load
  // MPI_Init_thread (funneled) unless MPI is initialised already; errors then return instead
  // of aborting, and MPI_Finalize runs at normal exit.
  int (*init_once)(char* err);
  int (*initialized)();
  int (*rank_size)(int* rank, int* size, char* err);
  // Sum over ranks in place (F32 or F64).
  int (*all_reduce_sum)(void* data, int64_t count, int elem, char* err);
  // data: [size * slice] F32; the sum of slice r lands at the front of rank r's buffer.
  int (*reduce_scatter_sum_f32)(float* data, int64_t slice, char* err);
  // data: [size * slice]; every rank's slice r from rank r, in place.
  int (*all_gather)(void* data, int64_t slice, int elem, char* err);
  int (*broadcast_bytes)(void* data, size_t bytes, int root, char* err);
  void (*abort_job)(int code);
};

inline constexpr int kMambalmMpiCallsVersion = 1;
inline constexpr size_t kMpiErrBytes = 512;

// The module's one export (extern "C", so dlsym finds it by this name).
extern "C" const MambalmMpiCalls* mambalm_mpi_calls();

namespace mambalm::dist {
// The module's table, opened on first use (a one-line Error when it cannot be loaded).
const MambalmMpiCalls& mpi_calls();
// Whether the module has been opened in this process (MPI cannot be initialised before).
bool mpi_calls_loaded();
}  // namespace mambalm::dist
