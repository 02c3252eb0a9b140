#include "eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/device.h"
#include "core/error.h"
#include "eval/text_rules.h"
#include "infer/generate.h"
#include "infer/stop_strings.h"
#include "infer/text_stream.h"
#include "ops/ops.h"

namespace mambalm::eval {

double log_softmax_at(const float* logits, int64_t vocab, int32_t target, bool* is_argmax) {
  int64_t best = 0;
  for (int64_t v = 1; v < vocab; ++v)
    if (logits[v] > logits[best]) best = v;
  double mx = logits[best], sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  if (is_argmax) *is_argmax = best == target;
  return static_cast<double>(logits[target]) - mx - std::log(sum);
}

namespace {

Tensor ids_tensor(const std::vector<int32_t>& tokens, size_t begin, size_t end) {
  Tensor ids = Tensor::empty({1, static_cast<int64_t>(end - begin)}, DType::I32);  // [1, n]
  std::memcpy(ids.raw(), tokens.data() + begin, (end - begin) * 4);
  return ids;
}

}  // namespace

Scorer::Scorer(Model& model, const Tokenizer* tokenizer, ScorerOptions opts)
    : model_(model), tokenizer_(tokenizer), opts_(opts) {
  check(opts_.batch > 0, "eval", "--batch must be positive");
  check(opts_.chunk > 0, "eval", "chunk must be positive");
  check(opts_.max_length >= 0, "eval", "--max-length must be >= 0");
  max_length_ = opts_.max_length;
  const ModelConfig& cfg = model_.config();
  // Attention layers are trained to a context length; SSM-only models have none.
  if (max_length_ == 0 && cfg.pattern.find('*') != std::string::npos) max_length_ = cfg.max_position_embeddings;
  if (opts_.add_bos) {
    check(tokenizer_ != nullptr && tokenizer_->bos_id() >= 0 && tokenizer_->bos_id() < cfg.vocab_size, "eval",
          "BOS is to be added but the tokenizer has no BOS token inside the model's vocabulary", "use --add-bos no");
    // lm-eval skips BOS for a text that already starts with it (has_bos_prefix).
    bos_text_ = tokenizer_->decode({tokenizer_->bos_id()});
  }
}

std::vector<int32_t> Scorer::encode_text(const std::string& text) const {
  std::vector<int32_t> ids = tokenizer().encode(text);
  if (opts_.add_bos && (bos_text_.empty() || text.compare(0, bos_text_.size(), bos_text_) != 0))
    ids.insert(ids.begin(), tokenizer_->bos_id());
  return ids;
}

const Tokenizer& Scorer::tokenizer() const {
  check(tokenizer_ != nullptr, "eval", "this evaluation needs a tokenizer", "give --tokenizer PATH (or 'bytes')");
  return *tokenizer_;
}

int32_t Scorer::prefix_token() const {
  const int64_t V = model_.config().vocab_size;
  std::vector<int64_t> candidates;
  if (opts_.prefix_token >= 0) {
    check(opts_.prefix_token < V, "--prefix-token",
          std::to_string(opts_.prefix_token) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
    return static_cast<int32_t>(opts_.prefix_token);
  }
  if (tokenizer_) candidates = {tokenizer_->bos_id(), tokenizer_->eos_id()};
  candidates.push_back(model_.config().bos_token_id);
  candidates.push_back(model_.config().eos_token_id);
  for (int64_t c : candidates)
    if (c >= 0 && c < V) return static_cast<int32_t>(c);
  fail("eval", "no BOS or EOS token inside the model's vocabulary to stand for an empty context",
       "give --prefix-token ID");
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> Scorer::encode_pair(const std::string& context,
                                                                          const std::string& continuation) const {
  // Python's rstrip: all Unicode whitespace at the end of the context moves to the continuation.
  const size_t keep = python_rstrip_size(context, "eval context");
  const std::string ctx = context.substr(0, keep), cont = context.substr(keep) + continuation;
  std::vector<int32_t> whole = encode_text(ctx + cont);
  std::vector<int32_t> ctx_enc = encode_text(ctx);
  std::vector<int32_t> cont_enc;
  if (whole.size() > ctx_enc.size()) cont_enc.assign(whole.begin() + static_cast<std::ptrdiff_t>(ctx_enc.size()), whole.end());
  return {ctx_enc, cont_enc};
}

std::vector<LoglikelihoodResult> Scorer::loglikelihood(const std::vector<LoglikelihoodRequest>& requests) {
  std::vector<TokenRequest> reqs;
  reqs.reserve(requests.size());
  for (const LoglikelihoodRequest& r : requests) {
    TokenRequest t;
    if (r.context.empty()) {
      // lm-eval: the continuation without BOS after the prefix token, unless it already starts
      // with that token (then its first token is the context).
      std::vector<int32_t> cont = tokenizer().encode(r.continuation);
      const int32_t prefix = prefix_token();
      const bool starts_with_prefix = !cont.empty() && cont[0] == prefix;
      t.context = {prefix};
      t.continuation.assign(cont.begin() + (starts_with_prefix ? 1 : 0), cont.end());
    } else {
      std::tie(t.context, t.continuation) = encode_pair(r.context, r.continuation);
    }
    check(!t.continuation.empty(), "eval", "the continuation '" + r.continuation.substr(0, 40) + "' encodes to no tokens after its context",
          "every answer must add text after the context");
    reqs.push_back(std::move(t));
  }
  return loglikelihood_tokens(reqs);
}

std::vector<LoglikelihoodResult> Scorer::loglikelihood_tokens(const std::vector<TokenRequest>& requests) {
  const int64_t V = model_.config().vocab_size;
  // inputs[i] = (context + continuation), kept to the last max_length + 1 tokens, minus the last.
  std::vector<TokenRequest> inputs(requests.size());
  std::vector<size_t> batched, alone;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TokenRequest& r = requests[i];
    check(!r.continuation.empty(), "eval", "request " + std::to_string(i) + " has an empty continuation");
    check(!r.context.empty(), "eval", "request " + std::to_string(i) + " has an empty context", "use the prefix token");
    std::vector<int32_t> all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    check_token_ids(all, V, "eval request " + std::to_string(i));
    if (max_length_ > 0) {
      check(static_cast<int64_t>(r.continuation.size()) <= max_length_, "eval",
            "request " + std::to_string(i) + ": continuation of " + std::to_string(r.continuation.size()) +
                " tokens is longer than the maximum length " + std::to_string(max_length_));
      if (static_cast<int64_t>(all.size()) > max_length_ + 1) all.erase(all.begin(), all.end() - (max_length_ + 1));
    }
    all.pop_back();
    inputs[i].context = std::move(all);
    inputs[i].continuation = r.continuation;
    (static_cast<int64_t>(inputs[i].context.size()) > opts_.long_request ? alone : batched).push_back(i);
  }
  std::vector<LoglikelihoodResult> out(requests.size());
  for (size_t i : alone) out[i] = score_recurrent(inputs[i].context, inputs[i].continuation.size(), inputs[i].continuation);
  // Longest first, as lm-eval orders them: a batch pads to its first request's length.
  std::stable_sort(batched.begin(), batched.end(),
                   [&](size_t a, size_t b) { return inputs[a].context.size() > inputs[b].context.size(); });
  for (size_t begin = 0; begin < batched.size();) {
    const int64_t t_max = static_cast<int64_t>(inputs[batched[begin]].context.size());
    size_t end = begin + 1;
    while (end < batched.size() && static_cast<int64_t>(end - begin) < opts_.batch &&
           static_cast<int64_t>(end - begin + 1) * t_max * V * 4 <= opts_.logits_budget_bytes)
      ++end;
    score_batch(inputs, batched, begin, end, out);
    begin = end;
  }
  return out;
}

void Scorer::score_batch(const std::vector<TokenRequest>& reqs, const std::vector<size_t>& order, size_t begin, size_t end,
                         std::vector<LoglikelihoodResult>& out) {
  const int64_t V = model_.config().vocab_size;
  const int64_t B = static_cast<int64_t>(end - begin);
  const int64_t T = static_cast<int64_t>(reqs[order[begin]].context.size());
  Tensor ids = Tensor::zeros({B, T}, DType::I32);  // [B, T] right-padded with token 0
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int32_t>& inp = reqs[order[begin + static_cast<size_t>(b)]].context;
    std::memcpy(ids.data<int32_t>() + b * T, inp.data(), inp.size() * 4);
  }
  Tensor logits = model_.forward(ids);  // [B, T, V] on the model's device
  // Row b * T + L - n + j of the logits predicts continuation token j; the other rows are not scored.
  std::vector<int32_t> targets(static_cast<size_t>(B * T), -1);
  for (int64_t b = 0; b < B; ++b) {
    const TokenRequest& r = reqs[order[begin + static_cast<size_t>(b)]];
    const int64_t L = static_cast<int64_t>(r.context.size()), n = static_cast<int64_t>(r.continuation.size());
    for (int64_t j = 0; j < n; ++j) targets[static_cast<size_t>(b * T + L - n + j)] = r.continuation[static_cast<size_t>(j)];
  }
  score_rows(logits.reshape({B * T, V}), targets);
  for (int64_t b = 0; b < B; ++b) {
    const TokenRequest& r = reqs[order[begin + static_cast<size_t>(b)]];
    const int64_t L = static_cast<int64_t>(r.context.size()), n = static_cast<int64_t>(r.continuation.size());
    LoglikelihoodResult res;
    res.is_greedy = true;
    res.tokens = n;
    for (int64_t j = 0; j < n; ++j) {
      const size_t row = static_cast<size_t>(b * T + L - n + j);
      res.logprob += row_logprob_[row];
      res.is_greedy = res.is_greedy && row_top_[row];
    }
    out[order[begin + static_cast<size_t>(b)]] = res;
    tokens_scored_ += n;
    tokens_processed_ += L;
  }
}

void Scorer::score_rows(const Tensor& logits, const std::vector<int32_t>& targets) {
  const int64_t N = logits.dim(0), V = logits.dim(1);
  check(static_cast<int64_t>(targets.size()) == N, "eval", "one target per logits row is needed");
  row_logprob_.assign(static_cast<size_t>(N), 0.0);
  row_top_.assign(static_cast<size_t>(N), 0);
  if (logits.device() == Device::CPU) {
    const float* base = logits.f32();
    for (int64_t r = 0; r < N; ++r) {
      const int32_t t = targets[static_cast<size_t>(r)];
      if (t < 0) continue;
      bool top = false;
      row_logprob_[static_cast<size_t>(r)] = log_softmax_at(base + r * V, V, t, &top);
      row_top_[static_cast<size_t>(r)] = top;
    }
    return;
  }
  // On the device: cross_entropy gives -log softmax(row)[target] (0 on rows marked -1) and
  // argmax the row's first maximum; only these 8 bytes per row come back, not N x V logits.
  const Device dev = logits.device();
  if (!dev_targets_.defined() || dev_targets_.dim(0) < N) {
    const int64_t cap = std::max<int64_t>(N, 4096);
    dev_targets_ = empty_on(dev, {cap}, DType::I32);
    dev_loss_ = empty_on(dev, {cap});
    dev_argmax_ = empty_on(dev, {cap}, DType::I32);
    host_targets_ = Tensor::empty({cap}, DType::I32);
  }
  Tensor tg_host = host_targets_.slice0(0, N), tg = dev_targets_.slice0(0, N);
  Tensor loss = dev_loss_.slice0(0, N), best = dev_argmax_.slice0(0, N);
  std::memcpy(tg_host.raw(), targets.data(), static_cast<size_t>(N) * 4);
  copy_tensor(tg_host, tg);
  ops::cross_entropy(logits, tg, 1.0f, loss, nullptr);
  // argmax launches one block row per logits row: at most 65535 rows per call.
  constexpr int64_t kArgmaxRows = 32768;
  for (int64_t r0 = 0; r0 < N; r0 += kArgmaxRows) {
    const int64_t r1 = std::min(N, r0 + kArgmaxRows);
    Tensor part = best.slice0(r0, r1);
    ops::argmax(logits.slice0(r0, r1), V, part);
  }
  const Tensor loss_host = to_host(loss), best_host = to_host(best);
  for (int64_t r = 0; r < N; ++r) {
    const int32_t t = targets[static_cast<size_t>(r)];
    if (t < 0) continue;
    row_logprob_[static_cast<size_t>(r)] = -static_cast<double>(loss_host.f32()[r]);
    row_top_[static_cast<size_t>(r)] = best_host.data<int32_t>()[r] == t;
  }
}

void Scorer::note_state(const SequenceState& s) {
  peak_state_ = std::max(peak_state_, s.ssm_state_bytes());
  peak_kv_ = std::max(peak_kv_, s.kv_cache_bytes());
}

LoglikelihoodResult Scorer::score_recurrent(const std::vector<int32_t>& input, size_t n_cont, const std::vector<int32_t>& cont) {
  const int64_t V = model_.config().vocab_size;
  const size_t L = input.size();
  SequenceState state(model_.config(), 1, state_options_for(model_, static_cast<int64_t>(L)));
  // Input positions [0, L - n] run with only the last row kept: it predicts cont[0].
  std::vector<int32_t> head(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(L - n_cont + 1));
  std::vector<float> last = prefill(model_, state, head, opts_.chunk);
  LoglikelihoodResult res;
  res.tokens = static_cast<int64_t>(n_cont);
  bool top = false;
  res.logprob = log_softmax_at(last.data(), V, cont[0], &top);
  res.is_greedy = top;
  for (size_t pos = L - n_cont + 1; pos < L;) {
    size_t n = std::min(static_cast<size_t>(opts_.chunk), L - pos);
    Tensor logits = model_.forward(ids_tensor(input, pos, pos + n), &state);  // [1, n, V]
    // Input position pos + k predicts continuation token (pos + k) - (L - n_cont).
    std::vector<int32_t> targets(cont.begin() + static_cast<std::ptrdiff_t>(pos - (L - n_cont)),
                                 cont.begin() + static_cast<std::ptrdiff_t>(pos + n - (L - n_cont)));
    score_rows(logits.reshape({static_cast<int64_t>(n), V}), targets);
    for (size_t k = 0; k < n; ++k) {
      res.logprob += row_logprob_[k];
      res.is_greedy = res.is_greedy && row_top_[k];
    }
    pos += n;
  }
  note_state(state);
  tokens_scored_ += res.tokens;
  tokens_processed_ += static_cast<int64_t>(L);
  return res;
}

RollingResult Scorer::loglikelihood_rolling(const std::string& text) {
  // With BOS added the document's own tokens start with BOS, after the prefix token, as in
  // lm-eval (tok_encode with default special tokens, then the rolling windows).
  RollingResult r = loglikelihood_rolling_tokens(encode_text(text));
  r.bytes = static_cast<int64_t>(text.size());
  return r;
}

RollingResult Scorer::loglikelihood_rolling_tokens(const std::vector<int32_t>& tokens) {
  RollingResult res;
  res.tokens = static_cast<int64_t>(tokens.size());
  if (tokens.empty()) return res;
  const int64_t V = model_.config().vocab_size;
  check_token_ids(tokens, V, "eval text");
  const int32_t prefix = prefix_token();
  const int64_t N = static_cast<int64_t>(tokens.size());
  if (max_length_ > 0) {
    // lm-eval's get_rolling_token_windows(context_len = 1) + make_disjoint_window.
    std::vector<TokenRequest> windows;
    const int64_t M = max_length_;
    const int64_t first = std::min(M, N);
    TokenRequest w0;
    w0.context = {prefix};
    w0.continuation.assign(tokens.begin(), tokens.begin() + first);
    windows.push_back(std::move(w0));
    for (int64_t predicted = first; predicted < N;) {
      const int64_t pred = std::min(N - predicted, M), end = predicted + pred;
      // Input tokens [end - M - 1, end - 1); the disjoint context is its first M - pred + 1.
      TokenRequest w;
      w.context.assign(tokens.begin() + (end - M - 1), tokens.begin() + (end - pred));
      w.continuation.assign(tokens.begin() + (end - pred), tokens.begin() + end);
      windows.push_back(std::move(w));
      predicted += pred;
    }
    for (const LoglikelihoodResult& r : loglikelihood_tokens(windows)) res.logprob += r.logprob;
    return res;
  }
  // Full recurrence: [prefix] + tokens[0, N-1) in chunks; every row predicts the next token.
  std::vector<int32_t> input(static_cast<size_t>(N));
  input[0] = prefix;
  std::copy(tokens.begin(), tokens.end() - 1, input.begin() + 1);
  SequenceState state(model_.config(), 1, state_options_for(model_, N));
  for (size_t pos = 0; pos < input.size();) {
    size_t n = std::min(static_cast<size_t>(opts_.chunk), input.size() - pos);
    Tensor logits = model_.forward(ids_tensor(input, pos, pos + n), &state);  // [1, n, V]
    score_rows(logits.reshape({static_cast<int64_t>(n), V}),
               std::vector<int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(pos), tokens.begin() + static_cast<std::ptrdiff_t>(pos + n)));
    for (size_t k = 0; k < n; ++k) res.logprob += row_logprob_[k];
    pos += n;
  }
  note_state(state);
  tokens_scored_ += N;
  tokens_processed_ += N;
  return res;
}

