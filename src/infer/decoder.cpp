#include "infer/decoder.h"

#include <algorithm>
#include <cstring>

#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mambalm {

namespace {
// Uncaptured steps before capture: the first sizes the workspace (its requests overflow the
// empty block), the second runs inside the block that reset() then planned.
constexpr int64_t kWarmSteps = 2;
}  // namespace

BatchDecoder::BatchDecoder(Model& model, SequenceState& state, DecoderOptions opts)
    : model_(model), state_(state), opts_(opts) {
  const int64_t B = state.batch();
  check(state.device() == model.device(), "decoder", "the state and the model are on different devices");
  if (opts_.vocab_limit <= 0 || opts_.vocab_limit > model.config().vocab_size) opts_.vocab_limit = model.config().vocab_size;
  if (model.device() == Device::CUDA) {
    ids_ = zeros_cuda({B, 1}, DType::I32);
    ids_host_ = empty_pinned({B, 1}, DType::I32);
    return;
  }
  opts_.use_graph = false;
  ids_ = Tensor::zeros({B, 1}, DType::I32);
  ids_host_ = ids_;
}

BatchDecoder::~BatchDecoder() = default;

void BatchDecoder::set_tokens(const std::vector<int32_t>& ids) {
  check(static_cast<int64_t>(ids.size()) == state_.batch(), "decoder",
        std::to_string(ids.size()) + " tokens for a batch of " + std::to_string(state_.batch()));
  for (int32_t id : ids)
    check(id >= 0 && id < model_.config().vocab_size, "decoder", "token id " + std::to_string(id) + " is outside the vocabulary");
  if (model_.device() == Device::CUDA) {
    cuda_synchronize();  // the previous step may still read the pinned buffer's last copy
    std::memcpy(ids_host_.raw(), ids.data(), ids.size() * 4);
    copy_async(ids_host_, ids_);
    return;
  }
  std::memcpy(ids_.raw(), ids.data(), ids.size() * 4);
}

void BatchDecoder::run_step() {
  logits_ = model_.forward(ids_, &state_);  // [B, 1, V]; advances the state's positions
  const int64_t B = state_.batch(), V = model_.config().vocab_size;
  Tensor next = ids_.reshape({B});  // the greedy choice becomes the next step's input
  ops::argmax(logits_.reshape({B, V}), opts_.vocab_limit, next);
}

void BatchDecoder::step() {
  if (opts_.use_graph) {
    if (captured_ && captured_generation_ != model_.workspace_generation()) {
      captured_ = false;  // a prefill replaced the workspace block: capture again
      warm_steps_ = 0;
    }
    if (!captured_ && warm_steps_ >= kWarmSteps) {
      graph_ = std::make_unique<CudaGraph>();
      // Capturing runs the host side of a step (positions staged, the host positions advanced)
      // without executing it; the replay below executes exactly that step.
      graph_->capture([&] { run_step(); });
      captured_ = true;
      captured_generation_ = model_.workspace_generation();
      graph_->replay();
      return;
    }
    if (captured_) {
      cuda_synchronize();  // the previous replay has read the pinned positions
      state_.stage_positions(1);
      graph_->replay();
      state_.advance(1);
      return;
    }
    ++warm_steps_;
  }
  run_step();
}

std::vector<int32_t> BatchDecoder::tokens() const {
  std::vector<int32_t> out(static_cast<size_t>(state_.batch()));
  const Tensor host = to_host(ids_);  // synchronous: waits for the step
  std::memcpy(out.data(), host.raw(), out.size() * 4);
  return out;
}

std::vector<float> BatchDecoder::logits_host(int64_t b) const {
  const int64_t V = model_.config().vocab_size;
  check(logits_.defined(), "decoder", "no step has run yet");
  Tensor row = logits_.reshape({state_.batch(), V}).slice0(b, b + 1);
  std::vector<float> out(static_cast<size_t>(V));
  const Tensor host = to_host(row);
  std::memcpy(out.data(), host.raw(), out.size() * 4);
  return out;
}

}  // namespace mambalm
