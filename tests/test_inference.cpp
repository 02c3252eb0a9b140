// Recurrent inference: prefill in chunks then one-token decode gives the logits of one full
// forward at every position, for every architecture; state size does not grow for SSMs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "config/presets.h"
#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/decoder.h"
#include "infer/generate.h"
#include "infer/sampler.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/adamw.h"
#include "perturbed_model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab) {
  Rng rng(test_seed() + 11);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(vocab));
  return t;
}

Tensor as_batch(const std::vector<int32_t>& tokens, size_t begin, size_t end) {
  Tensor ids = Tensor::empty({1, static_cast<int64_t>(end - begin)}, DType::I32);
  std::memcpy(ids.raw(), tokens.data() + begin, (end - begin) * 4);
  return ids;
}

// Logits [T, V] from: prefill `prefill_len` tokens in chunks of `chunk`, then decode one by one.
Tensor incremental_logits(Model& m, const std::vector<int32_t>& tokens, size_t prefill_len, size_t chunk) {
  const int64_t V = m.config().vocab_size, T = static_cast<int64_t>(tokens.size());
  Tensor out = Tensor::empty({T, V});
  SequenceState state(m.config(), 1);
  size_t pos = 0;
  while (pos < tokens.size()) {
    size_t n = pos < prefill_len ? std::min(chunk, prefill_len - pos) : 1;
    Tensor logits = m.forward(as_batch(tokens, pos, pos + n), &state);  // [1, n, V]
    std::memcpy(out.f32() + pos * static_cast<size_t>(V), logits.raw(), logits.nbytes());
    pos += n;
  }
  EXPECT_EQ(state.position(), T);
  return out;
}

struct Case {
  const char* name;
  ModelConfig (*make)();
};

ModelConfig small(const char* preset) {
  ModelConfig c = preset_config(preset);
  c.mamba2.chunk_size = 16;  // T = 45 spans three chunks, the last one partial
  return c;
}

const Case kCases[] = {
    {"transformer", [] { return small("transformer-tiny"); }},
    {"llama", [] { ModelConfig c = small("transformer-tiny"); make_llama_style(c); return c; }},
    {"mamba", [] { return small("mamba-tiny"); }},
    {"mamba2", [] { return small("mamba2-tiny"); }},
    {"hybrid", [] { return small("hybrid-tiny"); }},
    {"hybrid_mamba1", [] { ModelConfig c = small("hybrid-tiny"); c.mamba_version = 1; return c; }},
};

class Incremental : public ::testing::TestWithParam<Case> {};

// docs/numerics.md: 1e-5 relative (L2 over all positions), fp32 both ways.
TEST_P(Incremental, PrefillThenDecodeEqualsFullForward) {
  Model m = perturbed_model(GetParam().make());
  std::vector<int32_t> tokens = random_tokens(45, m.config().vocab_size);
  Tensor full = m.forward(as_batch(tokens, 0, tokens.size())).reshape({45, m.config().vocab_size});
  for (size_t prefill_len : {size_t(1), size_t(20), size_t(33)}) {
    for (size_t chunk : {size_t(7), size_t(16)}) {
      Tensor inc = incremental_logits(m, tokens, prefill_len, chunk);
      double err = relative_l2(inc, full);
      std::printf("[err] %s prefill %zu chunk %zu: rel L2 %.3g\n", GetParam().name, prefill_len, chunk, err);
      EXPECT_LE(err, 1e-5) << "prefill " << prefill_len << " chunk " << chunk;
    }
  }
  // Logits must vary across positions and vocabulary, or the comparison proves nothing.
  double spread = 0;
  for (int64_t i = 1; i < full.numel(); ++i) spread = std::max(spread, std::fabs(double(full.f32()[i]) - full.f32()[0]));
  EXPECT_GT(spread, 0.1);
}

