// Scoring primitives with lm-evaluation-harness semantics, so results compare with published
// numbers:
//   loglikelihood(context, continuation): the sum of the continuation's token log-probs given
//     the context, and whether greedy decoding would produce exactly those tokens. The split is
//     tokenized as lm-eval does: trailing spaces of the context move to the continuation, then
//     whole = encode(context + continuation), ctx = encode(context), and the continuation's
//     tokens are whole[len(ctx):] (so a boundary inside a word scores the merged tokens).
//     An empty context is replaced by one prefix token (BOS, else EOS). With add_bos (a
//     tokenizer that adds BOS, as a Llama one does), every encoded text starts with BOS.
//   loglikelihood_rolling(text): the log-prob of every token of a text (perplexity), from the
//     prefix token on. With a maximum length, lm-eval's disjoint windows (each window predicts
//     up to max_length tokens, seeing at most max_length tokens); without one, the whole text
//     runs through the recurrent SequenceState in chunks (exact full context, constant memory
//     for SSMs, a growing KV cache for attention).
//   generate_until(context, stop strings): greedy decoding until a stop string, EOS or the
//     token limit; the text is cut before the first stop string.
// Requests are sorted by length and batched (right padding is invisible to causal models).
// Device: the model's (Model::device()). On CUDA every path runs the forward there with a
// SequenceState on the device (state_options_for: planned KV cache in the weights' dtype), and
// the log-prob of each scored token and its greedy flag are reduced on the device; only those
// come back to the host. The CPU path computes them from the host logits in double.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::eval {

struct ScorerOptions {
  int64_t batch = 8;           // sequences per forward call (fewer when logits would be large)
  int64_t max_length = 0;      // tokens a model may see; 0 = config's max_position_embeddings or unbounded
  int64_t prefix_token = -1;   // -1 = the tokenizer's BOS, else its EOS, else the config's
  int64_t chunk = 512;         // tokens per forward call on the recurrent path
  int64_t long_request = 2048; // requests longer than this run alone through the recurrent path
  int64_t logits_budget_bytes = int64_t{256} << 20;  // cap on one batch's logits
  bool add_bos = false;        // BOS before every context, rolling document and prompt (eval/bos_policy.h)
};

struct LoglikelihoodRequest {
  std::string context, continuation;
};
struct TokenRequest {
  std::vector<int32_t> context, continuation;  // continuation non-empty
};
struct LoglikelihoodResult {
  double logprob = 0;      // sum of log p(continuation token | everything before it)
  bool is_greedy = false;  // every continuation token is the argmax
  int64_t tokens = 0;      // continuation tokens scored
};

struct RollingResult {
  double logprob = 0;  // sum over every token of the text
  int64_t tokens = 0;
  int64_t bytes = 0;   // UTF-8 bytes of the text (0 for token input)
};

struct GenerateUntilOptions {
  std::vector<std::string> until;  // stop strings (the text is cut before the first one found)
  int64_t max_gen_tokens = 64;
};
struct GenerateUntilResult {
  std::string text;                  // generated text, cut at the first stop string
  std::vector<int32_t> tokens;       // generated token ids (including a stop string's tokens)
  int64_t prompt_tokens = 0;         // after left truncation to the maximum length
  int64_t ssm_state_bytes = 0;       // SequenceState at the end of generation
  int64_t kv_cache_bytes = 0;
};

class Scorer {
 public:
  // `tokenizer` may be null for token-level calls only.
  Scorer(Model& model, const Tokenizer* tokenizer, ScorerOptions opts = {});

  // The tokens of a text, with BOS in front when add_bos is set (lm-eval's tok_encode).
  std::vector<int32_t> encode_text(const std::string& text) const;
  // lm-eval's _encode_pair: (context tokens, continuation tokens).
  std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const std::string& context,
                                                                    const std::string& continuation) const;

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests);
  std::vector<LoglikelihoodResult> loglikelihood_tokens(const std::vector<TokenRequest>& requests);

  RollingResult loglikelihood_rolling(const std::string& text);
  RollingResult loglikelihood_rolling_tokens(const std::vector<int32_t>& tokens);

  GenerateUntilResult generate_until(const std::string& context, const GenerateUntilOptions& opts);

  // The token that stands for an empty context; throws with a hint when none is in the vocabulary.
  int32_t prefix_token() const;
  int64_t max_length() const { return max_length_; }
  const ScorerOptions& options() const { return opts_; }
  // Tokens whose log-prob was computed, and tokens run through the model, since construction.
  int64_t tokens_scored() const { return tokens_scored_; }
  int64_t tokens_processed() const { return tokens_processed_; }
  // Largest SequenceState seen on the recurrent path (bytes), for the memory report.
  int64_t peak_ssm_state_bytes() const { return peak_state_; }
  int64_t peak_kv_cache_bytes() const { return peak_kv_; }

  const Tokenizer& tokenizer() const;
  Model& model() { return model_; }

 private:
  // Scores requests [begin, end) of `order` in one padded forward call.
  void score_batch(const std::vector<TokenRequest>& reqs, const std::vector<size_t>& order, size_t begin, size_t end,
                   std::vector<LoglikelihoodResult>& out);
  // One request through SequenceState: prefill the context in chunks, then the continuation.
  LoglikelihoodResult score_recurrent(const std::vector<int32_t>& input, size_t n_cont, const std::vector<int32_t>& cont);
  void note_state(const SequenceState& s);
  // Scores the rows of logits [N, V] (on the model's device) against targets[r] (-1: row not
  // needed): row_logprob_[r] = log softmax(row r)[target], row_top_[r] = the target is the
  // row's first maximum. CPU: log_softmax_at in double. CUDA: reduced on the device
  // (ops::cross_entropy and ops::argmax, fp32 log-sum-exp), 8 bytes per row copied back.
  void score_rows(const Tensor& logits, const std::vector<int32_t>& targets);

  Model& model_;
  const Tokenizer* tokenizer_;
  ScorerOptions opts_;
  int64_t max_length_ = 0;
  std::string bos_text_;  // the BOS token's text (a text starting with it gets no second BOS)
  int64_t tokens_scored_ = 0, tokens_processed_ = 0;
  int64_t peak_state_ = 0, peak_kv_ = 0;
  std::vector<double> row_logprob_;  // score_rows' results, one per logits row
  std::vector<char> row_top_;
  Tensor dev_targets_, dev_loss_, dev_argmax_;  // CUDA: score_rows' buffers (grow only), I32/F32/I32 [capacity]
  Tensor host_targets_;                         // I32 [capacity]
};

// log softmax(logits)[target] in double, and whether target is the argmax (first maximum).
double log_softmax_at(const float* logits, int64_t vocab, int32_t target, bool* is_argmax = nullptr);

}  // namespace mambalm::eval
