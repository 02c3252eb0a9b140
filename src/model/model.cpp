#include "model/model.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "config/hf_config.h"
#include "config/pattern.h"
#include "core/device.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/attention.h"
#include "model/embedding_file.h"
#include "model/hf_names.h"
#include "model/init.h"
#include "model/mamba1.h"
#include "model/mamba2.h"
#include "model/mlp.h"
#include "model/weight_storage.h"
#include "ops/ops.h"

namespace mambalm {

Model::Model(ModelConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.validate("config");
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size;
  // Decayed, as Megatron decays every tensor of two or more dimensions (optimizer/__init__.py).
  params_.push_back(param(hf_embedding_name(cfg_), *embedding_, {V, D}, Init::Normal, true));
  for (int64_t l = 0; l < cfg_.n_layers(); ++l) {
    char kind = cfg_.pattern[static_cast<size_t>(l)];
    std::unique_ptr<Mixer> mixer;
    if (kind == kMambaSymbol && cfg_.mamba_version == 2) mixer = std::make_unique<Mamba2Mixer>(cfg_.mamba2, D, cfg_.norm_eps);
    else if (kind == kMambaSymbol) mixer = std::make_unique<Mamba1Mixer>(cfg_.mamba1, D);
    else if (kind == kAttentionSymbol) mixer = std::make_unique<Attention>(cfg_.attention, D);
    else mixer = std::make_unique<Mlp>(cfg_.mlp, D);
    blocks_.push_back(Block{kind, Norm(cfg_.norm, D, cfg_.norm_eps), std::move(mixer)});
  }
  // Parameter references point into blocks_, which no longer grows.
  for (int64_t l = 0; l < cfg_.n_layers(); ++l) {
    Block& b = blocks_[static_cast<size_t>(l)];
    BlockNames names = hf_block_names(cfg_, l);
    block_first_param_.push_back(params_.size());
    for (ParamRef& p : b.norm.params(names.norm)) params_.push_back(p);
    for (ParamRef& p : b.mixer->params(names.mixer)) params_.push_back(p);
  }
  final_norm_ = std::make_unique<Norm>(cfg_.norm, D, cfg_.norm_eps);
  block_first_param_.push_back(params_.size());
  for (ParamRef& p : final_norm_->params(hf_final_norm_prefix(cfg_))) params_.push_back(p);
  if (!cfg_.tie_embeddings) params_.push_back(param(hf_head_name(), *head_, {V, D}, Init::Normal, true));
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const ParamRef& p : params_) n += shape_numel(p.shape);
  return n;
}

void Model::init_random(uint64_t seed) {
  Rng root(seed);
  uint64_t index = 0;
  for (ParamRef& p : params_) {
    *p.tensor = Tensor::empty(p.shape);
    Rng rng = root.fork(++index);  // one stream per tensor: adding a layer does not reshuffle others
    init_parameter_threaded(p, cfg_, rng);
  }
  embedding_file_ = nullptr;
}

void Model::save(const std::string& model_dir, DType dtype) const {
  write_model_dir(model_dir, cfg_, host_weights(dtype));
}

void Model::write_model_dir(const std::string& model_dir, const ModelConfig& cfg,
                            const std::vector<std::pair<std::string, Tensor>>& weights) {
  std::filesystem::create_directories(model_dir);
  io::write_safetensors((std::filesystem::path(model_dir) / "model.safetensors").string(), weights, {{"format", "pt"}});
  save_model_config(cfg, model_dir);
}

std::vector<std::pair<std::string, Tensor>> Model::host_weights(DType dtype) const {
  check(dtype == DType::F32 || dtype == DType::BF16, "save", "weights are written as F32 or BF16");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const ParamRef& p : params_) {
    check(p.tensor->defined(), "save", "parameter '" + p.name + "' was never initialised or loaded");
    const Tensor& value = exact_value(p);
    Tensor host = stored_as(to_host(value), dtype);
    if (value.device() == Device::CPU && host.raw() == value.raw()) host = host.clone();  // the live tensor itself
    tensors.emplace_back(p.name, host.reshape(p.file_shape));
  }
  return tensors;
}

namespace {

Tensor on_device(const Tensor& t, Device device) { return t.device() == device ? t : to_device(t, device); }

}  // namespace