// A prompt longer than Mamba-1's prefill slice (model/mamba1.h: kInferenceSlice, 128 tokens): one
// forward call (sliced inside, on a state of its own) and a prefill in calls of 200 tokens (sliced,
// continuing the sequence's state) both give the logits of a prefill in calls of 16 (never sliced).
// Tolerance as above.
TEST_P(Incremental, LongPromptsInOneCallEqualShortChunks) {
  Model m = perturbed_model(GetParam().make());
  const int64_t V = m.config().vocab_size, T = 300;
  std::vector<int32_t> tokens = random_tokens(T, V);
  Tensor short_chunks = incremental_logits(m, tokens, T, 16);
  Tensor one_call = m.forward(as_batch(tokens, 0, tokens.size())).reshape({T, V});
  Tensor long_chunks = incremental_logits(m, tokens, T, 200);
  EXPECT_LE(relative_l2(one_call, short_chunks), 1e-5);
  EXPECT_LE(relative_l2(long_chunks, short_chunks), 1e-5);
}

TEST_P(Incremental, LastOnlyEqualsLastRow) {
  Model m = perturbed_model(GetParam().make());
  std::vector<int32_t> tokens = random_tokens(21, m.config().vocab_size);
  const int64_t V = m.config().vocab_size;
  Tensor full = m.forward(as_batch(tokens, 0, tokens.size()));
  Tensor last = m.forward(as_batch(tokens, 0, tokens.size()), nullptr, /*last_only=*/true);
  ASSERT_EQ(last.shape(), (Shape{1, 1, V}));
  Tensor want = full.reshape({21, V}).slice0(20, 21);
  EXPECT_LE(relative_l2(last.reshape({1, V}), want), 1e-6);
}

// Three sequences with prompts of different lengths, prefilled through their slots of one
// planned state, then decoded together with BatchDecoder (each at its own position, greedy
// tokens fed back on the device side): every sequence's logits at every step equal those of
// one full forward over that sequence's own tokens. Tolerance as above (1e-5, fp32).
TEST_P(Incremental, BatchedDecodeOfRaggedPromptsEqualsFullForward) {
  Model m = perturbed_model(GetParam().make());
  const int64_t V = m.config().vocab_size, steps = 6;
  const std::vector<size_t> prompt_lens = {5, 17, 1};
  const int64_t B = static_cast<int64_t>(prompt_lens.size());
  StateOptions so;
  so.kv_capacity = 17 + steps;  // planned, as on CUDA
  SequenceState state(m.config(), B, so);
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> first;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> t = random_tokens(static_cast<int64_t>(prompt_lens[b]) + 40 * b + 3, V);
    t.resize(prompt_lens[static_cast<size_t>(b)]);
    SequenceState slot = state.slot(b);
    Tensor logits = m.forward(as_batch(t, 0, t.size()), &slot, /*last_only=*/true);  // [1, 1, V]
    state.advance(static_cast<int64_t>(t.size()), b);
    int32_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (logits.f32()[j] > logits.f32()[best]) best = static_cast<int32_t>(j);
    t.push_back(best);
    first.push_back(best);
    seqs.push_back(t);
  }
  EXPECT_EQ(state.position(0), 5);
  EXPECT_EQ(state.position(1), 17);
  BatchDecoder dec(m, state);
  dec.set_tokens(first);
  double worst = 0;
  for (int64_t s = 0; s < steps; ++s) {
    dec.step();
    std::vector<int32_t> next = dec.tokens();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int32_t>& t = seqs[static_cast<size_t>(b)];
      Tensor full = m.forward(as_batch(t, 0, t.size()));  // [1, len, V]
      Tensor want = full.reshape({static_cast<int64_t>(t.size()), V}).slice0(static_cast<int64_t>(t.size()) - 1,
                                                                             static_cast<int64_t>(t.size()));
      std::vector<float> got = dec.logits_host(b);
      Tensor got_t = Tensor::view_of(got.data(), {1, V}, DType::F32, nullptr);
      worst = std::max(worst, relative_l2(got_t, want));
      int32_t best = 0;
      for (int64_t j = 1; j < V; ++j)
        if (want.f32()[j] > want.f32()[best]) best = static_cast<int32_t>(j);
      EXPECT_EQ(next[static_cast<size_t>(b)], best) << "sequence " << b << " step " << s;
      t.push_back(next[static_cast<size_t>(b)]);
    }
  }
  std::printf("[err] %s batched ragged decode: worst rel L2 %.3g\n", GetParam().name, worst);
  EXPECT_LE(worst, 1e-5);
  EXPECT_EQ(state.position(2), 1 + steps);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Incremental, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(State, SsmStateIsConstantKvCacheGrows) {
  Model ssm = perturbed_model(small("mamba2-tiny"));
  Model tf = perturbed_model(small("transformer-tiny"));
  for (Model* m : {&ssm, &tf}) {
    SequenceState s(m->config(), 1);
    prefill(*m, s, random_tokens(10, 256));
    int64_t state10 = s.ssm_state_bytes(), kv10 = s.kv_cache_bytes();
    prefill(*m, s, random_tokens(90, 256));
    EXPECT_EQ(s.ssm_state_bytes(), state10);
    if (m == &ssm) {
      EXPECT_EQ(s.kv_cache_bytes(), 0);
      EXPECT_EQ(state10, m->config().state_bytes());
    } else {
      EXPECT_EQ(kv10, 10 * m->config().kv_bytes_per_token());
      EXPECT_EQ(s.kv_cache_bytes(), 100 * m->config().kv_bytes_per_token());
    }
  }
}

