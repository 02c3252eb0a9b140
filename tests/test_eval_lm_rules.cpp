// lm-evaluation-harness's rules where mambalm's scores used to differ from them (issue 15):
// acc_norm by characters, letter-format acc_norm == acc, no document as its own few-shot
// example, word counts as re.split(r"\s+"), Unicode rstrip of the context, BOS for
// tokenizers that add it, is_greedy and the loglikelihood task. Each test would fail on the
// old behaviour; reference log-likelihoods come from plain forwards with log-softmax by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "eval/bos_policy.h"
#include "eval/runner.h"
#include "eval/text_rules.h"
#include "infer/generate.h"
#include "model/model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

// A tiny model with every weight moved by noise (log-probs differ strongly by token); its
// vocabulary holds the bytes tokenizer's specials (BOS 257).
Model noisy_model(const std::string& arch = "mamba2") {
  const std::string dir = temp_dir("eval-rules-" + arch);
  CommandResult r = run_cli("init --arch " + arch + " --vocab 320 --seed 3 --out " + dir + "/m");
  if (r.exit_code != 0) throw std::runtime_error("init failed: " + r.err);
  Model model = Model::load(dir + "/m");
  Rng noise(test_seed() + 11);
  for (ParamRef& p : model.params())
    for (int64_t i = 0; i < p.tensor->numel(); ++i) p.tensor->f32()[i] += static_cast<float>(0.15 * noise.uniform(-1, 1));
  return model;
}