void Model::check_matrix_dtype(Device device, DType matrix_dtype) {
  check(matrix_dtype == DType::F32 || (matrix_dtype == DType::BF16 && device == Device::CUDA), "model",
        "weights are F32, or BF16 on CUDA (" + dtype_name(matrix_dtype) + " requested)");
}

void Model::to_device(Device device, DType matrix_dtype) {
  // Inference placement: on the CPU the matrices may also be BF16 or Q8 (8-bit blocks), read by
  // the CPU backend's own GEMV kernels; training stays F32 there (check_matrix_dtype).
  check(matrix_dtype == DType::F32 || matrix_dtype == DType::BF16 || (matrix_dtype == DType::Q8 && device == Device::CPU),
        "model", "weights are F32 or BF16, or Q8 on the CPU (" + dtype_name(matrix_dtype) + " requested on " +
                     (device == Device::CUDA ? "CUDA" : "the CPU") + ")");
  for (ParamRef& p : params_) {
    check(p.tensor->defined(), "model", "parameter '" + p.name + "' was never initialised or loaded");
    const DType want = is_matrix(p) ? matrix_dtype : DType::F32;
    Tensor host = on_device(exact_value(p), Device::CPU);
    if (p.master) *p.master = Tensor();
    host = stored_as(host, want);
    *p.tensor = on_device(host, device);
  }
  embedding_file_ = nullptr;  // the table is now the tensor itself
  device_ = device;
  matrix_dtype_ = matrix_dtype;
  workspace_ = device == Device::CUDA ? std::make_unique<Workspace>(Device::CUDA) : nullptr;
}

DType Model::kv_dtype() const {
  if (kv_dtype_) return *kv_dtype_;
  return matrix_dtype_ == DType::F32 ? DType::F32 : DType::BF16;
}

void Model::set_kv_dtype(DType kv_dtype) {
  check(kv_dtype == DType::F32 || kv_dtype == DType::BF16, "model",
        "the KV cache is F32 or BF16 (" + dtype_name(kv_dtype) + " requested)");
  kv_dtype_ = kv_dtype;
}

void Model::init_random_on(Device device, DType matrix_dtype, uint64_t seed) {
  check_matrix_dtype(device, matrix_dtype);
  Rng root(seed);
  uint64_t index = 0;
  for (ParamRef& p : params_) {
    Rng rng = root.fork(++index);
    if (is_matrix(p) && device == Device::CUDA) {
      // Uniform on [-a, a] has standard deviation a / sqrt(3): match init_parameter's std.
      const double std = init_std(p, cfg_);
      *p.tensor = empty_cuda(p.shape, matrix_dtype);
      fill_uniform_cuda(*p.tensor, rng.next_u64(), static_cast<float>(-std * std::sqrt(3.0)), static_cast<float>(std * std::sqrt(3.0)));
      continue;
    }
    Tensor host = Tensor::empty(p.shape);
    *p.tensor = host;
    init_parameter_threaded(p, cfg_, rng);
    if (is_matrix(p) && matrix_dtype != DType::F32) host = host.to(matrix_dtype);
    *p.tensor = on_device(host, device);
  }
  embedding_file_ = nullptr;
  device_ = device;
  matrix_dtype_ = matrix_dtype;
  workspace_ = device == Device::CUDA ? std::make_unique<Workspace>(Device::CUDA) : nullptr;
}

int64_t Model::parameter_bytes() const {
  int64_t n = 0;
  for (const ParamRef& p : params_)
    if (p.tensor->defined()) n += static_cast<int64_t>(p.tensor->nbytes());
  return n;
}

