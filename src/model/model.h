// A language model assembled from its config: token embedding, one residual block per pattern
// symbol (pre-norm -> mixer -> residual add), final norm and LM head:
//   h_0 = E[ids];  h_{l+1} = h_l + Mixer_l(Norm_l(h_l));  logits = W_head Norm_f(h_L)
// The Transformer is the pattern "*-*-...": each HF decoder layer is an attention block and an
// MLP block, which is how Megatron-LM's hybrid models count layers too.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "core/workspace.h"
#include "model/state.h"
#include "model/layer.h"
#include "model/norm.h"
#include "ops/ops_backward.h"

namespace mambalm {

class EmbeddingFile;

// Inference loading keeps a tensor of the file as a view of its mapping only from this size on
// when other tensors of the file are converted; smaller ones are then copied (model_load.cpp
// says why).
inline constexpr int64_t kSmallestMappedTensorBytes = int64_t{4} << 20;

class Model {
 public:
  explicit Model(ModelConfig cfg);  // builds the layers; parameters are not allocated yet
  Model(Model&&) = default;
  ~Model();  // drops its gradients' deferred zero fills (zero_grads)

  const ModelConfig& config() const { return cfg_; }
  // Every parameter with its HF name, in HF order (embedding, layers, final norm, head).
  // A tied head is not listed (it is the embedding).
  ParamList& params() { return params_; }
  int64_t parameter_count() const;

  // Allocates every parameter and draws it as docs/architecture.md describes.
  void init_random(uint64_t seed);

  // Loads <dir>/config.json and its safetensors weights (F32, BF16, F16 widened to F32) as
  // owned F32 tensors: what training and conversion start from (model_load.cpp).
  static Model load(const std::string& model_dir);
  // Loads for inference on the CPU: matrices stored as `matrix_dtype` (F32, BF16 or Q8), the rest
  // F32, converted tensor by tensor as read, so that memory peaks near the stored model, not at
  // its F32 size. A tensor the file already holds in its stored dtype (of at least
  // kSmallestMappedTensorBytes, or any size when nothing is converted) is a view of the read-only
  // mapping, not a copy: such a model must not be trained (prepare_training) or written into.
  // The same values as load() followed by to_device(Device::CPU, matrix_dtype), except an untied
  // embedding table held in the file as F32 or BF16: that stays in the file, exact, and each
  // lookup reads its rows from there (embedding_file.h), so that it is never resident.
  static Model load_for_inference(const std::string& model_dir, DType matrix_dtype);
  // Whether the embedding lookups read the table's rows from its file (load_for_inference).
  bool embedding_read_from_file() const { return embedding_file_ != nullptr; }
  // Writes config.json and model.safetensors (dtype F32 or BF16) in HF layout.
  void save(const std::string& model_dir, DType dtype = DType::F32) const;
  // What save() writes: each parameter's exact value in `dtype` under its file name and shape,
  // in host memory that no later step changes (a copy even for a model on the CPU).
  std::vector<std::pair<std::string, Tensor>> host_weights(DType dtype = DType::F32) const;
  // config.json and model.safetensors of `weights` (host_weights()) in model_dir, each file
  // written atomically: what save() does, callable without the model (a checkpoint's writer thread).
  static void write_model_dir(const std::string& model_dir, const ModelConfig& cfg,
                              const std::vector<std::pair<std::string, Tensor>>& weights);

  // Moves the parameters to `device`. Matrices used by matrix products and the embedding
  // lookup are stored as `matrix_dtype` (F32 or BF16; on the CPU also Q8, 8-bit blocks, for
  // inference); everything else stays F32.
  // On CUDA the activations then come from a planned workspace (core/workspace.h).
  void to_device(Device device, DType matrix_dtype = DType::F32);
  // Allocates every parameter directly on `device` (matrices as `matrix_dtype`): small
  // tensors are drawn on the CPU as init_random does, the matrices on the device with uniform
  // values of the same standard deviation (for speed runs of large models, where drawing
  // billions of values on the host would take minutes).
  void init_random_on(Device device, DType matrix_dtype, uint64_t seed);
  Device device() const { return device_; }
  DType matrix_dtype() const { return matrix_dtype_; }
  // The dtype of the KV caches this model's inference states hold (state_options_for,
  // infer/generate.h). By default F32 with F32 matrices (exact) and BF16 with BF16 or Q8 ones
  // (half the cache, keys and values rounded to nearest even; on CUDA this is the weights' dtype,
  // as it always was); set_kv_dtype (F32 or BF16) overrides the default.
  DType kv_dtype() const;
  void set_kv_dtype(DType kv_dtype);
  // Bytes of the parameters as stored now.
  int64_t parameter_bytes() const;
  // Bytes of the planned activation workspace (0 on the CPU).
  size_t workspace_bytes() const { return workspace_ ? workspace_->capacity() : 0; }
  uint64_t workspace_generation() const { return workspace_ ? workspace_->generation() : 0; }

  // Profiling: while on, forward waits for the device after each stage and adds the stage's
  // wall time to profile() under "embedding", "norm", "mixer M|*|-", "residual add", "head".
  // Slows every call; never on in a captured step.
  void set_profiling(bool on) { profiling_ = on; }
  std::map<std::string, double>& profile() { return profile_; }