// Sum of log softmax(logits[i-1])[tokens[i]] for i in [first, n), from one plain forward.
double forward_logprob(Model& model, const std::vector<int32_t>& tokens, size_t first) {
  Tensor ids = Tensor::empty({1, static_cast<int64_t>(tokens.size())}, DType::I32);  // [1, T]
  for (size_t i = 0; i < tokens.size(); ++i) ids.data<int32_t>()[i] = tokens[i];
  Tensor logits = model.forward(ids);  // [1, T, V]
  const int64_t V = model.config().vocab_size;
  double s = 0;
  for (size_t i = first; i < tokens.size(); ++i) {
    const float* row = logits.f32() + static_cast<int64_t>(i - 1) * V;
    double mx = row[0], z = 0;
    for (int64_t v = 1; v < V; ++v) mx = std::max<double>(mx, row[v]);
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    s += row[tokens[i]] - mx - std::log(z);
  }
  return s;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(EvalLmRules, PythonStringRules) {
  EXPECT_EQ(eval::python_len("d\xc3\xa9j\xc3\xa0 vu"), 7);  // "déjà vu": 9 bytes
  EXPECT_EQ(eval::python_len("\xf0\x9f\x98\x80"), 1);
  // re.split(r"\s+", doc): leading and trailing whitespace give empty strings that count.
  EXPECT_EQ(eval::lm_eval_word_count("  Hello   world \n"), 4);  // the old count gave 2
  EXPECT_EQ(eval::lm_eval_word_count("Hello world"), 2);
  EXPECT_EQ(eval::lm_eval_word_count(""), 1);
  EXPECT_EQ(eval::lm_eval_word_count("a\xc2\xa0" "b"), 2);       // U+00A0 is \s in Python
  EXPECT_EQ(eval::lm_eval_word_count("a\xe2\x80\x8b" "b"), 1);   // U+200B is not
  EXPECT_EQ(eval::lm_eval_word_count("\xe3\x80\x80x"), 2);       // U+3000 at the start
  EXPECT_EQ(eval::lm_eval_word_count("a\x1c" "b"), 2);           // Python counts U+001C too
  EXPECT_EQ(eval::python_rstrip_size("abc \xe3\x80\x80\xc2\xa0"), 3u);
  EXPECT_EQ(eval::python_rstrip_size("\xc3\xa9\xe2\x80\x8b"), 5u);
  for (const char* bad : {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"})
    EXPECT_THROW(eval::python_len(bad), Error) << bad;
}

// "fjord" has 5 characters and 5 bytes, "déjà vu" 7 characters and 9 bytes.
TEST(EvalLmRules, AccNormDividesByCharactersNotBytes) {
  const std::vector<std::string> choices = {"fjord", "d\xc3\xa9j\xc3\xa0 vu"};
  const eval::McDecision d = eval::decide_mc({-10.0, -15.0}, choices);
  EXPECT_EQ(d.pred, 0);
  EXPECT_EQ(d.pred_norm, 0);   // -2.0 vs -2.14 per character
  EXPECT_EQ(d.pred_bytes, 1);  // -2.0 vs -1.67 per byte: the old acc_norm
  // np.argmax keeps the first of equal values.
  EXPECT_EQ(eval::decide_mc({-3.0, -3.0}, {"ab", "cd"}).pred, 0);

  // End to end on a random model: the reported pred_norm is the per-character argmax of
  // independently computed log-likelihoods, and byte normalisation disagrees somewhere.
  Model model = noisy_model();
  auto tok = open_tokenizer("bytes");
  const std::vector<std::string> accented = {"d\xc3\xa9j\xc3\xa0 vu", "na\xc3\xafve", "\xc3\xbc" "ber", "se\xc3\xb1or", "caf\xc3\xa9s"};
  const std::vector<std::string> plain = {"fjord", "table", "river", "stone", "apple", "green"};
  std::vector<eval::McDoc> docs;
  for (int d = 0; d < 10; ++d) {
    eval::McDoc doc;
    doc.context = "Item " + std::to_string(d) + " is";
    doc.choices = {plain[static_cast<size_t>(d) % plain.size()], accented[static_cast<size_t>(d) % accented.size()]};
    if (d % 2) std::swap(doc.choices[0], doc.choices[1]);
    docs.push_back(doc);
  }
  eval::Scorer scorer(model, tok.get(), {.batch = 4});
  std::vector<eval::McDocResult> res = eval::score_multiple_choice(scorer, docs, {}, {});
  int disagreements = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    std::vector<double> lp;
    for (const std::string& c : docs[d].choices) {
      const std::vector<int32_t> ctx = tok->encode(docs[d].context), cont = tok->encode(" " + c);
      lp.push_back(forward_logprob(model, concat(ctx, cont), ctx.size()));
      EXPECT_NEAR(res[d].logprobs[lp.size() - 1], lp.back(), 2e-4 * std::fabs(lp.back()));
    }
    const auto per_char = [&](size_t c) { return lp[c] / static_cast<double>(eval::python_len(docs[d].choices[c])); };
    const auto per_byte = [&](size_t c) { return lp[c] / static_cast<double>(docs[d].choices[c].size()); };
    const int64_t want = per_char(1) > per_char(0) ? 1 : 0, old = per_byte(1) > per_byte(0) ? 1 : 0;
    EXPECT_EQ(res[d].pred_norm, want) << d;
    EXPECT_EQ(res[d].pred_bytes, old) << d;
    disagreements += want != old;
  }
  std::printf("[acc_norm] %d of %zu documents differ between characters and bytes\n", disagreements, docs.size());
  EXPECT_GT(disagreements, 0) << "no document where bytes and characters disagree: the check would be weak";
}

// In the letter format the scored choices are the letters: acc_norm must equal acc.
TEST(EvalLmRules, LetterFormatAccNormEqualsAcc) {
  Model model = noisy_model();
  auto tok = open_tokenizer("bytes");
  const std::vector<std::string> words = {"a", "an elephant in the room", "blue", "the quick brown fox jumped", "x", "seventeen", "ok", "two words"};
  std::vector<eval::McDoc> docs;
  for (int d = 0; d < 8; ++d) {
    eval::McDoc doc;
    doc.context = "Question " + std::to_string(d) + ": pick one.";
    for (int c = 0; c < 4; ++c) doc.choices.push_back(words[static_cast<size_t>((d + 3 * c) % 8)]);
    doc.gold = d % 4;
    docs.push_back(doc);
  }
  eval::Scorer scorer(model, tok.get(), {.batch = 8});
  const eval::McOptions letter{.format = eval::McFormat::Letter};
  std::vector<eval::McDocResult> res = eval::score_multiple_choice(scorer, docs, {}, letter);
  int old_differs = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    EXPECT_EQ(res[d].pred_norm, res[d].pred) << d;
    // The old rule divided each letter's log-likelihood by the full answer's length.
    std::vector<double> old;
    for (size_t c = 0; c < 4; ++c) old.push_back(res[d].logprobs[c] / static_cast<double>(docs[d].choices[c].size()));
    old_differs += (std::max_element(old.begin(), old.end()) - old.begin()) != res[d].pred;
  }
  std::vector<eval::MetricRow> rows;
  nlohmann::json j = eval::run_multiple_choice(scorer, "mmlu-like", docs, {}, letter, rows);
  EXPECT_EQ(j["metrics"]["acc_norm"], j["metrics"]["acc"]);
  EXPECT_GT(old_differs, 0) << "the old normalisation agrees everywhere: the check would be weak";
}

// With the task file as the example file, a document never appears among its own shots.
TEST(EvalLmRules, DocumentIsNeverItsOwnFewShotExample) {
  std::vector<eval::McDoc> docs;
  for (int d = 0; d < 6; ++d) docs.push_back({"Fact " + std::to_string(d) + " holds?", {"yes" + std::to_string(d), "no"}, 0});
  for (uint64_t seed = 0; seed < 20; ++seed) {
    for (size_t d = 0; d < docs.size(); ++d) {
      // All five other documents as shots: the old draw took 5 of all 6, usually itself too.
      const eval::McPrompt p = eval::build_mc_prompt(docs[d], d, docs, {.shots = 5, .seed = seed});
      const std::string own = docs[d].context + " " + docs[d].choices[0] + "\n\n";
      EXPECT_EQ(p.context.find(own), std::string::npos) << "doc " << d << " seed " << seed;
      for (size_t e = 0; e < docs.size(); ++e)
        if (e != d) {
          EXPECT_NE(p.context.find(docs[e].context + " " + docs[e].choices[0] + "\n\n"), std::string::npos);
        }
      EXPECT_EQ(p.context.substr(p.context.size() - docs[d].context.size()), docs[d].context);
    }
  }
  EXPECT_THROW(eval::build_mc_prompt(docs[0], 0, docs, {.shots = 6}), Error);
  // A separate example file holding a copy of the document: the copy is skipped too.
  std::vector<eval::McDoc> examples = {docs[2], docs[3]};
  EXPECT_THROW(eval::build_mc_prompt(docs[2], 0, examples, {.shots = 2}), Error);
  EXPECT_EQ(eval::build_mc_prompt(docs[2], 0, examples, {.shots = 1}).context.find(docs[2].context + " yes2"), std::string::npos);
}

TEST(EvalLmRules, WordPerplexityCountsWordsAsReSplit) {
  Model model = noisy_model();
  auto tok = open_tokenizer("bytes");
  eval::Scorer scorer(model, tok.get());
  const std::vector<std::string> texts = {"  Leading spaces and trailing newline\n", "no\tedge\xc2\xa0whitespace", "\n\nTwo  blank lines "};
  std::vector<eval::MetricRow> rows;
  nlohmann::json j = eval::run_perplexity(scorer, "ppl", texts, {}, rows);
  // re.split(r"\s+"): 6 (with '' first and last) + 4 (U+00A0 splits) + 5 ('' first and last).
  EXPECT_EQ(j["metrics"]["words"].get<int64_t>(), 6 + 4 + 5);
  double ll = 0;
  for (const std::string& t : texts) ll += scorer.loglikelihood_rolling(t).logprob;
  EXPECT_NEAR(j["metrics"]["word_perplexity"].get<double>(), std::exp(-ll / 15.0), 1e-9 * std::exp(-ll / 15.0));
}

// Python's rstrip moves all Unicode whitespace (here U+00A0 and U+3000) to the continuation.
TEST(EvalLmRules, ContextTrailingUnicodeWhitespaceMovesToContinuation) {
  Model model = noisy_model();
  auto tok = open_tokenizer("bytes");
  eval::Scorer scorer(model, tok.get());
  auto [ctx, cont] = scorer.encode_pair("abc\xc2\xa0\xe3\x80\x80", "d");
  EXPECT_EQ(ctx, tok->encode("abc"));
  EXPECT_EQ(cont, tok->encode("\xc2\xa0\xe3\x80\x80" "d"));
}

TEST(EvalLmRules, BosPolicyIsReadFromTheTokenizerFiles) {
  const std::string dir = temp_dir("eval-bos");
  const auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir + "/" + name) << text; };
  EXPECT_FALSE(eval::detect_bos_policy(dir).add);
  write("tokenizer.json", R"({"post_processor": {"type": "Sequence", "processors": [{"type": "ByteLevel"},
      {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]}]}})");
  EXPECT_TRUE(eval::detect_bos_policy(dir).add);
  EXPECT_TRUE(eval::detect_bos_policy(dir + "/tokenizer.json").add);
  write("tokenizer_config.json", R"({"add_bos_token": false, "tokenizer_class": "LlamaTokenizer"})");
  EXPECT_FALSE(eval::detect_bos_policy(dir).add) << "the explicit flag wins";
  write("tokenizer_config.json", R"({"tokenizer_class": "LlamaTokenizerFast"})");
  EXPECT_TRUE(eval::detect_bos_policy(dir).add);
  std::filesystem::remove(dir + "/tokenizer.json");
  write("tokenizer_config.json", R"({"add_bos_token": true})");
  const eval::BosPolicy p = eval::detect_bos_policy(dir);
  EXPECT_TRUE(p.add);
  EXPECT_NE(p.source.find("add_bos_token"), std::string::npos);
  EXPECT_FALSE(eval::parse_bos_policy("no", dir).add);
  EXPECT_FALSE(eval::detect_bos_policy("bytes").add);
  EXPECT_THROW(eval::parse_bos_policy("maybe", dir), Error);
  write("tokenizer_config.json", "{not json");
  EXPECT_THROW(eval::detect_bos_policy(dir), Error);
}

