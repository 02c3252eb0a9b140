// The CPU backend: MPI collectives on host tensors (Open MPI from Debian; any MPI works).
#include "dist/backends.h"
#include "core/error.h"

#ifdef MAMBALM_HAVE_MPI
#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>

namespace mambalm::dist {

namespace {

bool g_finalize_at_exit = false;

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, text, &n);
  fail("MPI", std::string(what) + " failed: " + std::string(text, static_cast<size_t>(n)));
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::BF16:
    case DType::F16: return MPI_UINT16_T;  // moved, never summed
    case DType::Q8: return MPI_BYTE;  // CPU inference weights, never communicated
  }
  return MPI_BYTE;
}

void check_host(const Tensor& t, const char* op) {
  check(t.device() == Device::CPU, "MPI", std::string(op) + " needs a host tensor", "GPU tensors go through NCCL");
}

// MPI counts are int: larger buffers go in pieces of at most 2^30 elements.
constexpr int64_t kMaxCount = int64_t{1} << 30;

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& w) : Communicator(w.rank, w.size) {}
  std::string backend() const override { return "MPI"; }
  Device device() const override { return Device::CPU; }

  void all_reduce_sum(Tensor& t) override {
    check_host(t, "all_reduce_sum");
    check(t.dtype() == DType::F32 || t.dtype() == DType::F64, "MPI", "all_reduce_sum takes F32 or F64");
    char* p = static_cast<char*>(t.raw());
    const size_t elem = dtype_size(t.dtype());
    for (int64_t done = 0; done < t.numel(); done += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, t.numel() - done));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + done * elem, n, mpi_type(t.dtype()), MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
  }

  void reduce_scatter_sum(Tensor& data) override {
    check_host(data, "reduce_scatter_sum");
    check(data.dtype() == DType::F32 && data.numel() % size() == 0, "MPI", "reduce_scatter_sum takes F32 [size * s]");
    const int64_t s = data.numel() / size();
    check(s <= kMaxCount, "MPI", "reduce_scatter_sum slice too large");
    float* p = data.f32();
    // MPI puts the result at the front of the buffer; move it to this rank's slice.
    check_mpi(MPI_Reduce_scatter_block(MPI_IN_PLACE, p, static_cast<int>(s), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Reduce_scatter_block");
    if (rank() != 0) std::memmove(p + rank() * s, p, static_cast<size_t>(s) * sizeof(float));
  }

  void all_gather(Tensor& data) override {
    check_host(data, "all_gather");
    check(data.numel() % size() == 0, "MPI", "all_gather takes [size * s]");
    const int64_t s = data.numel() / size();
    check(s <= kMaxCount, "MPI", "all_gather slice too large");
    check_mpi(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.raw(), static_cast<int>(s), mpi_type(data.dtype()),
                            MPI_COMM_WORLD),
              "MPI_Allgather");
  }

  void broadcast(Tensor& t, int root) override {
    check_host(t, "broadcast");
    mpi_broadcast_bytes(t.raw(), t.nbytes(), root);
  }

  // MPI's collectives return when done; a rank that dies makes mpirun end the job.
  void wait(double) override {}
};

}  // namespace

bool mpi_built() { return true; }

bool mpi_initialized() {
  int flag = 0;
  MPI_Initialized(&flag);
  return flag != 0;
}

void mpi_init_once() {
  if (mpi_initialized()) return;
  int provided = 0;
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_finalize_at_exit = true;
  std::atexit([] {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (g_finalize_at_exit && !finalized) MPI_Finalize();
  });
}

void mpi_broadcast_bytes(void* data, size_t bytes, int root) {
  char* p = static_cast<char*>(data);
  for (size_t done = 0; done < bytes; done += static_cast<size_t>(kMaxCount)) {
    const int n = static_cast<int>(std::min<size_t>(static_cast<size_t>(kMaxCount), bytes - done));
    check_mpi(MPI_Bcast(p + done, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

void mpi_abort(int code) {
  if (mpi_initialized()) MPI_Abort(MPI_COMM_WORLD, code);
}

std::unique_ptr<Communicator> make_mpi_communicator(const World& world) {
  mpi_init_once();
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  check(rank == world.rank && size == world.size, "MPI",
        "MPI says rank " + std::to_string(rank) + " of " + std::to_string(size) + " but the environment says " +
            std::to_string(world.rank) + " of " + std::to_string(world.size));
  return std::make_unique<MpiCommunicator>(world);
}

}  // namespace mambalm::dist

#else  // built without MPI

namespace mambalm::dist {

namespace {
[[noreturn]] void no_mpi() {
  fail("MPI", "this build has no MPI", "install Debian's libopenmpi-dev and openmpi-bin (scripts/setup.sh does) and rebuild");
}
}  // namespace

bool mpi_built() { return false; }
bool mpi_initialized() { return false; }
void mpi_init_once() { no_mpi(); }
void mpi_broadcast_bytes(void*, size_t, int) { no_mpi(); }
void mpi_abort(int) {}
std::unique_ptr<Communicator> make_mpi_communicator(const World&) { no_mpi(); }

}  // namespace mambalm::dist

#endif
