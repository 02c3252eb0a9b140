// Who this process is in a data-parallel job, read from the environment its launcher set:
//   mpirun (Open MPI: OMPI_COMM_WORLD_*; MPICH/Hydra: PMI_*), srun (SLURM_PROCID, SLURM_NTASKS,
//   SLURM_LOCALID), or torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
//   MASTER_PORT) for schedulers that set those instead.
// A process started by none of them is rank 0 of a world of one.
#pragma once
#include <string>

namespace mambalm::dist {

enum class Launcher {
  None,  // a plain single process
  Mpi,   // mpirun / srun: MPI can be initialised and carries the bootstrap
  Env,   // RANK/WORLD_SIZE/...: NCCL bootstraps from MASTER_ADDR:MASTER_PORT
};

struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;  // index among the ranks of this machine: the GPU this rank drives
  Launcher launcher = Launcher::None;
  std::string master_addr;  // Env only
  int master_port = 0;      // Env only
  bool distributed() const { return size > 1; }
};

// Reads the variables above; malformed values (a rank outside the world, a missing
// MASTER_ADDR for a world of several) fail with a one-line error naming the variable.
World detect_world();

std::string launcher_name(Launcher l);

}  // namespace mambalm::dist
