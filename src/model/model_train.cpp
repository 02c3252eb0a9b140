// The model's training side: placement for training (mixed precision), gradient buffers, and one
// micro-batch of forward + loss + backward over planned memory.
//
// Memory is a stack (core/workspace.h) that the step walks like the layers: the tensors that live
// through the whole step first (residual gradients, the per-row losses), then for each block its
// input, its mixer's input and the activations its mixer keeps, pushed in layer order; the head
// and the loss run over row chunks whose logits are popped after each chunk; the backward pops the
// blocks in reverse, so each block's activations and its backward scratch go together.
#include <algorithm>
#include <cstring>

#include "config/pattern.h"
#include "core/device.h"
#include "core/error.h"
#include "model/model.h"
#include "ops/deferred_zero.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

namespace {

// Logits of one head chunk stay under this many floats (512 MiB): the head and the loss never
// hold [B*T, V] at once, which at a 256K vocabulary would be 4 GiB per 4K tokens.
constexpr int64_t kHeadChunkFloats = int64_t(1) << 27;

}  // namespace

void Model::prepare_training(Device device, DType matrix_dtype) {
  check_matrix_dtype(device, matrix_dtype);
  for (ParamRef& p : params_) {
    check(p.tensor->defined(), "model", "parameter '" + p.name + "' was never initialised or loaded");
    // The F32 value on the device; parameters already there (init_random_on) are converted in
    // place rather than through the host.
    const Tensor& src = exact_value(p);
    Tensor exact;
    if (src.device() == device && src.dtype() == DType::F32) {
      exact = src;
    } else if (src.device() == device) {
      exact = empty_on(device, p.shape);
      ops::convert(src, exact);
    } else {
      Tensor host = to_host(src);
      if (host.dtype() != DType::F32) host = host.to(DType::F32);
      exact = device == Device::CPU ? host : mambalm::to_device(host, device);
    }
    if (is_matrix(p) && matrix_dtype == DType::BF16) {
      *p.master = exact;                                // what the optimizer updates
      *p.tensor = empty_on(device, p.shape, DType::BF16);  // what the ops read
      ops::convert(exact, *p.tensor);
    } else {
      *p.master = Tensor();
      *p.tensor = exact;
    }
  }
  device_ = device;
  matrix_dtype_ = matrix_dtype;
  for (ParamRef& p : params_) {
    ops::drop_deferred_zero(*p.grad);
    *p.grad = Tensor();
  }
  allocate_grads();
  workspace_ = std::make_unique<Workspace>(device);
}

double Model::training_flops_per_token(int64_t seq_len) const {
  double matrix = 0;  // parameters of the matrix products, per token 2 (forward) + 4 (backward) FLOPs each
  for (const ParamRef& p : params_)
    if (is_matrix(p) && p.tensor != &embedding_->value) matrix += static_cast<double>(shape_numel(p.shape));
  if (cfg_.tie_embeddings) matrix += static_cast<double>(cfg_.vocab_size) * static_cast<double>(cfg_.d_model);
  const double T = static_cast<double>(seq_len);
  const double n_att = static_cast<double>(count_symbol(cfg_.pattern, kAttentionSymbol));
  const double n_mamba = static_cast<double>(count_symbol(cfg_.pattern, kMambaSymbol));
  // Causal QK^T and PV: 4 T H Dh FLOPs per token forward over all keys, half of them masked,
  // times 3 for forward + backward.
  const double attention = 6.0 * n_att * T * static_cast<double>(cfg_.attention.n_heads * cfg_.attention.head_dim);
  double ssm = 0;
  if (cfg_.mamba_version == 2) {
    // Per token and layer: C B^T within the chunk (2 Q N G), its product with x (2 Q P H), and
    // the states in and out (4 N P H); times 3 for forward + backward.
    const Mamba2Config& m = cfg_.mamba2;
    const double Q = static_cast<double>(m.chunk_size), N = static_cast<double>(m.d_state);
    const double G = static_cast<double>(m.n_groups), P = static_cast<double>(m.head_dim), H = static_cast<double>(m.n_heads);
    ssm = 3.0 * n_mamba * (2 * Q * N * G + 2 * Q * P * H + 4 * N * P * H);
  } else {
    // The selective scan: about 9 FLOPs per channel and state element (decay, update, output).
    ssm = 3.0 * n_mamba * 9.0 * static_cast<double>(cfg_.mamba1.d_inner * cfg_.mamba1.d_state);
  }
  return 6.0 * matrix + attention + ssm;
}

void Model::allocate_grads() {
  for (ParamRef& p : params_)
    if (!p.grad->defined()) *p.grad = zeros_on(device_, p.shape);
}

void Model::zero_grads() {
  for (ParamRef& p : params_) ops::defer_zero_fill(*p.grad);
}

