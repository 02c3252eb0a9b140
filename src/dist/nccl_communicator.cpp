// The GPU backend: NCCL collectives on device tensors. They run on a stream of their own, each
// after the ops queued before it (an event on the ops' stream, cudaStreamPerThread of the thread
// that trains), so that backward kernels queued later overlap them; wait() joins. NVLink
// multicast (NVLS) stays off unless the user turned it on: it can take shared GPUs out of service.
#include "dist/backends.h"
#include "core/error.h"

#ifdef MAMBALM_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace mambalm::dist {

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail("NCCL", std::string(what) + " failed: " + ncclGetErrorString(r));
}
void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA", std::string(what) + " failed: " + cudaGetErrorString(e));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::Q8: return ncclUint8;  // CPU inference weights, never communicated
  }
  return ncclUint8;
}

void check_device(const Tensor& t, const char* op) {
  check(t.device() == Device::CUDA, "NCCL", std::string(op) + " needs a device tensor");
}

// A peer that stopped answering: the stream holds a collective that will never finish, so no
// clean unwinding is possible (freeing device memory would wait on it). Say why and end now;
// under mpirun the launcher then ends the other ranks too.
[[noreturn]] void end_job(const std::string& why) {
  std::fprintf(stderr, "mambalm: error: %s\n", why.c_str());
  std::fflush(stderr);
  mpi_abort(1);
  std::_Exit(1);
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const World& w, ncclComm_t comm) : Communicator(w.rank, w.size), comm_(comm) {
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&inputs_ready_, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~NcclCommunicator() override {
    cudaEventDestroy(done_);
    cudaEventDestroy(inputs_ready_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }
  std::string backend() const override { return "NCCL"; }
  Device device() const override { return Device::CUDA; }

  void all_reduce_sum(Tensor& t) override {
    check_device(t, "all_reduce_sum");
    check_nccl(ncclAllReduce(t.raw(), t.raw(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), ncclSum, comm_, stream()),
               "ncclAllReduce");
  }
  void reduce_scatter_sum(Tensor& data) override {
    check_device(data, "reduce_scatter_sum");
    check(data.dtype() == DType::F32 && data.numel() % size() == 0, "NCCL", "reduce_scatter_sum takes F32 [size * s]");
    const size_t s = static_cast<size_t>(data.numel() / size());
    // In place: the result lands in this rank's slice of the input.
    check_nccl(ncclReduceScatter(data.raw(), data.f32() + rank() * s, s, ncclFloat32, ncclSum, comm_, stream()),
               "ncclReduceScatter");
  }
  void all_gather(Tensor& data) override {
    check_device(data, "all_gather");
    check(data.numel() % size() == 0, "NCCL", "all_gather takes [size * s]");
    const size_t s = static_cast<size_t>(data.numel() / size());
    char* base = static_cast<char*>(data.raw());
    check_nccl(ncclAllGather(base + rank() * s * dtype_size(data.dtype()), base, s, nccl_type(data.dtype()), comm_, stream()),
               "ncclAllGather");
  }
  void broadcast(Tensor& t, int root) override {
    check_device(t, "broadcast");
    check_nccl(ncclBroadcast(t.raw(), t.raw(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), root, comm_, stream()),
               "ncclBroadcast");
  }

  void wait(double timeout_s) override {
    check_cuda(cudaEventRecord(done_, stream_), "cudaEventRecord");
    const auto start = std::chrono::steady_clock::now();
    for (int spin = 0;; ++spin) {
      const cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) end_job(std::string("rank ") + std::to_string(rank()) + ": CUDA error during a collective: " + cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress)
        end_job("rank " + std::to_string(rank()) + ": NCCL failed: " + ncclGetErrorString(async) + " (" + ncclGetLastError(comm_) +
                "); a peer has probably died");
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_s)
        end_job("rank " + std::to_string(rank()) + " of " + std::to_string(size()) + ": a collective has waited " +
                std::to_string(static_cast<int>(waited)) +
                " s for the other ranks; one has died or hangs, so the job stops (resume with --resume; "
                "MAMBALM_DIST_TIMEOUT sets the limit)");
      // Spin briefly (collectives are usually done in microseconds), then sleep between polls.
      if (spin > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

 private:
  // The collectives' stream, once the ops queued so far (which produce their inputs) are done.
  cudaStream_t stream() {
    check_cuda(cudaEventRecord(inputs_ready_, cudaStreamPerThread), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, inputs_ready_, 0), "cudaStreamWaitEvent");
    return stream_;
  }
  cudaStream_t stream_ = nullptr;
  cudaEvent_t inputs_ready_ = nullptr;
  ncclComm_t comm_;
  cudaEvent_t done_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const World& world) {
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  int devices = 0;
  check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
  check(devices > 0, "NCCL", "no CUDA device is visible");
  check(world.local_rank < devices, "NCCL",
        "local rank " + std::to_string(world.local_rank) + " has no GPU of its own (" + std::to_string(devices) + " visible)",
        "start one rank per GPU");
  check_cuda(cudaSetDevice(world.local_rank), "cudaSetDevice");
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (world.launcher == Launcher::Mpi) {
    mpi_init_once();
    if (world.rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi_broadcast_bytes(&id, sizeof id, 0);
  } else {
    // NCCL's own bootstrap from a known address: with NCCL_COMM_ID set, every rank derives the
    // same id and rank 0 listens there.
    const std::string address = world.master_addr + ":" + std::to_string(world.master_port);
    setenv("NCCL_COMM_ID", address.c_str(), /*overwrite=*/0);
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId (NCCL_COMM_ID)");
  }
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, world.size, id, world.rank), "ncclCommInitRank");
  return std::make_unique<NcclCommunicator>(world, comm);
}

}  // namespace mambalm::dist

#else  // built without CUDA

namespace mambalm::dist {

std::unique_ptr<Communicator> make_nccl_communicator(const World&) {
  fail("NCCL", "this build has no CUDA backend", "multi-GPU training needs a CUDA build");
}

}  // namespace mambalm::dist

#endif