// A CPU state told the most tokens it will hold (kv_limit, as generate and bench set it) grows no
// further than that: a prompt of 40 of a 50-token run takes 50 rows at once (not 40, then 80
// beside 40), one of 10 takes min(64, 50) rows, and past the limit the cache doubles again (a
// limit bounds the growth, it does not refuse tokens). The logits through a limited state equal
// those through an unlimited one (the copy on growth keeps every row).
TEST(State, KvGrowthStopsAtTheKnownLimit) {
  Model m = perturbed_model(small("transformer-tiny"));
  const int64_t row_bytes = m.config().kv_bytes_per_token();  // K and V of every layer, one token
  const std::vector<int32_t> tokens = random_tokens(60, m.config().vocab_size);
  const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + 40);
  StateOptions limited;
  limited.kv_limit = 50;
  SequenceState a(m.config(), 1, limited), b(m.config(), 1);
  std::vector<float> la = prefill(m, a, prompt), lb = prefill(m, b, prompt);
  EXPECT_EQ(a.kv_allocated_bytes(), 50 * row_bytes);
  EXPECT_EQ(b.kv_allocated_bytes(), 64 * row_bytes);
  for (size_t i = 40; i < tokens.size(); ++i) {  // 20 decode steps: up to the limit, then past it
    EXPECT_EQ(la, lb) << "token " << i;
    la = decode_step(m, a, tokens[i]);
    lb = decode_step(m, b, tokens[i]);
    if (i + 1 == 50) {
      EXPECT_EQ(a.kv_allocated_bytes(), 50 * row_bytes);
    }
  }
  EXPECT_EQ(la, lb);
  EXPECT_EQ(a.kv_allocated_bytes(), 100 * row_bytes);  // 51 rows needed: doubled from 50
  SequenceState c(m.config(), 1, limited);
  prefill(m, c, std::vector<int32_t>(tokens.begin(), tokens.begin() + 10));
  EXPECT_EQ(c.kv_allocated_bytes(), 50 * row_bytes);  // min(64, 50)
}

// Mamba-1 reuses -exp(A_log) between inference forwards (mamba1.h), keyed on A_log's write
// generation (Tensor::version): a change of A_log in place that is marked written, as a direct
// write followed by mark_written() or a finite-difference check makes, must show in the next forward.
TEST(State, Mamba1SeesAnALogChangedInPlace) {
  Model m = perturbed_model(small("mamba-tiny"));
  Tensor ids = as_batch(random_tokens(12, 256), 0, 12);
  const Tensor before = m.forward(ids).clone();
  Tensor* A_log = nullptr;
  for (ParamRef& p : m.params())
    if (p.name.find("A_log") != std::string::npos) A_log = p.tensor;
  ASSERT_NE(A_log, nullptr);
  const uint64_t version = A_log->version();
  for (int64_t i = 0; i < A_log->numel(); ++i) A_log->f32()[i] += 0.25f;
  A_log->mark_written();
  EXPECT_NE(A_log->version(), version);
  const Tensor after = m.forward(ids).clone();
  // The reference: a model built afresh from the changed weights computes A anew.
  Model fresh(m.config());
  fresh.init_random(1);
  for (size_t i = 0; i < m.params().size(); ++i)
    std::memcpy(fresh.params()[i].tensor->raw(), m.params()[i].tensor->raw(), m.params()[i].tensor->nbytes());
  EXPECT_EQ(relative_l2(after, fresh.forward(ids)), 0.0);
  EXPECT_GT(relative_l2(after, before), 1e-4);
}

