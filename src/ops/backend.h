// Picks the backend for a call whose tensors the entry point has checked (ops/checks.h on_cuda):
// MAMBALM_BACKEND(gpu, op(args)) calls cuda::op(args) or cpu::op(args). The only place, with
// ops/checks.h, where the ops know whether the CUDA backend is built; included by the dispatch
// files alone.
#pragma once
#include "ops/cpu/cpu_ops.h"
#ifdef MAMBALM_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"
#define MAMBALM_BACKEND(gpu, call) ((gpu) ? cuda::call : cpu::call)
#else
#define MAMBALM_BACKEND(gpu, call) ((void)(gpu), cpu::call)
#endif
