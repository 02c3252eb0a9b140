#include "dist/world.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace mambalm::dist {

namespace {

// The integer value of variable `name`, or -1 when it is not set.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  check(*end == '\0' && x >= 0 && x < (1L << 30), name, std::string("is '") + v + "', expected a non-negative integer");
  return static_cast<int>(x);
}

struct Triple {
  const char* rank;
  const char* size;
  const char* local_rank;
};

}  // namespace

std::string launcher_name(Launcher l) {
  switch (l) {
    case Launcher::Mpi: return "MPI";
    case Launcher::Env: return "environment (RANK/WORLD_SIZE)";
    default: return "none";
  }
}

World detect_world() {
  World w;
  // MPI launchers first: under srun with PMI both Slurm's and MPI's variables are set.
  for (Triple t : {Triple{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
                   Triple{"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
                   Triple{"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}}) {
    const int rank = env_int(t.rank), size = env_int(t.size);
    if (rank < 0 || size < 0) continue;
    w.rank = rank;
    w.size = size;
    w.local_rank = std::max(0, env_int(t.local_rank));
    w.launcher = Launcher::Mpi;
    break;
  }
  if (w.launcher == Launcher::None) {
    const int rank = env_int("RANK"), size = env_int("WORLD_SIZE");
    if (rank >= 0 && size >= 0) {
      w.rank = rank;
      w.size = size;
      const int local = env_int("LOCAL_RANK");
      w.local_rank = local >= 0 ? local : rank;
      w.launcher = Launcher::Env;
      const char* addr = std::getenv("MASTER_ADDR");
      w.master_addr = addr && *addr ? addr : "";
      w.master_port = env_int("MASTER_PORT");
      if (size > 1) {
        check(!w.master_addr.empty(), "MASTER_ADDR", "is not set; a job of several ranks started by RANK/WORLD_SIZE needs it");
        check(w.master_port > 0 && w.master_port < 65536, "MASTER_PORT", "is not set to a port number (1..65535)");
      }
    }
  }
  check(w.size >= 1 && w.rank < w.size, "launcher",
        "rank " + std::to_string(w.rank) + " is outside a world of " + std::to_string(w.size));
  return w;
}

}  // namespace mambalm::dist