// With add_bos, every context, rolling document and prompt starts with BOS, as lm-eval's HF
// model encodes them; an empty context is the prefix token alone.
TEST(EvalLmRules, BosOnEveryContextDocumentAndPrompt) {
  Model model = noisy_model("hybrid");
  auto tok = open_tokenizer("bytes");
  const int32_t bos = tok->bos_id();
  eval::Scorer with(model, tok.get(), {.batch = 3, .add_bos = true});
  eval::Scorer without(model, tok.get(), {.batch = 3});
  const std::string ctx_text = "The phone number of Ada is", cont_text = " 555-0134";
  auto [ctx, cont] = with.encode_pair(ctx_text, cont_text);
  EXPECT_EQ(ctx, concat({bos}, tok->encode(ctx_text)));
  EXPECT_EQ(cont, tok->encode(cont_text));
  const eval::LoglikelihoodResult a = with.loglikelihood({{ctx_text, cont_text}})[0];
  const eval::LoglikelihoodResult b = without.loglikelihood({{ctx_text, cont_text}})[0];
  const double want = forward_logprob(model, concat(ctx, cont), ctx.size());
  const std::vector<int32_t> ctx_plain = tok->encode(ctx_text);
  const double want_plain = forward_logprob(model, concat(ctx_plain, cont), ctx_plain.size());
  std::printf("[bos] loglikelihood with BOS %.6f (forward %.6f), without %.6f (forward %.6f)\n", a.logprob, want,
              b.logprob, want_plain);
  EXPECT_NEAR(a.logprob, want, 2e-4 * std::fabs(want));
  // Each scorer is nearer its own forward than the other's. BOS moves a random model's
  // log-likelihood by only ~1e-3 here (and by less on some seeds), so a fixed gap would be flaky;
  // the scorer's own error is ~1e-6.
  EXPECT_LT(std::fabs(a.logprob - want), std::fabs(a.logprob - want_plain));
  EXPECT_LT(std::fabs(b.logprob - want_plain), std::fabs(b.logprob - want));
  // Rolling: the document's tokens are [BOS] + text, scored after the prefix token (BOS).
  const std::string doc = "Ada Lovelace: 555-0134\nAlan Turing: 555-0199\n";
  const eval::RollingResult r = with.loglikelihood_rolling(doc);
  const std::vector<int32_t> doc_tokens = concat({bos}, tok->encode(doc));
  EXPECT_EQ(r.tokens, static_cast<int64_t>(doc_tokens.size()));
  const double want_rolling = forward_logprob(model, concat({with.prefix_token()}, doc_tokens), 1);
  EXPECT_NEAR(r.logprob, want_rolling, 2e-4 * std::fabs(want_rolling));
  // Empty context: the continuation without BOS after the prefix token.
  const eval::LoglikelihoodResult e = with.loglikelihood({{"", "Ada"}})[0];
  const double want_empty = forward_logprob(model, concat({with.prefix_token()}, tok->encode("Ada")), 1);
  EXPECT_NEAR(e.logprob, want_empty, 2e-4 * std::fabs(want_empty));
  // Generation prompts.
  EXPECT_EQ(with.generate_until(ctx_text, {.until = {"\n"}, .max_gen_tokens = 2}).prompt_tokens,
            static_cast<int64_t>(tok->encode(ctx_text).size()) + 1);
}