GenerateUntilResult Scorer::generate_until(const std::string& context, const GenerateUntilOptions& opts) {
  const Tokenizer& tok = tokenizer();
  const int64_t V = model_.config().vocab_size;
  check(opts.max_gen_tokens > 0, "eval", "max_gen_tokens must be positive");
  std::vector<int32_t> prompt = encode_text(context);
  if (prompt.empty()) prompt = {prefix_token()};
  if (max_length_ > 0) {
    const int64_t keep = max_length_ - opts.max_gen_tokens;
    check(keep > 0, "eval", "max_gen_tokens " + std::to_string(opts.max_gen_tokens) + " leaves no room in the maximum length " +
                                std::to_string(max_length_));
    if (static_cast<int64_t>(prompt.size()) > keep) prompt.erase(prompt.begin(), prompt.end() - keep);
  }
  check_token_ids(prompt, V, "eval prompt");
  GenerateUntilResult res;
  res.prompt_tokens = static_cast<int64_t>(prompt.size());
  SequenceState state(model_.config(), 1,
                      state_options_for(model_, static_cast<int64_t>(prompt.size()) + opts.max_gen_tokens));
  std::vector<float> logits = prefill(model_, state, prompt, opts_.chunk);
  const int64_t eos_model = model_.config().eos_token_id, eos_tok = tok.eos_id();
  // Stop strings are searched in the decoded text, as lm-eval does after generation. The text
  // grows as generate and serve stream it: a character a later token may still complete is
  // not searched until it is settled, so the cut is where it would be in the whole text.
  TextStream stream([&tok](const std::vector<int32_t>& ids) { return decode_generated(tok, ids); });
  StopStrings stops(opts.until);
  for (int64_t i = 0; i < opts.max_gen_tokens && !stops.stopped(); ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == eos_model || next == eos_tok) break;
    res.tokens.push_back(next);
    stops.push(stream.push(next));
    if (!stops.stopped() && i + 1 < opts.max_gen_tokens) logits = decode_step(model_, state, next);
  }
  if (!stops.stopped()) stops.push(stream.finish());
  if (!stops.stopped()) stops.finish();
  res.text = stops.visible();
  res.ssm_state_bytes = state.ssm_state_bytes();
  res.kv_cache_bytes = state.kv_cache_bytes();
  note_state(state);
  tokens_processed_ += state.position();
  return res;
}

}  // namespace mambalm::eval