// The same through the training path: an inference forward, a train_step and an AdamW step (which
// update A_log in place), then an inference forward again (as the trainer's validation runs) must
// use the new A_log: it equals a model built afresh from the stepped weights, and differs from
// those weights with the old A_log (what a stale -exp(A_log) would give), so the check has teeth.
TEST(State, Mamba1InferenceFollowsAnAdamWStepOfALog) {
  Model m = perturbed_model(small("mamba-tiny"));
  const int64_t V = m.config().vocab_size, T = 12;
  std::vector<int32_t> tokens = random_tokens(T + 1, V);
  Tensor ids = as_batch(tokens, 0, T), targets = as_batch(tokens, 1, T + 1);
  const Tensor before = m.forward(ids).clone();  // fills the layer's -exp(A_log)
  std::vector<Tensor> old_A_log;
  for (ParamRef& p : m.params())
    if (p.name.find("A_log") != std::string::npos) old_A_log.push_back(p.tensor->clone());
  ASSERT_FALSE(old_A_log.empty());
  m.allocate_grads();
  m.zero_grads();
  m.train_step(ids, targets, nullptr);
  AdamW opt(m.params(), AdamWConfig{});
  opt.step(/*lr=*/1e-2);
  const Tensor after = m.forward(ids).clone();
  // Fresh models from the stepped weights: as they are, and with the old A_log put back.
  auto copy_of = [&](bool old_a) {
    Model fresh(m.config());
    fresh.init_random(1);
    size_t k = 0;
    for (size_t i = 0; i < m.params().size(); ++i) {
      const bool is_a = m.params()[i].name.find("A_log") != std::string::npos;
      const Tensor& src = is_a && old_a ? old_A_log[k] : *m.params()[i].tensor;
      k += is_a;
      std::memcpy(fresh.params()[i].tensor->raw(), src.raw(), src.nbytes());
    }
    return fresh;
  };
  Model stepped = copy_of(false), stale = copy_of(true);
  EXPECT_EQ(relative_l2(after, stepped.forward(ids)), 0.0);
  const double stale_diff = relative_l2(after, stale.forward(ids));
  std::printf("[err] logits with the stepped A_log vs the old one: rel %.3g\n", stale_diff);
  EXPECT_GT(stale_diff, 1e-6);
  EXPECT_GT(relative_l2(after, before), 1e-4);
}

TEST(Generate, GreedyIsArgmaxOfForwardAndRejectsBadIds) {
  Model m = perturbed_model(small("hybrid-tiny"));
  std::vector<int32_t> prompt = random_tokens(12, 256);
  GenerateOptions opts;
  opts.max_tokens = 6;
  opts.stop_at_eos = false;
  std::vector<int32_t> out = generate(m, prompt, opts);
  ASSERT_EQ(out.size(), 6u);
  std::vector<int32_t> seq = prompt;
  for (int32_t t : out) {
    Tensor logits = m.forward(as_batch(seq, 0, seq.size()), nullptr, true);
    const float* l = logits.f32();
    EXPECT_EQ(t, std::max_element(l, l + 256) - l);
    seq.push_back(t);
  }
  EXPECT_THROW(generate(m, {1, 2, 256}, opts), Error);
  EXPECT_THROW(generate(m, {-1}, opts), Error);
}