  // ids: I32 [B, T] -> logits [B, T, V] (or [B, 1, V] with last_only), on the model's device.
  // With `state`, the tokens continue the sequences held in it (prefill or decode) and the
  // state advances; a multi-token step needs the sequences in lockstep, a one-token step lets
  // each continue at its own position. On CUDA the logits live in the workspace and are
  // valid until the next forward call. `seq_idx` (I32 [B, T], without `state`): document ids of
  // packed sequences, masked and reset as train_step does (the trainer's validation).
  Tensor forward(const Tensor& ids, SequenceState* state = nullptr, bool last_only = false, const Tensor* seq_idx = nullptr);

  // ---- training ----
  // Places the model for training on `device`: parameters F32, gradient buffers F32 zeros, and
  // with matrix_dtype BF16 (CUDA only) mixed precision: each matrix keeps an F32 master
  // (ParamRef::master, what the optimizer updates and save() writes) and the ops read its BF16
  // rounding. Activations then come from a planned workspace.
  void prepare_training(Device device, DType matrix_dtype = DType::F32);
  // Gradient buffers for every parameter on the model's device, zero-filled (once; zero_grads()
  // per optimizer step). prepare_training() does this too.
  void allocate_grads();
  // Zeroes every gradient, lazily (ops/deferred_zero.h): the first weight-gradient GEMM writes its
  // product instead of adding it onto zeros, and any op that names a gradient fills it first.
  // train_step ends with every gradient written or filled; to read the bytes without an op or
  // train_step in between, call settle_grads() first.
  void zero_grads();
  void settle_grads();
  // Forward, mean cross-entropy over targets != -1, and backward for one micro-batch:
  // ids, targets I32 [B, T] (host or device); seq_idx I32 [B, T] document ids of packed sequences
  // (or null). Gradients of grad_scale * mean loss accumulate into the parameters' grads. With
  // `recompute`, layers keep only their inputs and recompute the rest during backward. The
  // logits are never held for the whole batch: the head and the loss run over row chunks.
  ops::CrossEntropyResult train_step(const Tensor& ids, const Tensor& targets, const Tensor* seq_idx, float grad_scale = 1.0f,
                                     bool recompute = false);
  // With `kinds` (KeepKinds flags; not with recompute), train_step also keeps those activations
  // that backward would otherwise recompute (every block's norm output, the MLP's activation,
  // Mamba-2's gated norm and conv outputs): fewer passes over memory for more activation memory.
  // None by default (the least memory that does not recompute the products).
  void set_keep_activations(unsigned kinds) { keep_activations_ = kinds; }
  // Model FLOPs of one training token (forward + backward) at sequence length seq_len, counted as
  // the peers count them (bench/NOTES.md, "Training FLOPs"): 6 per matrix parameter (all but the
  // embedding table; a tied head counts once as the head), causal attention's score and value
  // products, and the chunked SSD's intra-chunk and state products.
  double training_flops_per_token(int64_t seq_len) const;
  // Called during train_step's backward with each range [first, end) of params() whose gradients
  // are final for this micro-batch: the final norm and head, then each block from the last,
  // then the embedding. A data-parallel optimizer starts reducing them while backward goes on.
  // Empty (the default): no calls.
  using GradsReadyHook = std::function<void(size_t first, size_t end)>;
  void set_grads_ready_hook(GradsReadyHook hook) { grads_ready_ = std::move(hook); }
  // Peak bytes of the planned activation memory so far (0 before the first pass).
  size_t workspace_peak() const { return workspace_ ? workspace_->peak() : 0; }

 private:
  static void check_matrix_dtype(Device device, DType matrix_dtype);
  // Stage timing (set_profiling): adds the time since t_prev to profile_[name] (nothing for "")
  // after waiting for the device, and moves t_prev on. A no-op when profiling is off.
  void stage_mark(const char* name, double& t_prev);
  // The precision of the mixers' matrix products (LayerContext::compute_dtype).
  DType compute_dtype() const { return device_ == Device::CUDA ? matrix_dtype_ : DType::F32; }

  struct Block {
    char kind;  // 'M', '*' or '-'
    Norm norm;
    std::unique_ptr<Mixer> mixer;
  };

  ModelConfig cfg_;
  // Heap-held so that params_ (pointers to these) stays valid when the Model is moved.
  std::unique_ptr<Weight> embedding_ = std::make_unique<Weight>();  // [V, D]
  std::shared_ptr<const EmbeddingFile> embedding_file_;  // where lookups read embedding_'s rows, when set
  std::vector<Block> blocks_;
  std::unique_ptr<Norm> final_norm_;
  std::unique_ptr<Weight> head_ = std::make_unique<Weight>();  // [V, D] (untied)
  ParamList params_;
  std::vector<size_t> block_first_param_;  // params() index of each block's first parameter, then of the final norm's
  GradsReadyHook grads_ready_;
  Device device_ = Device::CPU;
  DType matrix_dtype_ = DType::F32;
  std::optional<DType> kv_dtype_;  // set_kv_dtype's choice; unset: kv_dtype()'s default
  std::unique_ptr<Workspace> workspace_;  // CUDA: planned activation memory
  bool profiling_ = false;
  unsigned keep_activations_ = 0;  // KeepKinds
  std::map<std::string, double> profile_;  // seconds per stage
};

}  // namespace mambalm
