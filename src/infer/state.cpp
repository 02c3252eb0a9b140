#include "infer/state.h"

#include "config/pattern.h"
#include "core/error.h"

namespace mambalm {

SequenceState::SequenceState(const ModelConfig& cfg, int64_t batch) : batch_(batch) {
  check(batch > 0, "state", "batch must be positive");
  layers_.resize(static_cast<size_t>(cfg.n_layers()));
  for (int64_t i = 0; i < cfg.n_layers(); ++i) {
    if (cfg.pattern[static_cast<size_t>(i)] != kMambaSymbol) continue;
    LayerState& s = layers_[static_cast<size_t>(i)];
    if (cfg.mamba_version == 2) {
      const Mamba2Config& m = cfg.mamba2;
      s.conv = Tensor::zeros({batch, m.conv_channels(), m.d_conv - 1});
      s.ssm = Tensor::zeros({batch, m.n_heads, m.head_dim, m.d_state});
    } else {
      const Mamba1Config& m = cfg.mamba1;
      s.conv = Tensor::zeros({batch, m.d_inner, m.d_conv - 1});
      s.ssm = Tensor::zeros({batch, m.d_inner, m.d_state});
    }
  }
}

int64_t SequenceState::ssm_state_bytes() const {
  int64_t b = 0;
  for (const LayerState& s : layers_) {
    if (s.conv.defined()) b += static_cast<int64_t>(s.conv.nbytes());
    if (s.ssm.defined()) b += static_cast<int64_t>(s.ssm.nbytes());
  }
  return b;
}

int64_t SequenceState::kv_cache_bytes() const {
  int64_t b = 0;
  for (const LayerState& s : layers_)
    if (s.k.defined()) b += 2 * s.kv_len * s.k.dim(2) * s.k.dim(3) * 4;
  return b;
}

}  // namespace mambalm
