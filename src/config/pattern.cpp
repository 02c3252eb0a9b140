#include "config/pattern.h"

#include <cmath>

#include "core/error.h"
#include "core/limits.h"

namespace mambalm {

// Python's round(): nearest integer, ties to even (std::nearbyint under the default rounding mode).
static int64_t python_round(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

std::string allocate_pattern(int64_t n_layers, double attention_ratio, double mlp_ratio) {
  limits::in_range(n_layers, 1, limits::kMaxLayers, "pattern", "the number of layers");
  check(attention_ratio >= 0 && attention_ratio <= 1, "pattern", "attention ratio must be in [0, 1]");
  check(mlp_ratio >= 0 && mlp_ratio <= 1 && attention_ratio + mlp_ratio <= 1, "pattern",
        "MLP ratio must be in [0, 1 - attention ratio]");
  std::string layers(static_cast<size_t>(n_layers), kMambaSymbol);

  // Step 1: attention layers, evenly spaced among the Mamba layers.
  int64_t n_attention = python_round(static_cast<double>(n_layers) * attention_ratio);
  int64_t n_mamba = n_layers - n_attention;
  if (n_attention > 0) {
    double section = static_cast<double>(n_mamba) / static_cast<double>(n_attention + 1);
    double x = section;
    for (int64_t l = 0; l < n_layers; ++l) {
      if (x < 0.5) {
        layers[static_cast<size_t>(l)] = kAttentionSymbol;
        x += section;
      } else {
        x -= 1;
      }
    }
  }
  // Step 2: MLP layers, evenly spaced over the layers still Mamba.
  int64_t n_mlp = python_round(static_cast<double>(n_layers) * mlp_ratio);
  if (n_mlp > 0) {
    n_mamba -= n_mlp;
    double ratio = static_cast<double>(n_mamba) / static_cast<double>(n_mlp);
    double x = ratio;
    for (int64_t l = 0; l < n_layers; ++l) {
      if (layers[static_cast<size_t>(l)] != kMambaSymbol) continue;
      if (x < 0.5) {
        layers[static_cast<size_t>(l)] = kMlpSymbol;
        x += ratio;
      } else {
        x -= 1;
      }
    }
  }
  return layers;
}

void validate_pattern(const std::string& pattern, const std::string& where, int64_t expected_length) {
  check(!pattern.empty(), where, "empty layer pattern", "use the symbols M (Mamba), * (attention), - (MLP)");
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c != kMambaSymbol && c != kAttentionSymbol && c != kMlpSymbol) {
      fail(where, std::string("invalid symbol '") + c + "' at position " + std::to_string(i) + " of pattern \"" + pattern + "\"",
           "valid symbols: M (Mamba), * (attention), - (MLP)");
    }
  }
  if (expected_length >= 0 && static_cast<int64_t>(pattern.size()) != expected_length) {
    fail(where, "pattern \"" + pattern + "\" has " + std::to_string(pattern.size()) + " layers, expected " +
                    std::to_string(expected_length), "one symbol per layer: M (Mamba), * (attention), - (MLP)");
  }
}

int64_t count_symbol(const std::string& pattern, char symbol) {
  int64_t n = 0;
  for (char c : pattern) n += (c == symbol);
  return n;
}

}  // namespace mambalm
