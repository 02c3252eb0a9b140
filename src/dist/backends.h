// The two backends behind open_communicator() (dist/communicator.h) and the MPI runtime that
// also bootstraps NCCL. MPI is the module mambalm-mpi.so (dist/mpi_calls.h), built when the
// build found MPI; NCCL is opened at run time (dist/nccl_loader.cpp) when built with CUDA.
// Otherwise these fail with a one-line error saying what the build lacks.
#pragma once
#include <cstddef>
#include <memory>

#include "dist/communicator.h"

namespace mambalm::dist {

// MPI_Init once per process (MPI_Finalize at normal exit). Only for a job started by MPI.
void mpi_init_once();
bool mpi_initialized();
// Root's bytes to every rank (MPI_Bcast on MPI_COMM_WORLD).
void mpi_broadcast_bytes(void* data, size_t bytes, int root);
// Ends every rank of the job (MPI_Abort): a rank that fails must not leave the others waiting.
void mpi_abort(int code);

std::unique_ptr<Communicator> make_mpi_communicator(const World& world);
std::unique_ptr<Communicator> make_nccl_communicator(const World& world);

}  // namespace mambalm::dist