TEST(Sampler, GreedyTopKTopPAndSeed) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f, 0.0f};
  EXPECT_EQ(Sampler(SamplingOptions{}).sample(logits.data(), 5), 1);
  SamplingOptions k1{1.0, 1, 1.0, 3};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Sampler(k1).sample(logits.data(), 5), 1);
  SamplingOptions p_small{1.0, 0, 1e-3, 3};
  Sampler sp(p_small);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sp.sample(logits.data(), 5), 1);
  // top-k 2 only ever yields the two best tokens.
  Sampler s2(SamplingOptions{1.0, 2, 1.0, 5});
  for (int i = 0; i < 200; ++i) {
    int t = s2.sample(logits.data(), 5);
    EXPECT_TRUE(t == 1 || t == 3);
  }
  // Same seed, same stream; different seed, a different stream.
  Sampler a(SamplingOptions{1.0, 0, 1.0, 42}), b(SamplingOptions{1.0, 0, 1.0, 42}), c(SamplingOptions{1.0, 0, 1.0, 43});
  std::vector<int> sa, sb, sc;
  for (int i = 0; i < 50; ++i) {
    sa.push_back(a.sample(logits.data(), 5));
    sb.push_back(b.sample(logits.data(), 5));
    sc.push_back(c.sample(logits.data(), 5));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  // Frequencies follow softmax(logits / T): 20000 draws, 4-sigma bounds.
  Sampler f(SamplingOptions{0.7, 0, 1.0, 9});
  std::vector<int> counts(5, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[static_cast<size_t>(f.sample(logits.data(), 5))];
  double z = 0;
  for (float l : logits) z += std::exp(l / 0.7);
  for (size_t i = 0; i < 5; ++i) {
    double p = std::exp(logits[i] / 0.7) / z;
    EXPECT_NEAR(counts[i] / double(n), p, 4 * std::sqrt(p * (1 - p) / n) + 1e-9) << i;
  }
  EXPECT_THROW(Sampler(SamplingOptions{-1.0, 0, 1.0, 0}), Error);
  EXPECT_THROW(Sampler(SamplingOptions{1.0, 0, 0.0, 0}), Error);
}

}  // namespace

// Packed training (docs/training.md: documents share a window, masks and state resets keep
// them apart): the loss train_step computes over a window of three documents with seq_idx, and
// the loss of forward with the same seq_idx (the trainer's validation), equal the sum of each
// document's loss from a forward over that document alone. The targets
// that cross a boundary (a document's last token predicting the next one's first) are ignored
// on both sides. Rotary positions are relative, so a document's offset in the window changes
// nothing. Tolerance 1e-5 relative, as the prefill row (fp32 sums in another order).
TEST_P(Incremental, PackedTrainingAndValidationLossEqualEachDocumentAlone) {
  Model m = perturbed_model(GetParam().make());
  const int64_t V = m.config().vocab_size;
  const std::vector<size_t> doc_lens = {13, 21, 11};
  size_t T = 0;
  for (size_t n : doc_lens) T += n;
  std::vector<int32_t> tokens = random_tokens(static_cast<int64_t>(T) + 1, V);
  Tensor ids = as_batch(tokens, 0, T);
  Tensor targets = Tensor::empty({1, static_cast<int64_t>(T)}, DType::I32);
  Tensor seq_idx = Tensor::empty({1, static_cast<int64_t>(T)}, DType::I32);
  double want = 0;
  int64_t want_n = 0;
  size_t begin = 0;
  for (size_t d = 0; d < doc_lens.size(); ++d) {
    const size_t end = begin + doc_lens[d];
    for (size_t t = begin; t < end; ++t) {
      seq_idx.data<int32_t>()[t] = static_cast<int32_t>(d + 40);  // ids as a dataset gives them: any increasing values
      targets.data<int32_t>()[t] = t + 1 < end ? tokens[t + 1] : -1;  // I32 [1, T]
    }
    Tensor logits = m.forward(as_batch(tokens, begin, end)).reshape({static_cast<int64_t>(end - begin), V});
    Tensor doc_targets = Tensor::empty({static_cast<int64_t>(end - begin)}, DType::I32);
    std::memcpy(doc_targets.raw(), targets.data<int32_t>() + begin, (end - begin) * 4);
    ops::CrossEntropyResult r = ops::cross_entropy_mean(logits, doc_targets, nullptr);
    want += r.sum_loss;
    want_n += r.n_valid;
    begin = end;
  }
  m.allocate_grads();
  ops::CrossEntropyResult got = m.train_step(ids, targets, &seq_idx);
  EXPECT_EQ(got.n_valid, want_n);
  std::printf("[err] %s packed loss %.9g vs documents alone %.9g: rel %.3g\n", GetParam().name, got.sum_loss, want,
              std::fabs(got.sum_loss - want) / std::fabs(want));
  EXPECT_LE(std::fabs(got.sum_loss - want), 1e-5 * std::fabs(want));
  // The forward the trainer's validation runs, with the same document ids.
  Tensor logits = m.forward(ids, nullptr, false, &seq_idx).reshape({static_cast<int64_t>(T), V});
  ops::CrossEntropyResult scored = ops::cross_entropy_mean(logits, targets.reshape({static_cast<int64_t>(T)}), nullptr);
  EXPECT_LE(std::fabs(scored.sum_loss - want), 1e-5 * std::fabs(want));
  // Without seq_idx the later documents see the earlier ones: their logits must move, or the
  // comparisons above would not show that the masks act. (The summed loss is not the measure:
  // at some draws the changes of a tiny random model cancel in it to below 1e-4 of the total.)
  Tensor unmasked = m.forward(ids).reshape({static_cast<int64_t>(T), V});  // [T, V]
  double moved = 0;  // largest logit change after the first document
  for (int64_t i = static_cast<int64_t>(doc_lens[0]) * V; i < static_cast<int64_t>(T) * V; ++i)
    moved = std::max(moved, static_cast<double>(std::fabs(unmasked.f32()[i] - logits.f32()[i])));
  std::printf("[err] %s largest logit change without the masks %.3g\n", GetParam().name, moved);
  EXPECT_GT(moved, 1e-3);
}

