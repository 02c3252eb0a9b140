// `mambalm eval --task perplexity` on text files and on token datasets, against log-probs
// computed here from the model's own logits (lm-eval's rolling log-likelihood: the first
// token is scored after the prefix token, every later one after all tokens before it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "eval/scoring.h"
#include "io/indexed_dataset.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

double reference_logprob(Model& m, int32_t prefix, const std::vector<int32_t>& tokens) {
  std::vector<int32_t> input = {prefix};
  input.insert(input.end(), tokens.begin(), tokens.end() - 1);
  const int64_t T = static_cast<int64_t>(input.size()), V = m.config().vocab_size;
  Tensor ids = Tensor::empty({1, T}, DType::I32);
  std::memcpy(ids.raw(), input.data(), input.size() * 4);
  Tensor logits = m.forward(ids);  // [1, T, V]
  double total = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* row = logits.f32() + t * V;
    double mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max<double>(mx, row[v]);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    total += row[tokens[static_cast<size_t>(t)]] - mx - std::log(z);
  }
  return total;
}

TEST(EvalPerplexity, TextAndTokenDatasetMatchLogitsFromForward) {
  std::string dir = temp_dir("ppl");
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --tokenizer bytes --seed 4 --out " + dir + "/model").exit_code, 0);
  const std::vector<std::string> texts = {"Call me Ishmael. Some years ago, never mind how long precisely.",
                                          "It is a truth universally acknowledged, that a single man in possession of a good fortune."};
  std::ofstream(dir + "/a.txt") << texts[0];
  std::ofstream(dir + "/b.txt") << texts[1];
  Model m = Model::load(dir + "/model");
  auto tok = open_tokenizer(dir + "/model");
  eval::Scorer scorer(m, tok.get());
  double want = 0;
  int64_t bytes = 0, n_tokens = 0;
  {
    io::IndexedDatasetWriter w(dir + "/docs", m.config().vocab_size);
    for (const std::string& t : texts) {
      std::vector<int32_t> ids = tok->encode(t);
      want += reference_logprob(m, scorer.prefix_token(), ids);
      bytes += static_cast<int64_t>(t.size());
      n_tokens += static_cast<int64_t>(ids.size());
      w.add_document(ids);
    }
    w.finish();
  }
  CommandResult r = run_cli("eval --model " + dir + "/model --task perplexity --text " + dir + "/a.txt," + dir + "/b.txt --output " + dir + "/r.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/r.json"));
  const nlohmann::json& metrics = j.contains("metrics") ? j["metrics"] : j["results"][0]["metrics"];
  double got = metrics["loglikelihood"].get<double>();
  std::printf("[err] perplexity: loglikelihood %.6f vs reference %.6f\n", got, want);
  EXPECT_NEAR(got, want, 1e-4 * std::fabs(want));
  EXPECT_EQ(metrics["tokens"].get<int64_t>(), n_tokens);
  EXPECT_NEAR(metrics["bits_per_byte"].get<double>(), -want / static_cast<double>(bytes) / std::log(2.0), 1e-4);
  EXPECT_NEAR(metrics["token_perplexity"].get<double>(), std::exp(-want / static_cast<double>(n_tokens)), 1e-3);

  r = run_cli("eval --model " + dir + "/model --task perplexity --data " + dir + "/docs --output " + dir + "/d.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json d = nlohmann::json::parse(std::ifstream(dir + "/d.json"));
  const nlohmann::json& dm = d.contains("metrics") ? d["metrics"] : d["results"][0]["metrics"];
  EXPECT_NEAR(dm["loglikelihood"].get<double>(), want, 1e-4 * std::fabs(want));
}

}  // namespace