Tensor Model::forward(const Tensor& ids_in, SequenceState* state, bool last_only, const Tensor* seq_idx_in) {
  MAMBALM_CHECK(ids_in.dtype() == DType::I32 && ids_in.rank() == 2, "forward", "token ids must be I32 [B, T], got " + shape_str(ids_in.shape()));
  const int64_t B = ids_in.dim(0), T = ids_in.dim(1), D = cfg_.d_model, V = cfg_.vocab_size;
  MAMBALM_CHECK(T > 0, "forward", "no tokens");
  Workspace* ws = workspace_.get();
  if (ws) ws->reset();
  auto empty = [ws](const Shape& shape, DType dtype = DType::F32) { return ws ? ws->empty(shape, dtype) : Tensor::scratch(shape, dtype); };
  Tensor ids = ids_in;  // [B, T] on the model's device
  if (ids.device() != device_) {
    ids = empty(ids_in.shape(), DType::I32);
    copy_tensor(ids_in, ids);
  }

  Tensor seq_idx;  // I32 [B, T] on the model's device, when given
  if (seq_idx_in) {
    MAMBALM_CHECK(!state, "forward", "document ids are for whole packed sequences, not for a state's continuation");
    MAMBALM_CHECK(seq_idx_in->dtype() == DType::I32 && seq_idx_in->shape() == ids_in.shape(), "forward",
                  "document ids must be I32 of the ids' shape " + shape_str(ids_in.shape()));
    seq_idx = *seq_idx_in;
    if (seq_idx.device() != device_) {
      seq_idx = empty(seq_idx_in->shape(), DType::I32);
      copy_tensor(*seq_idx_in, seq_idx);
    }
  }

  int64_t pos0 = 0;
  if (state) {
    MAMBALM_CHECK(state->batch() == B, "forward", "state holds " + std::to_string(state->batch()) + " sequences, input has " + std::to_string(B));
    MAMBALM_CHECK(state->device() == device_, "forward", "the state and the model are on different devices");
    if (T > 1) pos0 = state->position();  // lockstep (throws otherwise)
    state->reserve_kv(state->max_position() + T);
    state->sync_positions(T);
  }

  // Stage timing for profiling (model.h, set_profiling); a no-op otherwise.
  double t_prev = 0.0;
  auto stage = [&](const char* name) { stage_mark(name, t_prev); };
  stage("");

  Tensor h = empty({B, T, D});  // residual stream
  if (embedding_file_) {
    embedding_file_->lookup(ids, h);
  } else {
    ops::embedding(ids, embedding_->value, h);
  }
  stage("embedding");
  // Each block's residual add is fused with the next norm (the final norm after the last
  // block, unless only the last rows need it).
  const bool last_rows_only = last_only && T > 1;
  Tensor normed = empty({B, T, D});  // pre-norm output
  Tensor mixed = empty({B, T, D});   // mixer output
  blocks_.front().norm.forward(h, normed);
  stage("norm");
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = blocks_[l];
    LayerContext ctx;
    ctx.state = state ? &state->layer(static_cast<int64_t>(l)) : nullptr;
    ctx.pos0 = pos0;
    ctx.positions = state ? &state->positions() : nullptr;
    ctx.lengths = state ? &state->lengths() : nullptr;
    ctx.seq_idx = seq_idx_in ? &seq_idx : nullptr;
    ctx.workspace = ws;
    ctx.compute_dtype = compute_dtype();
    ctx.low_precision_weights = matrix_dtype_ != DType::F32;
    const size_t mark = ws ? ws->mark() : 0;
    b.mixer->forward(normed, ctx, mixed);
    stage(b.kind == kMambaSymbol ? "mixer M" : b.kind == kAttentionSymbol ? "mixer *" : "mixer -");  // no string built per layer
    if (l + 1 < blocks_.size()) blocks_[l + 1].norm.add_forward(h, mixed, normed);
    else if (!last_rows_only) final_norm_->add_forward(h, mixed, normed);  // normed = Norm_f(h_L)
    else ops::add(h, mixed, h);
    stage("residual add + norm");
    if (ws) ws->release(mark);  // the mixer's scratch is dead; the next layer reuses its bytes
  }
  if (state) state->advance(T);

  Tensor final_h = normed;  // [B, T', D]: Norm_f(h_L) at the rows that need logits
  if (last_rows_only) {
    Tensor last = empty({B, 1, D});
    Tensor flat = h.reshape({B * T, D});
    for (int64_t b = 0; b < B; ++b) {
      Tensor row = flat.slice0(b * T + T - 1, b * T + T);
      Tensor dst = last.reshape({B, D}).slice0(b, b + 1);
      ops::copy_rows(row, 1, dst);
    }
    final_h = empty({B, 1, D});
    final_norm_->forward(last, final_h);
  }
  const int64_t Tout = final_h.dim(1);
  Tensor logits = empty({B, Tout, V});
  ops::linear(final_h, cfg_.tie_embeddings ? embedding_->value : head_->value, nullptr, logits);
  stage("head");
  return logits;
}

void Model::stage_mark(const char* name, double& t_prev) {
  if (!profiling_) return;
  if (device_ == Device::CUDA) cuda_synchronize();
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (*name) profile_[name] += t - t_prev;
  t_prev = t;
}

}  // namespace mambalm
