// Scoring primitives against an independent computation: loglikelihood equals the sum of
// log-softmax values read from `mambalm forward` logits for the same tokens (lm-eval's split,
// including a context/continuation boundary inside a word), batched and recurrent paths agree,
// rolling log-likelihood matches full forwards window by window, generate_until stops where
// it must.
#include <gtest/gtest.h>

#include <sentencepiece_trainer.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "eval/scoring.h"
#include "infer/generate.h"
#include "io/npy.h"
#include "model/model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

const char* const kText =
    "The quick brown fox jumps over the lazy dog. A phonebook lists names and numbers; the fox "
    "reads the phonebook and jumps to the number it wants. Quickly, brownly, foxily the dog sleeps.\n";

// A small BPE SentencePiece model, so words are several tokens and merges cross a split point.
std::string train_bpe(const std::string& dir) {
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 40; ++i) corpus << kText;
  }
  auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir + "/corpus.txt --model_prefix=" + dir + "/spm --vocab_size=400 --model_type=bpe"
      " --character_coverage=1.0 --byte_fallback=true --normalization_rule_name=identity"
      " --remove_extra_whitespaces=false --hard_vocab_limit=false --minloglevel=2");
  if (!status.ok()) throw std::runtime_error("sentencepiece training failed: " + status.ToString());
  return dir + "/spm.model";
}

// A model directory with the BPE tokenizer, every weight moved by noise so that logits differ
// strongly between positions and tokens (a misaligned read would change the sums).
std::string make_model_dir(const std::string& arch, uint64_t seed = test_seed()) {
  static std::string spm;
  const std::string base = temp_dir("eval-scoring");
  if (spm.empty()) spm = train_bpe(base);
  const std::string dir = base + "/" + arch;
  CommandResult r = run_cli("init --arch " + arch + " --vocab 448 --seed 5 --out " + dir);
  if (r.exit_code != 0) throw std::runtime_error("init failed: " + r.err);
  std::filesystem::copy_file(spm, dir + "/tokenizer.model", std::filesystem::copy_options::overwrite_existing);
  Model m = Model::load(dir);
  Rng rng(seed + 3);
  for (ParamRef& p : m.params()) {
    float* w = p.tensor->f32();
    for (int64_t i = 0; i < p.tensor->numel(); ++i) w[i] += static_cast<float>(0.15 * rng.uniform(-1, 1));
  }
  m.save(dir);
  return dir;
}

// Independent reference: sum over the continuation of log softmax(logits[i - 1])[tokens[i]],
// from the logits `mambalm forward` writes for the whole token sequence.
struct Reference {
  double logprob = 0;
  bool greedy = true;
};
Reference reference_from_cli(const std::string& model_dir, const std::vector<int32_t>& tokens, size_t n_cont) {
  const std::string dir = temp_dir("eval-ref");
  {
    std::ofstream f(dir + "/tokens.txt");
    for (int32_t t : tokens) f << t << " ";
  }
  CommandResult r = run_cli("forward --model " + model_dir + " --tokens " + dir + "/tokens.txt --logits " + dir + "/l.npy");
  if (r.exit_code != 0) throw std::runtime_error("forward failed: " + r.err);
  Tensor logits = io::read_npy(dir + "/l.npy");  // [T, V]
  const int64_t V = logits.dim(1);
  Reference ref;
  for (size_t i = tokens.size() - n_cont; i < tokens.size(); ++i) {
    const float* row = logits.f32() + static_cast<int64_t>(i - 1) * V;
    double mx = row[0];
    int64_t arg = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > mx) mx = row[v], arg = v;
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - mx);
    ref.logprob += row[tokens[i]] - mx - std::log(s);
    ref.greedy = ref.greedy && arg == tokens[i];
  }
  return ref;
}