// is_greedy, and the loglikelihood task: acc = share of continuations that greedy decoding
// produces, perplexity = exp(-mean log-likelihood).
TEST(EvalLmRules, LoglikelihoodTaskAccIsGreedyMatch) {
  Model model = noisy_model();
  auto tok = open_tokenizer("bytes");
  std::vector<eval::LoglikelihoodDoc> docs;
  double sum = 0;
  int greedy_docs = 0;
  // One-token continuations: where the greedy next byte is a printable character, that byte
  // (greedy) in even documents and another printable byte in odd ones.
  for (int d = 0; d < 300 && docs.size() < 10; ++d) {
    const std::string ctx = "Entry " + std::to_string(d * 7) + (d % 3 ? " reads" : " is:");
    GenerateOptions g;
    g.max_tokens = 1;
    g.stop_at_eos = false;
    const int32_t next = generate(model, tok->encode(ctx), g).at(0);
    if (next <= 32 || next >= 127) continue;
    const bool greedy = docs.size() % 2 == 0;
    const std::string cont(1, static_cast<char>(greedy ? next : (next == 'q' ? 'z' : 'q')));
    docs.push_back({ctx, cont});
    const std::vector<int32_t> c = tok->encode(ctx);
    sum += forward_logprob(model, concat(c, tok->encode(cont)), c.size());
    greedy_docs += greedy;
  }
  ASSERT_GE(docs.size(), 4u);
  eval::Scorer scorer(model, tok.get(), {.batch = 4});
  std::vector<eval::MetricRow> rows;
  nlohmann::json j = eval::run_loglikelihood(scorer, "lambada-like", docs, rows);
  const double n = static_cast<double>(docs.size());
  std::printf("[loglikelihood] acc %.4f (%d greedy of %zu), perplexity %.4f\n", j["metrics"]["acc"].get<double>(), greedy_docs, docs.size(),
              j["metrics"]["perplexity"].get<double>());
  EXPECT_DOUBLE_EQ(j["metrics"]["acc"].get<double>(), greedy_docs / n);
  EXPECT_NEAR(j["metrics"]["perplexity"].get<double>(), std::exp(-sum / n), 1e-4 * std::exp(-sum / n));
  EXPECT_GT(greedy_docs, 0);
  EXPECT_LT(greedy_docs, static_cast<int>(docs.size()));
  // LAMBADA's split of a text at its last space.
  const eval::LoglikelihoodDoc l = eval::split_last_word("he said the word hello");
  EXPECT_EQ(l.context, "he said the word");
  EXPECT_EQ(l.continuation, " hello");
}

