// The interface every mixer (the part of a residual block between pre-norm and residual add)
// implements. One forward serves inference (with per-sequence state) and training (with a
// cache of what backward needs); backward is written by hand next to it, per layer.
#pragma once
#include <memory>
#include <string>

#include "core/error.h"
#include "core/tensor.h"
#include "core/workspace.h"
#include "model/state.h"
#include "ops/ops.h"
#include "model/param.h"

namespace mambalm {

// What a mixer keeps between its training forward and its backward: always its input x, and
// (unless recomputing) the activations of its own kind, a struct it derives from
// MixerActivations with one typed field per tensor.
struct MixerActivations {
  virtual ~MixerActivations() = default;
};

struct LayerCache {
  Tensor x;  // the mixer's input [B, T, D]
  std::unique_ptr<MixerActivations> activations;  // null: recompute them from x in backward

  template <class A>
  const A& as() const {
    const A* a = dynamic_cast<const A*>(activations.get());
    if (!a) fail("backward", "the forward kept no activations of this mixer kind");
    return *a;
  }
};

// What a forward (or backward) call is for; the layer reads only what applies to it. Backward
// gets the context its forward had (seq_idx, workspace).
struct LayerContext {
  LayerState* state = nullptr;      // inference: continue from and update this sequence state
  int64_t pos0 = 0;                 // position of x's first token when the batch is in lockstep
  const Tensor* seq_idx = nullptr;  // training: I32 [B, T] document ids of packed sequences
  LayerCache* cache = nullptr;      // training: keep what backward needs here
  // Inference with a state: I32 [B] on the state's device, each sequence's position before
  // this call and that plus T (see SequenceState::positions/lengths).
  const Tensor* positions = nullptr;
  const Tensor* lengths = nullptr;
  Workspace* workspace = nullptr;  // activations come from here when set (planned memory)
  // The precision of the matrix products inside the mixers: BF16 when the model's matrices are
  // BF16 on CUDA (attention rounds keys and values to bf16 for the tensor cores, as the KV cache
  // of inference is; the SSD's fp32 products run on TF32), else F32 (every product exact).
  DType compute_dtype = DType::F32;
  // CPU inference with BF16 or Q8 weights: the fp32 products inside the mixers (the chunked
  // SSD's) may round their operands to bf16 as well, as the GPU's bf16 path does.
  bool low_precision_weights = false;
  // Training: what the forward also keeps of what backward would otherwise recompute from the
  // kept tensors (KeepKinds flags), trading memory for time (Model::set_keep_activations).
  unsigned keep = 0;
  // Training forward: when set (the block's input h_l, [B, T, D] F32), the mixer writes
  // h_l + mixer(x) into y, its output projection adding onto the residual stream
  // (ops::linear_onto) instead of a separate add pass. Never set in backward's recompute.
  const Tensor* residual = nullptr;
  bool keeps(unsigned kind) const { return cache && (keep & kind) != 0; }
  // The dtype of the activations that pass between a mixer's own bf16 products (the MLP's
  // [B, T, F] intermediates; attention's q, k, v, its output and their gradients): BF16 in mixed
  // precision, as under torch's autocast, so that the GEMMs and cuDNN read and write them without
  // conversion passes and every elementwise pass moves half the bytes. Stateful inference keeps
  // F32 (decode's GEMV and the KV-cache kernels read and write fp32).
  DType activation_dtype() const { return compute_dtype == DType::BF16 && !state ? DType::BF16 : DType::F32; }
  ops::Fp32Products fp32_products() const {
    return compute_dtype == DType::BF16 || low_precision_weights ? ops::Fp32Products::Tf32 : ops::Fp32Products::Exact;
  }

  // An activation tensor: from the workspace, else a new CPU tensor.
  Tensor empty(const Shape& shape, DType dtype = DType::F32) const {
    return workspace ? workspace->empty(shape, dtype) : Tensor::scratch(shape, dtype);
  }
  // The same, zero-filled (for gradients that ops accumulate into).
  Tensor zeros(const Shape& shape) const;
};

// What a training forward can keep beyond its minimum (each otherwise recomputed in backward by a
// memory-bound pass), as bit flags: `--keep KINDS` names them, `--keep-activations` is all.
enum KeepKinds : unsigned {
  kKeepNorms = 1u << 0,  // every block's norm output (its mixer's input): one norm pass a block
  kKeepMlp = 1u << 1,    // the MLP's act(up): one activation pass (F values a token)
  kKeepGate = 1u << 2,   // Mamba-2's gated norm output, out_proj's input
  kKeepConv = 1u << 3,   // Mamba-2's conv output (x | B | C), dt and A: the conv pass
  kKeepAll = kKeepNorms | kKeepMlp | kKeepGate | kKeepConv,
};
// "norms,mlp,gate,conv" or "all" (or "none") -> flags; an unknown name fails naming `option`.
unsigned parse_keep_kinds(const std::string& text, const std::string& option);
// The flags as that list ("none", "all", or the names in the order above).
std::string keep_kinds_name(unsigned kinds);

class Mixer {
 public:
  virtual ~Mixer() = default;
  // x [B, T, D] -> y [B, T, D].
  virtual void forward(const Tensor& x, const LayerContext& ctx, Tensor& y) = 0;
  // dy [B, T, D] -> dx [B, T, D] (assigned); parameter gradients accumulate into the grads
  // named by params(). `cache` holds at least x; missing activations are recomputed.
  virtual void backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) = 0;
  // The mixer's parameters and their gradient buffers, named `prefix` + local HF name.
  virtual ParamList params(const std::string& prefix) = 0;

 protected:
  // The activations of kind A that backward reads: the ones the forward kept, or (recompute
  // mode) those of the forward run again now from the cached input.
  template <class A>
  const A& activations(const Tensor& dy, const LayerContext& ctx, LayerCache& cache) {
    if (!cache.activations) {
      LayerContext again = ctx;
      again.cache = &cache;
      Tensor y = ctx.empty(dy.shape());
      forward(cache.x, again, y);
    }
    return cache.as<A>();
  }
  // y = x w^T (+ b), the mixer's last product, written onto ctx.residual when that is set.
  static void output_projection(const Tensor& x, const Tensor& w, const Tensor* b, const LayerContext& ctx, Tensor& y);
};

}  // namespace mambalm