TEST(EvalScoring, LoglikelihoodEqualsForwardLogSoftmaxIncludingInsideWordBoundary) {
  const std::string dir = make_model_dir("hybrid");
  Model model = Model::load(dir);
  auto tok = open_tokenizer(dir);
  eval::Scorer scorer(model, tok.get(), {.batch = 3});
  const std::vector<eval::LoglikelihoodRequest> reqs = {
      {"The quick brown fo", "x jumps over"},           // boundary inside "fox"
      {"A phonebook lists na", "mes and numbers"},       // inside "names"
      {"The lazy dog ", "sleeps."},                      // trailing space moves to the continuation
      {"the fox reads the", " phonebook"},
      {"Quickly, brownly, foxily the dog", " sleeps.\n"},
  };
  // The inside-word split must matter, or this test would not check lm-eval's rule.
  auto [c0, k0] = scorer.encode_pair(reqs[0].context, reqs[0].continuation);
  std::vector<int32_t> naive = tok->encode(reqs[0].continuation);
  std::vector<int32_t> ctx_alone = tok->encode(reqs[0].context);
  EXPECT_NE(k0, naive) << "the boundary inside 'fox' should tokenize differently from the words alone";
  EXPECT_EQ(c0, ctx_alone);
  auto [c2, k2] = scorer.encode_pair(reqs[2].context, reqs[2].continuation);
  EXPECT_EQ(tok->decode(c2), "The lazy dog");
  EXPECT_EQ(c2.size() + k2.size(), tok->encode("The lazy dog sleeps.").size());

  std::vector<eval::LoglikelihoodResult> got = scorer.loglikelihood(reqs);
  ASSERT_EQ(got.size(), reqs.size());
  double spread = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto [ctx, cont] = scorer.encode_pair(reqs[i].context, reqs[i].continuation);
    std::vector<int32_t> whole = ctx;
    whole.insert(whole.end(), cont.begin(), cont.end());
    // lm-eval's rule: the continuation is the tail of the whole text's tokens after as many
    // tokens as the context alone has (ctx + cont need not be the whole text's tokens).
    std::vector<int32_t> all = tok->encode(reqs[i].context + reqs[i].continuation);
    EXPECT_EQ(cont, std::vector<int32_t>(all.begin() + static_cast<std::ptrdiff_t>(ctx.size()), all.end())) << i;
    Reference ref = reference_from_cli(dir, whole, cont.size());
    std::printf("[err] request %zu: %zu cont tokens, logprob %.6f vs forward %.6f\n", i, cont.size(), got[i].logprob, ref.logprob);
    EXPECT_EQ(got[i].tokens, static_cast<int64_t>(cont.size()));
    // docs/numerics.md: batched (padded) vs single-sequence forward, fp32 logits, double sums.
    EXPECT_NEAR(got[i].logprob, ref.logprob, 2e-4 * std::max(1.0, std::fabs(ref.logprob))) << i;
    EXPECT_EQ(got[i].is_greedy, ref.greedy) << i;
    spread = std::max(spread, std::fabs(got[i].logprob - got[0].logprob));
  }
  EXPECT_GT(spread, 0.5) << "log-probs barely differ between requests: the check would be weak";
}

TEST(EvalScoring, GreedyContinuationIsGreedyAndRecurrentPathAgrees) {
  const std::string dir = make_model_dir("mamba2");
  Model model = Model::load(dir);
  auto tok = open_tokenizer(dir);
  std::vector<int32_t> ctx = tok->encode(kText);
  GenerateOptions g;
  g.max_tokens = 5;
  g.stop_at_eos = false;
  std::vector<int32_t> greedy = generate(model, ctx, g);
  std::vector<int32_t> other = greedy;
  other[2] = (other[2] + 1) % 100;
  eval::Scorer batched(model, tok.get(), {.batch = 4});
  eval::Scorer recurrent(model, tok.get(), {.batch = 4, .chunk = 7, .long_request = 4});
  std::vector<eval::TokenRequest> reqs = {{ctx, greedy}, {ctx, other}, {{ctx.begin(), ctx.begin() + 9}, {ctx[9], ctx[10]}}};
  auto a = batched.loglikelihood_tokens(reqs);
  auto b = recurrent.loglikelihood_tokens(reqs);
  EXPECT_TRUE(a[0].is_greedy);
  EXPECT_FALSE(a[1].is_greedy);
  EXPECT_GT(a[0].logprob, a[1].logprob);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_NEAR(a[i].logprob, b[i].logprob, 1e-4 * std::max(1.0, std::fabs(a[i].logprob))) << i;
    EXPECT_EQ(a[i].is_greedy, b[i].is_greedy) << i;
  }
  EXPECT_GT(recurrent.peak_ssm_state_bytes(), 0);
  EXPECT_EQ(recurrent.peak_kv_cache_bytes(), 0);
  // Bad requests are errors, not crashes.
  EXPECT_THROW(batched.loglikelihood_tokens({{ctx, {}}}), Error);
  EXPECT_THROW(batched.loglikelihood_tokens({{ctx, {1 << 20}}}), Error);
}

