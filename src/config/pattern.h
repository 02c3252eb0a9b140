// Layer patterns with Megatron-LM's symbols: 'M' Mamba mixer, '*' self-attention, '-' MLP.
// Each symbol is one residual block (pre-norm, mixer, residual add).
#pragma once
#include <cstdint>
#include <string>

namespace mambalm {

constexpr char kMambaSymbol = 'M';
constexpr char kAttentionSymbol = '*';
constexpr char kMlpSymbol = '-';

// Megatron-LM's allocation from ratios (docs/architecture.md): attention layers spread evenly between Mamba
// layers, then MLP layers spread over the remaining Mamba slots. Python rounding (half to even).
std::string allocate_pattern(int64_t n_layers, double attention_ratio, double mlp_ratio);

// Throws mambalm::Error naming `where` if the pattern is empty, has a symbol outside "M*-"
// (the message lists the valid symbols) or, when expected_length >= 0, the wrong length.
void validate_pattern(const std::string& pattern, const std::string& where, int64_t expected_length = -1);

// Number of blocks of one kind in a pattern.
int64_t count_symbol(const std::string& pattern, char symbol);

}  // namespace mambalm