// Keeping every activation (set_keep_activations) and recomputing them all change what the
// backward reads from memory, not what it computes: loss and every gradient equal the default's.
TEST_P(Incremental, KeptAndRecomputedActivationsGiveTheDefaultLossAndGradients) {
  Model m = perturbed_model(GetParam().make());
  const int64_t V = m.config().vocab_size, B = 2, T = 29;
  std::vector<int32_t> tokens = random_tokens(B * T + 1, V);
  Tensor ids = Tensor::empty({B, T}, DType::I32), targets = Tensor::empty({B, T}, DType::I32);
  Tensor seq_idx = Tensor::empty({B, T}, DType::I32);
  for (int64_t i = 0; i < B * T; ++i) {
    ids.data<int32_t>()[i] = tokens[size_t(i)];
    targets.data<int32_t>()[i] = tokens[size_t(i + 1)];
    seq_idx.data<int32_t>()[i] = static_cast<int32_t>(i % T < 17 ? 0 : 1);  // two documents a row
  }
  m.allocate_grads();
  auto step = [&](unsigned keep, bool recompute, std::vector<std::vector<float>>& grads) {
    m.zero_grads();
    m.set_keep_activations(keep);
    const double loss = m.train_step(ids, targets, &seq_idx, 1.0f, recompute).sum_loss;
    grads.clear();
    for (const ParamRef& p : m.params()) {
      const Tensor g = to_host(*p.grad);
      grads.emplace_back(g.f32(), g.f32() + g.numel());
    }
    return loss;
  };
  std::vector<std::vector<float>> lean, kept, again;
  const double loss_lean = step(0, false, lean);
  const double loss_again = step(kKeepAll, true, again);  // recompute wins over keep
  EXPECT_EQ(loss_again, loss_lean);
  for (size_t i = 0; i < lean.size(); ++i) EXPECT_EQ(again[i], lean[i]) << m.params()[i].name << " (recomputed)";
  // everything, each kind alone, and the pairs whose buffers the Mamba-2 forward orders apart
  for (unsigned keep : {unsigned(kKeepAll), unsigned(kKeepNorms), unsigned(kKeepMlp), unsigned(kKeepGate),
                        unsigned(kKeepConv), unsigned(kKeepGate | kKeepConv), unsigned(kKeepMlp | kKeepGate)}) {
    const double loss_kept = step(keep, false, kept);
    EXPECT_EQ(loss_kept, loss_lean) << keep_kinds_name(keep);
    ASSERT_EQ(kept.size(), lean.size());
    for (size_t i = 0; i < lean.size(); ++i)
      EXPECT_EQ(kept[i], lean[i]) << m.params()[i].name << " (kept: " << keep_kinds_name(keep) << ")";
  }
  m.set_keep_activations(0);
}