void Model::settle_grads() {
  for (ParamRef& p : params_) ops::settle_deferred_zero(*p.grad);
}

Model::~Model() {
  for (ParamRef& p : params_)
    if (p.grad) ops::drop_deferred_zero(*p.grad);
}

ops::CrossEntropyResult Model::train_step(const Tensor& ids_in, const Tensor& targets_in, const Tensor* seq_idx_in,
                                          float grad_scale, bool recompute) {
  MAMBALM_CHECK(ids_in.dtype() == DType::I32 && ids_in.rank() == 2, "train",
                "token ids must be I32 [B, T], got " + shape_str(ids_in.shape()));
  check(targets_in.dtype() == DType::I32 && targets_in.shape() == ids_in.shape(), "train",
        "targets must be I32 with the shape of the ids");
  check(!seq_idx_in || (seq_idx_in->dtype() == DType::I32 && seq_idx_in->shape() == ids_in.shape()), "train",
        "document ids must be I32 with the shape of the ids");
  check(params_.front().grad->defined(), "train", "prepare_training() (or allocate_grads()) was not called");
  const int64_t B = ids_in.dim(0), T = ids_in.dim(1), D = cfg_.d_model, V = cfg_.vocab_size, rows = B * T;
  Workspace* ws = workspace_.get();
  if (ws) ws->reset();
  // Stage timing for profiling (model.h, set_profiling); a no-op otherwise.
  double t_prev = 0.0;
  auto stage = [&](const char* name) { stage_mark(name, t_prev); };
  auto kind_name = [](char kind, bool fwd) {  // no string built per layer
    if (kind == kMambaSymbol) return fwd ? "forward M" : "backward M";
    if (kind == kAttentionSymbol) return fwd ? "forward *" : "backward *";
    return fwd ? "forward -" : "backward -";
  };
  stage("");
  auto empty = [ws](const Shape& shape, DType dtype = DType::F32) { return ws ? ws->empty(shape, dtype) : Tensor::scratch(shape, dtype); };
  auto on_model_device = [&](const Tensor& t) {
    if (t.device() == device_) return t;
    Tensor d = empty(t.shape(), t.dtype());
    copy_tensor(t, d);
    return d;
  };

  // The loss is the mean over the targets that are not ignored, counted on the host.
  const Tensor targets_host = to_host(targets_in);
  ops::CrossEntropyResult result;
  for (int64_t i = 0; i < rows; ++i) result.n_valid += targets_host.data<int32_t>()[i] != -1;
  const float row_scale = result.n_valid > 0 ? grad_scale / static_cast<float>(result.n_valid) : 0.0f;

  // Tensors that live through the whole step.
  const Tensor ids = on_model_device(ids_in);                   // I32 [B, T]
  const Tensor targets = on_model_device(targets_in);           // I32 [B, T]
  Tensor seq_dev;                                               // I32 [B, T]
  if (seq_idx_in) seq_dev = on_model_device(*seq_idx_in);
  const Tensor* seq_idx = seq_idx_in ? &seq_dev : nullptr;
  Tensor loss_rows = empty({rows});                              // -log p(target) per row
  Tensor dh = empty({B, T, D});                                  // d loss / d h_l, walking down
  Tensor dmixer_in = empty({B, T, D});                           // d loss / d Norm_l(h_l)
  LayerContext ctx;
  ctx.seq_idx = seq_idx;
  ctx.workspace = ws;
  ctx.compute_dtype = compute_dtype();
  // The norms' outputs feed only matrix products: in mixed precision they are written in bf16,
  // which every projection would otherwise round on its own (attention's three, forward and
  // backward). The residual stream h and every gradient stay fp32.
  const DType norm_out = ctx.activation_dtype();
  Tensor normed = empty({B, T, D}, norm_out);                    // Norm_l(h_l), the mixers' input, one at a time
  ctx.keep = recompute ? 0u : keep_activations_;
  const bool keep = (ctx.keep & kKeepNorms) != 0;  // the block norms' outputs

  // Forward, keeping every block's input h_l and (unless recomputing) each mixer's activations.
  // A mixer's input Norm_l(h_l) is kept only with kKeepNorms: otherwise backward recomputes it
  // from h_l (a cheap pass that saves D values per token and layer).
  std::vector<Tensor> h(blocks_.size() + 1);  // h[l]: [B, T, D] residual stream entering block l
  std::vector<LayerCache> caches(blocks_.size());
  std::vector<size_t> block_mark(blocks_.size());  // the stack above this belongs to block l
  h[0] = empty({B, T, D});
  ops::embedding(ids, embedding_->value, h[0]);
  stage("embedding");
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = blocks_[l];
    block_mark[l] = ws ? ws->mark() : 0;
    h[l + 1] = empty({B, T, D});
    Tensor block_normed = keep ? empty({B, T, D}, norm_out) : normed;  // Norm_l(h_l), kept with keep_activations
    const size_t scratch = ws ? ws->mark() : 0;
    b.norm.forward(h[l], block_normed);
    LayerContext fwd = ctx;
    fwd.cache = &caches[l];
    fwd.residual = &h[l];  // h_{l+1} = h_l + Mixer_l(Norm_l(h_l)), the add in the mixer's last GEMM
    b.mixer->forward(block_normed, fwd, h[l + 1]);
    if (!keep) caches[l].x = Tensor{};  // recomputed in backward (the buffer is the next layer's)
    if (recompute) {
      caches[l] = LayerCache{};  // keep nothing: the norm output is recomputed from h[l] too
      if (ws) ws->release(scratch);
    }
    stage(kind_name(b.kind, true));
  }

  // Head and loss over row chunks: logits, per-row loss and d loss / d logits in place, then
  // the chunk's share of d loss / d Norm_f(h_L) and of the head's gradient.
  const size_t head_mark = ws ? ws->mark() : 0;
  Tensor final_h = empty({B, T, D}, norm_out);  // Norm_f(h_L), the head's input
  final_norm_->forward(h.back(), final_h);
  Tensor dfinal = empty({B, T, D});
  Tensor& head = cfg_.tie_embeddings ? embedding_->value : head_->value;
  Tensor& head_grad = cfg_.tie_embeddings ? embedding_->grad : head_->grad;
  const int64_t chunk = std::clamp<int64_t>(kHeadChunkFloats / V, 1, rows);
  Tensor final_rows = final_h.reshape({rows, D}), dfinal_rows = dfinal.reshape({rows, D});
  Tensor target_rows = targets.reshape({rows});
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t r1 = std::min(rows, r0 + chunk);
    const size_t chunk_mark = ws ? ws->mark() : 0;
    Tensor x = final_rows.slice0(r0, r1), dx = dfinal_rows.slice0(r0, r1);
    Tensor logits = empty({r1 - r0, V});  // fp32, then (fp32 training) d loss / d logits in place
    ops::linear(x, head, nullptr, logits);
    Tensor loss_chunk = loss_rows.slice0(r0, r1);
    // In mixed precision d loss / d logits is written in bf16, the head GEMM's operand (the same
    // rounding its fp32 -> bf16 conversion made, without that pass over the chunk).
    Tensor dlogits = norm_out == DType::BF16 ? empty({r1 - r0, V}, DType::BF16) : logits;
    ops::cross_entropy(logits, target_rows.slice0(r0, r1), row_scale, loss_chunk, &dlogits);
    ops::linear_backward(dlogits, x, head, &dx, &head_grad, nullptr);
    if (ws) ws->release(chunk_mark);
  }

  // Backward: final norm -> blocks in reverse -> embedding.
  final_norm_->backward(h.back(), dfinal, dh);
  if (ws) ws->release(head_mark);
  stage("head + loss");
  // Gradients final from here on (for this micro-batch): see set_grads_ready_hook.
  auto grads_ready = [&](size_t first, size_t end) {
    if (!grads_ready_ || first >= end) return;
    for (size_t i = first; i < end; ++i) ops::settle_deferred_zero(*params_[i].grad);  // zero if no op wrote it
    grads_ready_(first, end);
  };
  grads_ready(block_first_param_.back(), params_.size());  // final norm, head
  for (size_t l = blocks_.size(); l-- > 0;) {
    Block& b = blocks_[l];
    if (!caches[l].x.defined()) {
      caches[l].x = empty({B, T, D}, norm_out);  // the mixer's input Norm_l(h_l), again
      b.norm.forward(h[l], caches[l].x);
    }
    b.mixer->backward(dh, ctx, caches[l], dmixer_in);
    caches[l] = LayerCache{};
    // the residual path carries dh through unchanged; the norm's share is added onto it
    b.norm.backward(h[l], dmixer_in, dh, /*accumulate=*/true);
    if (ws) ws->release(block_mark[l]);  // block l's input to its successor, activations, scratch
    stage(kind_name(b.kind, false));
    grads_ready(block_first_param_[l], block_first_param_[l + 1]);
  }
  ops::embedding_backward(ids, dh, embedding_->grad);
  stage("embedding backward");
  grads_ready(0, 1);  // the embedding (with a tied head, its gradient was still growing until now)
  settle_grads();  // a gradient that no op of this step touched is zero, as zero_grads promised

  const Tensor losses = to_host(loss_rows);  // waits for the step
  for (int64_t i = 0; i < rows; ++i) result.sum_loss += losses.f32()[i];
  result.mean_loss = result.n_valid > 0 ? result.sum_loss / static_cast<double>(result.n_valid) : 0.0;
  return result;
}

}  // namespace mambalm
