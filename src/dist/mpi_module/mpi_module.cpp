// mambalm-mpi.so: the table of dist/mpi_calls.h over the MPI C API. Knows MPI and nothing of
// the engine, so that only this file includes mpi.h and links the library.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dist/mpi_calls.h"

namespace {

bool g_finalize_at_exit = false;

// MPI counts are int: larger buffers go in pieces of at most 2^30 elements.
constexpr int64_t kMaxCount = int64_t{1} << 30;

int report(int rc, const char* what, char* err) {
  if (rc == MPI_SUCCESS) return 0;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, text, &n);
  std::snprintf(err, kMpiErrBytes, "%s failed: %.*s", what, n, text);
  return 1;
}

int too_large(const char* what, char* err) {
  std::snprintf(err, kMpiErrBytes, "%s: slice of more than 2^30 elements", what);
  return 1;
}

MPI_Datatype type_of(int elem) {
  switch (elem) {
    case kMpiF32: return MPI_FLOAT;
    case kMpiF64: return MPI_DOUBLE;
    case kMpiI32: return MPI_INT32_T;
    case kMpiI64: return MPI_INT64_T;
    case kMpiU16: return MPI_UINT16_T;
    default: return MPI_BYTE;
  }
}

size_t size_of(int elem) {
  switch (elem) {
    case kMpiF32: case kMpiI32: return 4;
    case kMpiF64: case kMpiI64: return 8;
    case kMpiU16: return 2;
    default: return 1;
  }
}

int initialized() {
  int flag = 0;
  MPI_Initialized(&flag);
  return flag;
}

int init_once(char* err) {
  if (initialized()) return 0;
  int provided = 0;
  if (report(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread", err)) return 1;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_finalize_at_exit = true;
  std::atexit([] {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (g_finalize_at_exit && !finalized) MPI_Finalize();
  });
  return 0;
}

int rank_size(int* rank, int* size, char* err) {
  return report(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank", err) ||
         report(MPI_Comm_size(MPI_COMM_WORLD, size), "MPI_Comm_size", err);
}

int all_reduce_sum(void* data, int64_t count, int elem, char* err) {
  char* p = static_cast<char*>(data);
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    if (report(MPI_Allreduce(MPI_IN_PLACE, p + done * size_of(elem), n, type_of(elem), MPI_SUM, MPI_COMM_WORLD),
               "MPI_Allreduce", err))
      return 1;
  }
  return 0;
}

int reduce_scatter_sum_f32(float* data, int64_t slice, char* err) {
  if (slice > kMaxCount) return too_large("MPI_Reduce_scatter_block", err);
  return report(MPI_Reduce_scatter_block(MPI_IN_PLACE, data, static_cast<int>(slice), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                "MPI_Reduce_scatter_block", err);
}

int all_gather(void* data, int64_t slice, int elem, char* err) {
  if (slice > kMaxCount) return too_large("MPI_Allgather", err);
  return report(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, static_cast<int>(slice), type_of(elem),
                              MPI_COMM_WORLD),
                "MPI_Allgather", err);
}

int broadcast_bytes(void* data, size_t bytes, int root, char* err) {
  char* p = static_cast<char*>(data);
  for (size_t done = 0; done < bytes; done += static_cast<size_t>(kMaxCount)) {
    const int n = static_cast<int>(std::min<size_t>(static_cast<size_t>(kMaxCount), bytes - done));
    if (report(MPI_Bcast(p + done, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast", err)) return 1;
  }
  return 0;
}

void abort_job(int code) {
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, code);
}

constexpr MambalmMpiCalls kCalls{kMambalmMpiCallsVersion, init_once,  initialized, rank_size,      all_reduce_sum,
                                 reduce_scatter_sum_f32,  all_gather, broadcast_bytes, abort_job};

}  // namespace

extern "C" __attribute__((visibility("default"))) const MambalmMpiCalls* mambalm_mpi_calls() { return &kCalls; }
