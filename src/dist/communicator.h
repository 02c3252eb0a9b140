// Collectives between the ranks of a data-parallel job, on the engines the field runs on: MPI
// for tensors in host memory (the CPU path) and NCCL for tensors on the GPU. No transport of
// our own: MPI and NCCL move every byte.
//
// Every call is collective: all ranks call it in the same order with tensors of the same shape.
// Tensors are contiguous and live where the backend expects them (host for MPI, the current
// CUDA device for NCCL). On the GPU a collective is queued after the kernels queued before it
// (which produce its inputs) on a stream of its own, so kernels queued after it run alongside:
// nothing may read its outputs, or write its buffers, before wait() has returned.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/world.h"

namespace mambalm::dist {

// Seconds a collective may wait for the slowest rank before the job is declared broken
// (MAMBALM_DIST_TIMEOUT overrides; 30 by default). Steps are in lockstep, so a healthy
// rank waits for another only as long as they drift apart; checkpoint writes and start-up get
// longer limits where they happen.
double collective_timeout();

class Communicator {
 public:
  virtual ~Communicator() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual std::string backend() const = 0;  // "MPI", "NCCL"
  virtual Device device() const = 0;        // where its tensors live

  // t (F32 or F64) becomes the element-wise sum over ranks, on every rank.
  virtual void all_reduce_sum(Tensor& t) = 0;
  // data: [size * s] (F32). Afterwards slice `rank` of data, data[rank*s, (rank+1)*s), holds the
  // sum over ranks of that slice; the other slices are left undefined.
  virtual void reduce_scatter_sum(Tensor& data) = 0;
  // data: [size * s] (any dtype). Rank r's slice r goes to every rank: afterwards every slice
  // holds its owner's values.
  virtual void all_gather(Tensor& data) = 0;
  // t takes the values of rank `root`'s t.
  virtual void broadcast(Tensor& t, int root) = 0;
  // Waits until everything queued is done. A rank that does not answer within `timeout_s`
  // (a dead or hung peer) ends this process with a one-line error instead of a hang.
  virtual void wait(double timeout_s) = 0;

  // Host scalars summed over ranks (losses, norms, flags), in place; returns at once in a world
  // of one. Waits at most timeout_s (give more where a rank is known to be busy, e.g. writing
  // a checkpoint).
  void sum(std::vector<double>& xs, double timeout_s = collective_timeout());
  double sum(double x, double timeout_s = collective_timeout());
  // Rank root's string, on every rank.
  std::string broadcast_string(const std::string& s, int root);

 protected:
  Communicator(int rank, int size) : rank_(rank), size_(size) {}

 private:
  int rank_, size_;
};

// The communicator for `world` and tensors on `device`: MPI for the CPU (the job must be started
// by mpirun or srun), NCCL for CUDA (bootstrapped through MPI when MPI started the job, else from
// MASTER_ADDR:MASTER_PORT). For CUDA it first selects GPU world.local_rank for this process.
// Fails with a clear message when this build lacks the backend.
std::unique_ptr<Communicator> open_communicator(const World& world, Device device);

// After an error on one rank of a job started by MPI: ends every rank (MPI_Abort), so that none
// is left waiting in a collective. A no-op otherwise.
void abort_job_after_error();

}  // namespace mambalm::dist
