// Picks the backend for a call whose tensors the entry point has checked (ops/checks.h on_cuda):
// MAMBALM_BACKEND(gpu, op(args)) calls cuda::op(args) or cpu::op(args). The only place, with
// ops/checks.h, where the ops know whether the CUDA backend is built; included by the dispatch
// files alone. Each call is timed when op profiling is on (ops/op_profile.h).
#pragma once
#include "ops/cpu/cpu_ops.h"
#include "ops/op_profile.h"
#ifdef MAMBALM_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"
#define MAMBALM_BACKEND(gpu, call)                  \
  do {                                              \
    const ::mambalm::ops::ScopedOpTimer op_timer_(#call, gpu); \
    (gpu) ? cuda::call : cpu::call;                 \
  } while (0)
#else
#define MAMBALM_BACKEND(gpu, call)                  \
  do {                                              \
    const ::mambalm::ops::ScopedOpTimer op_timer_(#call, gpu); \
    (void)(gpu);                                    \
    cpu::call;                                      \
  } while (0)
#endif