// The CLI reads the policy from the model directory's tokenizer files and records it.
TEST(EvalLmRules, CliAddsBosWhenTheTokenizerConfigSaysSo) {
  const std::string dir = temp_dir("eval-rules-cli-bos");
  ASSERT_EQ(run_cli("init --arch mamba2 --tokenizer bytes --seed 4 --out " + dir + "/m").exit_code, 0);
  {  // weights moved by noise, so that the first token's log-probabilities depend on the BOS before it
    Model noisy = Model::load(dir + "/m");
    Rng noise(test_seed() + 13);
    for (ParamRef& p : noisy.params())
      for (int64_t i = 0; i < p.tensor->numel(); ++i) p.tensor->f32()[i] += static_cast<float>(0.15 * noise.uniform(-1, 1));
    noisy.save(dir + "/m");
  }
  std::ofstream(dir + "/m/tokenizer_config.json") << R"({"add_bos_token": true})";
  std::ofstream(dir + "/t.jsonl") << R"({"context": "Ada Lovelace:", "continuation": " 555-0134"})" << "\n";
  const auto run = [&](const std::string& extra) {
    CommandResult r = run_cli("eval --model " + dir + "/m --task loglikelihood --file " + dir + "/t.jsonl --output " + dir + "/r.json" + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(std::ifstream(dir + "/r.json"));
  };
  const nlohmann::json with = run(""), without = run(" --add-bos no");
  EXPECT_EQ(with["scorer"]["add_bos"], true);
  EXPECT_EQ(with["scorer"]["add_bos_source"], "tokenizer_config.json add_bos_token");
  EXPECT_EQ(without["scorer"]["add_bos"], false);
  Model model = Model::load(dir + "/m");
  auto tok = open_tokenizer(dir + "/m");
  const std::vector<int32_t> ctx = concat({tok->bos_id()}, tok->encode("Ada Lovelace:"));
  const double want = forward_logprob(model, concat(ctx, tok->encode(" 555-0134")), ctx.size());
  EXPECT_NEAR(with["metrics"]["loglikelihood"].get<double>(), want, 2e-4 * std::fabs(want));
  EXPECT_GT(std::fabs(with["metrics"]["loglikelihood"].get<double>() - without["metrics"]["loglikelihood"].get<double>()), 1e-4);
}

}  // namespace
