// The CPU inference memory estimate and its check (inference_memory.h).
#include "model/inference_memory.h"

#include <algorithm>
#include <cctype>

#include "config/pattern.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "model/model.h"
#include "model/weight_storage.h"

namespace mambalm {

namespace {

// The program itself, OpenMP and OpenBLAS thread buffers, the tokenizer: measured ~150 MB for
// a tiny model; rounded up.
constexpr int64_t kOverheadBytes = int64_t{256} << 20;

// F32 values per token that the largest mixer allocates while it runs (the ctx.empty calls of
// model/mamba2.cpp, mamba1.cpp, attention.cpp and mlp.cpp, summed per kind).
int64_t mixer_floats_per_token(const ModelConfig& cfg) {
  int64_t widest = 0;
  if (count_symbol(cfg.pattern, kMambaSymbol) > 0 && cfg.mamba_version == 2) {
    const Mamba2Config& m = cfg.mamba2;
    const int64_t GN = m.n_groups * m.d_state;
    // zxbcdt, z, xbc, xbc_conv, dt_raw, dt, xs, ys, B, C, gated
    widest = std::max(widest, m.in_proj_width() + 2 * m.conv_channels() + 4 * m.d_inner + 2 * GN + 2 * m.n_heads);
  } else if (count_symbol(cfg.pattern, kMambaSymbol) > 0) {
    const Mamba1Config& m = cfg.mamba1;
    // xz, x, z, xc, x_dbl, dt_low, B, C, dt_lin, dt, ys
    widest = std::max(widest, 9 * m.d_inner + 2 * (m.dt_rank + 2 * m.d_state));
  }
  if (count_symbol(cfg.pattern, kAttentionSymbol) > 0) {
    const AttentionConfig& a = cfg.attention;
    widest = std::max(widest, 2 * (a.n_heads + a.n_kv_heads) * a.head_dim);  // q, k, v, o
  }
  if (count_symbol(cfg.pattern, kMlpSymbol) > 0) widest = std::max(widest, 3 * cfg.mlp.d_ff);  // up, gate, act(up)
  return widest;
}

std::string summary(const InferenceMemory& m, DType dtype) {
  return "weights " + gigabytes(static_cast<double>(m.weights)) + " as " + dtype_name(dtype) + ", activations " +
         gigabytes(static_cast<double>(m.activations)) + ", state " + gigabytes(static_cast<double>(m.state)) +
         (m.loading > 0 ? ", converting " + gigabytes(static_cast<double>(m.loading)) : "");
}

}  // namespace

InferenceMemory estimate_inference_memory(const ModelConfig& cfg, DType matrix_dtype, const InferenceWork& work,
                                          const io::WeightSet* file) {
  InferenceMemory m;
  Model layout(cfg);  // the parameter list only: nothing is allocated
  for (const ParamRef& p : layout.params()) {
    const bool in_file = file && file->contains(p.name);
    const DType stored = in_file ? inference_dtype(p, cfg, matrix_dtype, file->dtype_of(p.name)) : is_matrix(p) ? matrix_dtype : DType::F32;
    const auto bytes = static_cast<int64_t>(storage_bytes(p.shape, stored));
    // An embedding table left in the file is read by row, never resident (embedding_file.h).
    const bool read_by_row =
        in_file && is_lookup_table(p, cfg) && stored == file->dtype_of(p.name) && bytes >= kSmallestMappedTensorBytes;
    if (!read_by_row) m.weights += bytes;
    if (in_file && file->dtype_of(p.name) != stored) {
      // Converted block by block, each block's pages of the file dropped once done (model_load.cpp).
      const int64_t tensor_bytes = static_cast<int64_t>(storage_bytes(file->shape_of(p.name), file->dtype_of(p.name)));
      const int64_t block_bytes = kConvertBlockValues * static_cast<int64_t>(dtype_size(file->dtype_of(p.name)));
      m.loading = std::max(m.loading, std::min(tensor_bytes, block_bytes));
    }
  }
  // Doubles: the products of validated sizes fit, but B * T * V of a long prompt need not in int64.
  const double rows = static_cast<double>(work.batch) * static_cast<double>(work.tokens);  // tokens in one call
  const double floats = rows * static_cast<double>(3 * cfg.d_model + mixer_floats_per_token(cfg)) +  // h, normed, mixed + mixer
                        static_cast<double>(work.logit_rows) * static_cast<double>(cfg.vocab_size);
  m.activations = static_cast<int64_t>(std::min(4.0 * floats, 9e18));
  // Nothing is kept between calls without a context (forward over a whole sequence).
  const DType kv = work.kv_dtype.value_or(matrix_dtype == DType::F32 ? DType::F32 : DType::BF16);
  const double kv_per_token = static_cast<double>(cfg.kv_bytes_per_token(static_cast<int64_t>(dtype_size(kv))));
  const double state = work.context == 0 ? 0.0 : static_cast<double>(work.batch) *
                       (static_cast<double>(cfg.state_bytes()) + kv_per_token * static_cast<double>(work.context));
  m.state = static_cast<int64_t>(std::min(state, 9e18));
  m.overhead = kOverheadBytes;
  return m;
}

void check_inference_memory(const ModelConfig& cfg, DType matrix_dtype, const InferenceWork& work, const std::string& where,
                            const io::WeightSet* file) {
  const InferenceMemory need = estimate_inference_memory(cfg, matrix_dtype, work, file);
  const int64_t have = available_memory_bytes();
  if (need.total() <= have) return;
  std::string hint;
  for (const DType smaller : {DType::BF16, DType::Q8}) {
    if (storage_bytes({1, 64}, smaller) >= storage_bytes({1, 64}, matrix_dtype)) continue;  // not smaller than the one asked for
    if (smaller == DType::Q8 && !work.q8_possible) continue;
    const InferenceMemory alt = estimate_inference_memory(cfg, smaller, work, file);
    if (alt.total() > have) continue;
    std::string name = dtype_name(smaller);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    hint = "try --dtype " + name + ": ~" + gigabytes(static_cast<double>(alt.total()));
    break;
  }
  if (hint.empty())
    hint = need.activations + need.state > need.weights ? "use fewer or shorter sequences, or a machine with more memory"
                                                        : "the model does not fit this machine in any dtype; use --device cuda or a larger machine";
  fail(where, "needs ~" + gigabytes(static_cast<double>(need.total())) + ", " + gigabytes(static_cast<double>(have)) + " available (" +
                  available_memory_source() + "): " + summary(need, matrix_dtype),
       hint);
}

}  // namespace mambalm
