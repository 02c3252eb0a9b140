// The CPU backend: MPI collectives on host tensors (Open MPI from Debian; any MPI works), through
// the MPI module's calls (dist/mpi_calls.h).
#include <cstring>
#include <string>

#include "core/error.h"
#include "dist/backends.h"
#include "dist/mpi_calls.h"

namespace mambalm::dist {

namespace {

// Runs one of the module's calls with an error buffer; a failure is a one-line Error.
template <class Call>
void mpi(Call call) {
  char err[kMpiErrBytes] = {};
  if (call(err) != 0) fail("MPI", err);
}

int mpi_elem(DType t) {
  switch (t) {
    case DType::F32: return kMpiF32;
    case DType::F64: return kMpiF64;
    case DType::I32: return kMpiI32;
    case DType::I64: return kMpiI64;
    case DType::BF16:
    case DType::F16: return kMpiU16;  // moved, never summed
    case DType::Q8: return kMpiByte;  // CPU inference weights, never communicated
  }
  return kMpiByte;
}

void check_host(const Tensor& t, const char* op) {
  check(t.device() == Device::CPU, "MPI", std::string(op) + " needs a host tensor", "GPU tensors go through NCCL");
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& w) : Communicator(w.rank, w.size) {}
  std::string backend() const override { return "MPI"; }
  Device device() const override { return Device::CPU; }

  void all_reduce_sum(Tensor& t) override {
    check_host(t, "all_reduce_sum");
    check(t.dtype() == DType::F32 || t.dtype() == DType::F64, "MPI", "all_reduce_sum takes F32 or F64");
    mpi([&](char* err) { return mpi_calls().all_reduce_sum(t.raw(), t.numel(), mpi_elem(t.dtype()), err); });
  }

  void reduce_scatter_sum(Tensor& data) override {
    check_host(data, "reduce_scatter_sum");
    check(data.dtype() == DType::F32 && data.numel() % size() == 0, "MPI", "reduce_scatter_sum takes F32 [size * s]");
    const int64_t s = data.numel() / size();
    float* p = data.f32();
    mpi([&](char* err) { return mpi_calls().reduce_scatter_sum_f32(p, s, err); });
    // MPI puts the result at the front of the buffer; move it to this rank's slice.
    if (rank() != 0) std::memmove(p + rank() * s, p, static_cast<size_t>(s) * sizeof(float));
  }

  void all_gather(Tensor& data) override {
    check_host(data, "all_gather");
    check(data.numel() % size() == 0, "MPI", "all_gather takes [size * s]");
    const int64_t s = data.numel() / size();
    mpi([&](char* err) { return mpi_calls().all_gather(data.raw(), s, mpi_elem(data.dtype()), err); });
  }

  void broadcast(Tensor& t, int root) override {
    check_host(t, "broadcast");
    mpi_broadcast_bytes(t.raw(), t.nbytes(), root);
  }

  // MPI's collectives return when done; a rank that dies makes mpirun end the job.
  void wait(double) override {}
};

}  // namespace

// Only the module initialises MPI here, so before it is opened MPI cannot be.
bool mpi_initialized() { return mpi_calls_loaded() && mpi_calls().initialized() != 0; }

void mpi_init_once() {
  mpi([](char* err) { return mpi_calls().init_once(err); });
}

void mpi_broadcast_bytes(void* data, size_t bytes, int root) {
  mpi([&](char* err) { return mpi_calls().broadcast_bytes(data, bytes, root, err); });
}

void mpi_abort(int code) {
  if (mpi_calls_loaded()) mpi_calls().abort_job(code);
}

std::unique_ptr<Communicator> make_mpi_communicator(const World& world) {
  mpi_init_once();
  int rank = 0, size = 1;
  mpi([&](char* err) { return mpi_calls().rank_size(&rank, &size, err); });
  check(rank == world.rank && size == world.size, "MPI",
        "MPI says rank " + std::to_string(rank) + " of " + std::to_string(size) + " but the environment says " +
            std::to_string(world.rank) + " of " + std::to_string(world.size));
  return std::make_unique<MpiCommunicator>(world);
}

}  // namespace mambalm::dist
