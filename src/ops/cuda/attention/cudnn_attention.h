// The cuDNN attention path's self-check, for tools (the path itself is reached through
// ops::cuda::attention / attention_backward; cudnn_attention.cu).
#pragma once
#include <string>

namespace mambalm::ops::cuda {

// Builds the cuDNN attention graphs (forward, backward; MHA and GQA, head dims 64 and 128) up to
// the operation graph, which needs no GPU: one line per graph, "every descriptor finalized" or
// cuDNN's message, after a first line with the library's version ("cuDNN not available: ..."
// without it). Catches attribute and shape mistakes on a machine without a device; the engine
// choice (heuristics, execution plan) still needs one.
std::string cudnn_attention_graph_check();

}  // namespace mambalm::ops::cuda
