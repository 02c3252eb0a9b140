#include "convert/megatron_layout.h"

#include <cstring>

#include "config/pattern.h"
#include "core/error.h"
#include "model/hf_names.h"

namespace mambalm::convert {

namespace {

struct TableBuilder {
  std::vector<MegatronTensor>& out;

  void add(std::string name, Shape shape, TpSplit split, std::string hf_name, std::vector<int64_t> blocks = {}) {
    MegatronTensor t;
    t.name = std::move(name);
    t.split = split;
    if (split == TpSplit::Rows) t.blocks = blocks.empty() ? std::vector<int64_t>{shape[0]} : std::move(blocks);
    t.hf_names = {std::move(hf_name)};
    t.hf_shapes = {shape};
    t.shape = std::move(shape);
    out.push_back(std::move(t));
  }

  // linear_qkv (weight [rows, D] or bias [rows]): query groups of [q heads, k, v] rows.
  void add_qkv(const std::string& name, const AttentionConfig& a, int64_t d_model, const std::string& hf_prefix, const std::string& suffix) {
    const bool weight = suffix == "weight";
    const int64_t q = a.n_heads * a.head_dim, kv = a.n_kv_heads * a.head_dim;
    auto shape = [&](int64_t rows) { return weight ? Shape{rows, d_model} : Shape{rows}; };
    MegatronTensor t;
    t.name = name;
    t.shape = shape(q + 2 * kv);
    t.split = TpSplit::Rows;
    t.blocks = {q + 2 * kv};
    t.hf_names = {hf_prefix + "q_proj." + suffix, hf_prefix + "k_proj." + suffix, hf_prefix + "v_proj." + suffix};
    t.hf_shapes = {shape(q), shape(kv), shape(kv)};
    t.qkv_groups = a.n_kv_heads;
    out.push_back(std::move(t));
  }
};

// A block's pre-norm: its own module (local specs) or fused into the linear that follows (TE).
std::string norm_name(MegatronSpec spec, const std::string& layer, const char* local_module, const char* fused_linear,
                      const std::string& what) {
  if (spec == MegatronSpec::Local) return layer + local_module + "." + what;
  return layer + fused_linear + ".layer_norm_" + what;
}

void add_norm(TableBuilder& b, const ModelConfig& cfg, MegatronSpec spec, const std::string& layer, const char* local_module,
              const char* fused_linear, const std::string& hf_prefix) {
  b.add(norm_name(spec, layer, local_module, fused_linear, "weight"), {cfg.d_model}, TpSplit::Replicated, hf_prefix + "weight");
  if (cfg.norm == NormKind::LayerNorm1p)
    b.add(norm_name(spec, layer, local_module, fused_linear, "bias"), {cfg.d_model}, TpSplit::Replicated, hf_prefix + "bias");
}

void add_mamba2(TableBuilder& b, const ModelConfig& cfg, const std::string& layer, const std::string& hf) {
  const Mamba2Config& m = cfg.mamba2;
  const int64_t Di = m.d_inner, GN = m.n_groups * m.d_state, H = m.n_heads, C = m.conv_channels(), W = m.in_proj_width();
  const std::string mx = layer + "mixer.";
  // Each rank's in_proj rows are its own [z, x, B, C, dt] slices (mamba_mixer.py splits the
  // local projection with d_inner_local, ngroups_local and nheads_local); conv1d's are [x, B, C].
  const std::vector<int64_t> in_blocks{Di, Di, GN, GN, H}, conv_blocks{Di, GN, GN};
  b.add(mx + "in_proj.weight", {W, cfg.d_model}, TpSplit::Rows, hf + "in_proj.weight", in_blocks);
  if (m.proj_bias) b.add(mx + "in_proj.bias", {W}, TpSplit::Rows, hf + "in_proj.bias", in_blocks);
  b.add(mx + "conv1d.weight", {C, 1, m.d_conv}, TpSplit::Rows, hf + "conv1d.weight", conv_blocks);
  if (m.conv_bias) b.add(mx + "conv1d.bias", {C}, TpSplit::Rows, hf + "conv1d.bias", conv_blocks);
  b.add(mx + "dt_bias", {H}, TpSplit::Rows, hf + "dt_bias");
  b.add(mx + "A_log", {H}, TpSplit::Rows, hf + "A_log");
  b.add(mx + "D", {H}, TpSplit::Rows, hf + "D");
  b.add(mx + "norm.weight", {Di}, TpSplit::Rows, hf + "norm.weight");
  b.add(mx + "out_proj.weight", {cfg.d_model, Di}, TpSplit::Columns, hf + "out_proj.weight");
  if (m.proj_bias) b.add(mx + "out_proj.bias", {cfg.d_model}, TpSplit::Replicated, hf + "out_proj.bias");
}

void add_attention(TableBuilder& b, const ModelConfig& cfg, const std::string& layer, const std::string& hf) {
  const AttentionConfig& a = cfg.attention;
  const std::string sa = layer + "self_attention.";
  b.add_qkv(sa + "linear_qkv.weight", a, cfg.d_model, hf, "weight");
  if (a.bias) b.add_qkv(sa + "linear_qkv.bias", a, cfg.d_model, hf, "bias");
  b.add(sa + "linear_proj.weight", {cfg.d_model, a.n_heads * a.head_dim}, TpSplit::Columns, hf + "o_proj.weight");
  if (a.bias) b.add(sa + "linear_proj.bias", {cfg.d_model}, TpSplit::Replicated, hf + "o_proj.bias");
}

void add_mlp(TableBuilder& b, const ModelConfig& cfg, const std::string& layer, const std::string& hf) {
  const int64_t F = cfg.mlp.d_ff;
  b.add(layer + "mlp.linear_fc1.weight", {F, cfg.d_model}, TpSplit::Rows, hf + "up_proj.weight");
  if (cfg.mlp.bias) b.add(layer + "mlp.linear_fc1.bias", {F}, TpSplit::Rows, hf + "up_proj.bias");
  b.add(layer + "mlp.linear_fc2.weight", {cfg.d_model, F}, TpSplit::Columns, hf + "down_proj.weight");
  if (cfg.mlp.bias) b.add(layer + "mlp.linear_fc2.bias", {cfg.d_model}, TpSplit::Replicated, hf + "down_proj.bias");
}

void check_expressible(const ModelConfig& cfg) {
  const std::string where = "megatron layout";
  const bool stack = cfg.model_type == "nemotron_h", gpt = cfg.model_type == "nemotron";
  check(stack || gpt, where, "model_type " + cfg.model_type + " has no Megatron-LM counterpart here",
        "Megatron's MambaModel is nemotron_h (Mamba-2, attention, MLP layers) and its GPTModel nemotron (LayerNorm1p, squared ReLU)");
  check(cfg.mlp.activation != MlpActivation::SwiGLU, where, "gated (SwiGLU) MLPs are not converted",
        "linear_fc1 would hold [gate, up] per rank; only relu2 and gelu MLPs are supported");
  if (gpt) {
    check(cfg.norm == NormKind::LayerNorm1p, where, "a nemotron model must use LayerNorm1p");
    for (int64_t i = 0; i < cfg.n_layers(); ++i)
      check(cfg.pattern[static_cast<size_t>(i)] == (i % 2 == 0 ? kAttentionSymbol : kMlpSymbol), where,
            "a GPT model alternates attention and MLP blocks, pattern " + cfg.pattern);
  } else {
    check(cfg.norm == NormKind::RMSNorm, where, "a nemotron_h model must use RMSNorm");
    check(cfg.attention.rotary_dim == 0 || count_symbol(cfg.pattern, kAttentionSymbol) == 0, where,
          "Megatron's Mamba stack uses no position embedding");
    check(cfg.mamba2.norm_groups == cfg.mamba2.n_groups || count_symbol(cfg.pattern, kMambaSymbol) == 0, where,
          "Megatron's Mamba-2 mixer normalises per B/C group (norm_groups " + std::to_string(cfg.mamba2.norm_groups) + ", groups " +
              std::to_string(cfg.mamba2.n_groups) + ")");
  }
}

size_t row_bytes(const Tensor& t) { return t.nbytes() / static_cast<size_t>(t.dim(0)); }

const char* bytes_of(const Tensor& t) { return static_cast<const char*>(t.raw()); }
char* bytes_of(Tensor& t) { return static_cast<char*>(t.raw()); }

}  // namespace

std::vector<MegatronTensor> megatron_layout(const ModelConfig& cfg, MegatronSpec spec) {
  check_expressible(cfg);
  std::vector<MegatronTensor> table;
  TableBuilder b{table};
  const int64_t V = cfg.vocab_size, D = cfg.d_model;
  b.add("embedding.word_embeddings.weight", {V, D}, TpSplit::Rows, hf_embedding_name(cfg));
  if (cfg.model_type == "nemotron") {
    for (int64_t j = 0; j < cfg.n_layers() / 2; ++j) {
      const std::string layer = "decoder.layers." + std::to_string(j) + ".";
      const BlockNames attn = hf_block_names(cfg, 2 * j), mlp = hf_block_names(cfg, 2 * j + 1);
      add_norm(b, cfg, spec, layer, "input_layernorm", "self_attention.linear_qkv", attn.norm);
      add_attention(b, cfg, layer, attn.mixer);
      add_norm(b, cfg, spec, layer, "pre_mlp_layernorm", "mlp.linear_fc1", mlp.norm);
      add_mlp(b, cfg, layer, mlp.mixer);
    }
    b.add("decoder.final_layernorm.weight", {D}, TpSplit::Replicated, hf_final_norm_prefix(cfg) + "weight");
    b.add("decoder.final_layernorm.bias", {D}, TpSplit::Replicated, hf_final_norm_prefix(cfg) + "bias");
  } else {
    for (int64_t i = 0; i < cfg.n_layers(); ++i) {
      const std::string layer = "decoder.layers." + std::to_string(i) + ".";
      const BlockNames names = hf_block_names(cfg, i);
      const char symbol = cfg.pattern[static_cast<size_t>(i)];
      if (symbol == kMambaSymbol) {
        add_norm(b, cfg, spec, layer, "norm", "mixer.in_proj", names.norm);
        add_mamba2(b, cfg, layer, names.mixer);
      } else if (symbol == kAttentionSymbol) {
        add_norm(b, cfg, spec, layer, "input_layernorm", "self_attention.linear_qkv", names.norm);
        add_attention(b, cfg, layer, names.mixer);
      } else {
        add_norm(b, cfg, spec, layer, "pre_mlp_layernorm", "mlp.linear_fc1", names.norm);
        add_mlp(b, cfg, layer, names.mixer);
      }
    }
    b.add("decoder.final_norm.weight", {D}, TpSplit::Replicated, hf_final_norm_prefix(cfg) + "weight");
  }
  if (!cfg.tie_embeddings) b.add("output_layer.weight", {V, D}, TpSplit::Rows, hf_head_name());
  return table;
}

std::vector<std::string> extra_state_names(const ModelConfig& cfg, MegatronSpec spec) {
  check_expressible(cfg);
  std::vector<std::string> names;
  auto attention = [&](const std::string& layer) {
    names.push_back(layer + "self_attention.linear_qkv._extra_state");
    if (spec == MegatronSpec::TransformerEngine) names.push_back(layer + "self_attention.core_attention._extra_state");
    names.push_back(layer + "self_attention.linear_proj._extra_state");
  };
  auto mlp = [&](const std::string& layer) {
    for (const char* m : {"linear_fc1", "linear_fc2"}) names.push_back(layer + "mlp." + m + "._extra_state");
  };
  for (int64_t i = 0; i < cfg.n_layers(); ++i) {
    const bool gpt = cfg.model_type == "nemotron";
    const std::string layer = "decoder.layers." + std::to_string(gpt ? i / 2 : i) + ".";
    const char symbol = cfg.pattern[static_cast<size_t>(i)];
    if (symbol == kMambaSymbol) {
      for (const char* m : {"in_proj", "out_proj"}) names.push_back(layer + "mixer." + m + "._extra_state");
    } else if (symbol == kAttentionSymbol) {
      attention(layer);
    } else {
      mlp(layer);
    }
  }
  names.push_back("output_layer._extra_state");  // a module even when it shares the embedding's weight
  return names;
}

int64_t rank_share(int64_t global, int tp, const std::string& what) {
  check(global % tp == 0, what, std::to_string(global) + " rows or columns do not divide among " + std::to_string(tp) +
                                    " tensor-parallel ranks");
  return global / tp;
}

Tensor merge_ranks(const MegatronTensor& t, const std::vector<Tensor>& parts) {
  const int tp = static_cast<int>(parts.size());
  check(tp >= 1, t.name, "no tensor-parallel parts");
  const DType dtype = parts[0].dtype();
  for (const Tensor& p : parts) check(p.dtype() == dtype, t.name, "the ranks hold it in different dtypes");
  if (t.split == TpSplit::Replicated) {
    // Replicas are kept equal by Megatron (their gradients are all-reduced); a difference means
    // the shards are not from one checkpoint.
    for (int r = 1; r < tp; ++r)
      check(parts[static_cast<size_t>(r)].shape() == parts[0].shape() &&
                std::memcmp(parts[static_cast<size_t>(r)].raw(), parts[0].raw(), parts[0].nbytes()) == 0,
            t.name, "tensor-parallel rank " + std::to_string(r) + " holds a different copy of this replicated tensor",
            "the mp_rank_* files come from different checkpoints");
    return parts[0].clone();
  }
  Tensor whole = Tensor::empty(t.shape, dtype);
  if (t.split == TpSplit::Columns) {
    const int64_t rows = t.shape[0], cols = rank_share(t.shape[1], tp, t.name);
    const size_t elem = dtype_size(dtype), piece = static_cast<size_t>(cols) * elem;
    for (int r = 0; r < tp; ++r) {
      const Tensor& p = parts[static_cast<size_t>(r)];
      check(p.shape() == Shape{rows, cols}, t.name, "rank " + std::to_string(r) + " holds shape " + shape_str(p.shape()) +
                                                        ", expected " + shape_str({rows, cols}));
      for (int64_t i = 0; i < rows; ++i)
        std::memcpy(bytes_of(whole) + (static_cast<size_t>(i) * static_cast<size_t>(tp) + static_cast<size_t>(r)) * piece,
                    bytes_of(p) + static_cast<size_t>(i) * piece, piece);
    }
    return whole;
  }
  Shape part_shape = t.shape;
  part_shape[0] = rank_share(t.shape[0], tp, t.name);
  const size_t rb = row_bytes(whole);
  size_t whole_row = 0, local_row = 0;
  for (int64_t block : t.blocks) {
    const int64_t share = rank_share(block, tp, t.name);
    for (int r = 0; r < tp; ++r) {
      const Tensor& p = parts[static_cast<size_t>(r)];
      check(p.shape() == part_shape, t.name, "rank " + std::to_string(r) + " holds shape " + shape_str(p.shape()) + ", expected " +
                                                 shape_str(part_shape));
      std::memcpy(bytes_of(whole) + whole_row * rb, bytes_of(p) + local_row * rb, static_cast<size_t>(share) * rb);
      whole_row += static_cast<size_t>(share);
    }
    local_row += static_cast<size_t>(share);
  }
  return whole;
}

Tensor rank_part(const MegatronTensor& t, const Tensor& whole, int rank, int tp) {
  check(whole.shape() == t.shape, t.name, "shape " + shape_str(whole.shape()) + ", expected " + shape_str(t.shape));
  if (t.split == TpSplit::Replicated) return whole.clone();
  if (t.split == TpSplit::Columns) {
    const int64_t rows = t.shape[0], cols = rank_share(t.shape[1], tp, t.name);
    Tensor part = Tensor::empty({rows, cols}, whole.dtype());
    const size_t piece = static_cast<size_t>(cols) * dtype_size(whole.dtype());
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(bytes_of(part) + static_cast<size_t>(i) * piece,
                  bytes_of(whole) + (static_cast<size_t>(i) * static_cast<size_t>(tp) + static_cast<size_t>(rank)) * piece, piece);
    return part;
  }
  Shape part_shape = t.shape;
  part_shape[0] = rank_share(t.shape[0], tp, t.name);
  Tensor part = Tensor::empty(part_shape, whole.dtype());
  const size_t rb = row_bytes(whole);
  size_t whole_row = 0, local_row = 0;
  for (int64_t block : t.blocks) {
    const int64_t share = rank_share(block, tp, t.name);
    std::memcpy(bytes_of(part) + local_row * rb, bytes_of(whole) + (whole_row + static_cast<size_t>(rank * share)) * rb,
                static_cast<size_t>(share) * rb);
    whole_row += static_cast<size_t>(block);
    local_row += static_cast<size_t>(share);
  }
  return part;
}

std::vector<Tensor> split_qkv(const MegatronTensor& t, const Tensor& qkv) {
  check(t.qkv_groups > 0 && t.hf_shapes.size() == 3, t.name, "not a fused q/k/v tensor");
  check(qkv.shape() == t.shape, t.name, "shape " + shape_str(qkv.shape()) + ", expected " + shape_str(t.shape));
  const int64_t G = t.qkv_groups, q_rows = t.hf_shapes[0][0] / G, kv_rows = t.hf_shapes[1][0] / G;
  std::vector<Tensor> out;
  for (const Shape& s : t.hf_shapes) out.push_back(Tensor::empty(s, qkv.dtype()));
  const size_t rb = row_bytes(qkv);
  const int64_t per_group[3] = {q_rows, kv_rows, kv_rows};
  size_t src = 0;
  for (int64_t g = 0; g < G; ++g)
    for (int k = 0; k < 3; ++k) {
      const size_t n = static_cast<size_t>(per_group[k]);
      std::memcpy(bytes_of(out[static_cast<size_t>(k)]) + static_cast<size_t>(g) * n * rb, bytes_of(qkv) + src * rb, n * rb);
      src += n;
    }
  return out;
}

Tensor fuse_qkv(const MegatronTensor& t, const std::vector<Tensor>& qkv) {
  check(t.qkv_groups > 0 && t.hf_shapes.size() == 3 && qkv.size() == 3, t.name, "not a fused q/k/v tensor");
  for (size_t k = 0; k < 3; ++k)
    check(qkv[k].shape() == t.hf_shapes[k] && qkv[k].dtype() == qkv[0].dtype(), t.hf_names[k],
          "shape " + shape_str(qkv[k].shape()) + ", expected " + shape_str(t.hf_shapes[k]));
  const int64_t G = t.qkv_groups, q_rows = t.hf_shapes[0][0] / G, kv_rows = t.hf_shapes[1][0] / G;
  Tensor fused = Tensor::empty(t.shape, qkv[0].dtype());
  const size_t rb = row_bytes(fused);
  const int64_t per_group[3] = {q_rows, kv_rows, kv_rows};
  size_t dst = 0;
  for (int64_t g = 0; g < G; ++g)
    for (int k = 0; k < 3; ++k) {
      const size_t n = static_cast<size_t>(per_group[k]);
      std::memcpy(bytes_of(fused) + dst * rb, bytes_of(qkv[static_cast<size_t>(k)]) + static_cast<size_t>(g) * n * rb, n * rb);
      dst += n;
    }
  return fused;
}

}  // namespace mambalm::convert