// Rolling log-likelihood, full recurrence and lm-eval windows, against direct forwards.
TEST(EvalScoring, RollingMatchesForwardsForRecurrenceAndWindows) {
  const std::string dir = make_model_dir("hybrid");
  Model model = Model::load(dir);
  auto tok = open_tokenizer(dir);
  std::vector<int32_t> tokens = tok->encode(std::string(kText) + kText);
  const int64_t V = model.config().vocab_size, N = static_cast<int64_t>(tokens.size());
  ASSERT_GT(N, 40);
  auto forward_sum = [&](const std::vector<int32_t>& input, const std::vector<int32_t>& targets, size_t first) {
    Tensor ids = Tensor::empty({1, static_cast<int64_t>(input.size())}, DType::I32);  // [1, T]
    std::memcpy(ids.raw(), input.data(), input.size() * 4);
    Tensor logits = model.forward(ids);  // [1, T, V]
    double s = 0;
    for (size_t i = first; i < input.size(); ++i) s += eval::log_softmax_at(logits.f32() + static_cast<int64_t>(i) * V, V, targets[i]);
    return s;
  };
  eval::Scorer full(model, tok.get(), {.chunk = 13});
  const int32_t prefix = full.prefix_token();
  std::vector<int32_t> input = {prefix};
  input.insert(input.end(), tokens.begin(), tokens.end() - 1);
  eval::RollingResult r = full.loglikelihood_rolling_tokens(tokens);
  double want = forward_sum(input, tokens, 0);
  std::printf("[err] rolling recurrent %.6f vs forward %.6f\n", r.logprob, want);
  EXPECT_NEAR(r.logprob, want, 1e-4 * std::fabs(want));
  EXPECT_EQ(r.tokens, N);

  // Windows of 16: the first sees [prefix] + tokens[0, 15); each next predicts up to 16 new
  // tokens, seeing exactly the 16 tokens before each (lm-eval, context_len = 1).
  const int64_t M = 16;
  eval::Scorer windowed(model, tok.get(), {.batch = 2, .max_length = M});
  eval::RollingResult w = windowed.loglikelihood_rolling_tokens(tokens);
  double manual = forward_sum({input.begin(), input.begin() + M}, {tokens.begin(), tokens.begin() + M}, 0);
  for (int64_t end = M; end < N;) {
    int64_t next = std::min(N, end + M);
    std::vector<int32_t> in(tokens.begin() + (next - M - 1), tokens.begin() + (next - 1));
    std::vector<int32_t> tg(tokens.begin() + (next - M), tokens.begin() + next);
    manual += forward_sum(in, tg, static_cast<size_t>(M - (next - end)));
    end = next;
  }
  std::printf("[err] rolling windowed %.6f vs manual windows %.6f (full context %.6f)\n", w.logprob, manual, want);
  EXPECT_NEAR(w.logprob, manual, 1e-4 * std::fabs(manual));
  EXPECT_GT(std::fabs(w.logprob - want), 1e-3) << "windows of 16 should lose context and change the sum";
}

// Greedy text without stop strings, then again with a stop string taken from its middle: the
// result is everything before the stop's first place in the whole text. Returns the free text.
std::string check_generate_until_cuts(uint64_t seed) {
  const std::string dir = make_model_dir("mamba2", seed);
  Model model = Model::load(dir);
  auto tok = open_tokenizer(dir);
  eval::Scorer scorer(model, tok.get());
  eval::GenerateUntilResult free = scorer.generate_until(kText, {.until = {}, .max_gen_tokens = 12});
  GenerateOptions g;
  g.max_tokens = 12;
  g.stop_at_eos = false;
  // Greedy decoding ends at the tokenizer's EOS (not part of the text) or after 12 tokens.
  std::vector<int32_t> want = generate(model, tok->encode(kText), g);
  for (size_t i = 0; i < want.size(); ++i)
    if (want[i] == tok->eos_id()) want.resize(i);
  EXPECT_EQ(free.tokens, want);
  std::vector<int32_t> decodable;  // the embedding is padded past the tokenizer's vocabulary
  for (int32_t t : want)
    if (t < tok->vocab_size()) decodable.push_back(t);
  EXPECT_EQ(free.text, tok->decode(decodable));
  if (free.text.size() < 3) return free.text;
  const std::string stop = free.text.substr(free.text.size() / 2, 2);
  eval::GenerateUntilResult cut = scorer.generate_until(kText, {.until = {stop}, .max_gen_tokens = 12});
  EXPECT_EQ(cut.text, free.text.substr(0, free.text.find(stop))) << "seed " << seed << ", stop '" << stop << "'";
  EXPECT_LE(cut.tokens.size(), free.tokens.size());
  EXPECT_GT(cut.ssm_state_bytes, 0);
  EXPECT_EQ(cut.kv_cache_bytes, 0);
  return free.text;
}

TEST(EvalScoring, GenerateUntilCutsAtStopString) {
  const std::string text = check_generate_until_cuts(test_seed());
  if (text.size() < 3) GTEST_SKIP() << "greedy text too short to pick a stop string from: '" << text << "'";
}

// At this seed the greedy text is "f\u02AC il@\uFFFD uiD\x17" and the stop string is the first
// two bytes of its U+FFFD. After "f", the byte-fallback token <0xCA> arrives alone and the
// SentencePiece decoder writes it as U+FFFD until <0xAC> completes "\u02AC": a search of that
// unsettled text cut at "f" (CI's sanitizer run, 2026-12-06).
TEST(EvalScoring, GenerateUntilWaitsForAByteFallbackCharacterToSettle) {
  const std::string text = check_generate_until_cuts(68665890430831ull);
  ASSERT_EQ(text.substr(0, 6), "f\xCA\xACil@") << "the pinned seed no longer makes the byte-fallback text this test is about";
  EXPECT_NE(text.find("\xEF\xBF\xBD"), std::string::npos);
}

}  // namespace
