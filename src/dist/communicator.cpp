#include "dist/communicator.h"

#include <cstdlib>
#include <cstring>

#include "core/device.h"
#include "core/error.h"
#include "dist/backends.h"

namespace mambalm::dist {

void Communicator::sum(std::vector<double>& xs, double timeout_s) {
  if (size() == 1 || xs.empty()) return;
  Tensor t = Tensor::empty({static_cast<int64_t>(xs.size())}, DType::F64);
  std::memcpy(t.raw(), xs.data(), xs.size() * sizeof(double));
  if (device() == Device::CPU) {
    all_reduce_sum(t);
  } else {
    Tensor d = to_device(t, device());
    all_reduce_sum(d);
    wait(timeout_s);
    t = to_host(d);
  }
  std::memcpy(xs.data(), t.raw(), xs.size() * sizeof(double));
}

double Communicator::sum(double x, double timeout_s) {
  std::vector<double> xs{x};
  sum(xs, timeout_s);
  return xs[0];
}

std::string Communicator::broadcast_string(const std::string& s, int root) {
  if (size() == 1) return s;
  // The length first (as a sum in which only the root counts), then the bytes as I32 words.
  const int64_t length = static_cast<int64_t>(sum(rank() == root ? static_cast<double>(s.size()) : 0.0));
  Tensor words = Tensor::zeros({(length + 3) / 4 + 1}, DType::I32);
  if (rank() == root) std::memcpy(words.raw(), s.data(), s.size());
  if (device() == Device::CPU) {
    broadcast(words, root);
  } else {
    Tensor d = to_device(words, device());
    broadcast(d, root);
    wait(collective_timeout());
    words = to_host(d);
  }
  return std::string(static_cast<const char*>(words.raw()), static_cast<size_t>(length));
}

double collective_timeout() {
  const char* v = std::getenv("MAMBALM_DIST_TIMEOUT");
  if (!v || !*v) return 30.0;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  check(*end == '\0' && s > 0, "MAMBALM_DIST_TIMEOUT", std::string("is '") + v + "', expected seconds > 0");
  return s;
}

std::unique_ptr<Communicator> open_communicator(const World& world, Device device) {
  if (device == Device::CUDA) return make_nccl_communicator(world);
  check(world.launcher != Launcher::Env || world.size == 1, "launcher",
        "data parallel training on the CPU goes through MPI: start it with mpirun (or srun), not RANK/WORLD_SIZE");
  return make_mpi_communicator(world);
}

void abort_job_after_error() {
  if (!mpi_initialized()) return;
  try {
    if (detect_world().size > 1) mpi_abort(1);
  } catch (const Error&) {
  }
}

}  // namespace mambalm::dist
