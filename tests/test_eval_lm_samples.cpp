// `mambalm eval --lm-eval-samples`: files constructed here in the format lm-eval's
// --log_samples writes (not rendered by lm-eval itself: see docs/eval.md), for a
// WinoGrande-style task (one context per option), an MMLU-5-shot-style task (header, five
// examples, letters), an ARC-style cloze task with acc_norm, a rolling perplexity task and a
// generate_until task. Every per-request log-likelihood must equal the one computed from
// `mambalm forward` logits for the same tokens, and every aggregate lm-eval's definition.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "eval/lm_eval_samples.h"
#include "eval/text_rules.h"
#include "infer/generate.h"
#include "io/npy.h"
#include "model/model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;
using nlohmann::json;

namespace {

struct Fixture {
  std::string dir, model_dir;
};

// A hybrid model with noisy weights, saved, for the CLI; bytes tokenizer (BOS 257 fits).
const Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    x.dir = temp_dir("eval-lm-samples");
    x.model_dir = x.dir + "/m";
    CommandResult r = run_cli("init --arch hybrid --vocab 320 --seed 9 --out " + x.model_dir);
    if (r.exit_code != 0) throw std::runtime_error("init failed: " + r.err);
    Model m = Model::load(x.model_dir);
    Rng rng(test_seed() + 21);
    for (ParamRef& p : m.params()) {
      for (int64_t i = 0; i < p.tensor->numel(); ++i) p.tensor->f32()[i] += static_cast<float>(0.15 * rng.uniform(-1, 1));
      // Only printable bytes keep their output rows, so greedy generation writes text that a
      // samples file (JSON, UTF-8) can hold as a target.
      if (p.name == "lm_head.weight") {
        const int64_t d = p.tensor->dim(1);
        for (int64_t v = 0; v < p.tensor->dim(0); ++v)
          if (v <= 32 || v >= 127)
            for (int64_t k = 0; k < d; ++k) p.tensor->f32()[v * d + k] = 0;
      }
    }
    m.save(x.model_dir);
    return x;
  }();
  return f;
}

std::vector<int32_t> bytes_of(const std::string& s) {
  std::vector<int32_t> out;
  for (char c : s) out.push_back(static_cast<unsigned char>(c));
  return out;
}

// log p(tokens[first:] | tokens[:first]) from the logits `mambalm forward` writes.
double forward_cli_logprob(const std::vector<int32_t>& tokens, size_t first, bool* greedy = nullptr) {
  const std::string dir = temp_dir("eval-lm-samples-fwd");
  {
    std::ofstream f(dir + "/t.txt");
    for (int32_t t : tokens) f << t << " ";
  }
  CommandResult r = run_cli("forward --model " + fixture().model_dir + " --tokens " + dir + "/t.txt --logits " + dir + "/l.npy");
  if (r.exit_code != 0) throw std::runtime_error("forward failed: " + r.err);
  Tensor logits = io::read_npy(dir + "/l.npy");  // [T, V]
  const int64_t V = logits.dim(1);
  double s = 0;
  bool all_top = true;
  for (size_t i = first; i < tokens.size(); ++i) {
    const float* row = logits.f32() + static_cast<int64_t>(i - 1) * V;
    double mx = row[0], z = 0;
    int64_t arg = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > mx) mx = row[v], arg = v;
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    s += row[tokens[i]] - mx - std::log(z);
    all_top = all_top && arg == tokens[i];
  }
  if (greedy) *greedy = all_top;
  return s;
}

// lm-eval's split for the bytes tokenizer: trailing whitespace of the context moves over.
double reference_ll(const std::string& context, const std::string& continuation, bool* greedy = nullptr) {
  const size_t keep = eval::python_rstrip_size(context);
  const std::vector<int32_t> ctx = bytes_of(context.substr(0, keep));
  std::vector<int32_t> all = ctx;
  for (int32_t t : bytes_of(context.substr(keep) + continuation)) all.push_back(t);
  return forward_cli_logprob(all, ctx.size(), greedy);
}

// One line as lm-eval's EvaluationTracker writes it: arguments as gen_args_i/arg_j, responses
// stringified, the per-document metric values the (dummy) answers gave.
json sample_line(int64_t doc_id, const std::string& target, const std::vector<json>& args, const std::vector<std::string>& metrics,
                 const json& resps, const json& values) {
  json arguments = json::object();
  for (size_t i = 0; i < args.size(); ++i)
    for (size_t j = 0; j < args[i].size(); ++j) arguments["gen_args_" + std::to_string(i)]["arg_" + std::to_string(j)] = args[i][j];
  json line = {{"doc_id", doc_id}, {"doc", {{"id", doc_id}}}, {"target", target}, {"arguments", arguments}, {"resps", json::array()},
               {"filtered_resps", resps}, {"filter", "none"}, {"metrics", metrics}, {"doc_hash", "0"}, {"prompt_hash", "0"},
               {"target_hash", "0"}};
  for (const auto& [k, v] : values.items()) line[k] = v;
  return line;
}

void write_lines(const std::string& path, const std::vector<json>& lines) {
  std::ofstream f(path);
  for (const json& l : lines) f << l.dump(-1, ' ', false) << "\n";
}

// The dummy model's answers: (-random, False) per request, stringified.
json dummy_resps(Rng& rng, size_t n, std::vector<double>& lls) {
  json r = json::array();
  lls.clear();
  for (size_t i = 0; i < n; ++i) {
    lls.push_back(-rng.uniform());
    r.push_back({std::to_string(lls.back()), "False"});
  }
  return r;
}

int64_t argmax(const std::vector<double>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

json run_samples(const std::vector<std::string>& files) {
  std::string list;
  for (const std::string& f : files) list += (list.empty() ? "" : ",") + f;
  const std::string out = fixture().dir + "/r.json";
  CommandResult r = run_cli("eval --model " + fixture().model_dir + " --tokenizer bytes --batch 3 --lm-eval-samples " + list + " --output " + out);
  if (r.exit_code != 0) throw std::runtime_error("eval failed: " + r.err);
  std::printf("%s", r.out.c_str());
  return json::parse(std::ifstream(out));
}

TEST(EvalLmSamples, MultipleChoiceRequestsMatchForwardAndAggregate) {
  const Fixture& fx = fixture();
  Rng rng(test_seed() + 5);
  std::vector<double> dummy;
  // WinoGrande-style: the option fills the blank in the context; the continuation is shared.
  std::vector<json> wino;
  std::vector<std::vector<std::pair<std::string, std::string>>> wino_reqs;
  std::vector<int64_t> wino_gold;
  const std::vector<std::pair<std::string, std::string>> options = {{"the trophy", "the suitcase"}, {"Anna", "Maria"}, {"the cat", "the dog"}, {"Paris", "Rome"}};
  for (int64_t d = 0; d < 4; ++d) {
    const std::string cont = " was too big to fit.";
    std::vector<std::pair<std::string, std::string>> reqs = {{"It did not fit because " + options[d].first, cont},
                                                             {"It did not fit because " + options[d].second, cont}};
    const int64_t gold = d % 2;
    const json resps = dummy_resps(rng, 2, dummy);
    wino.push_back(sample_line(d, cont.substr(1), {{reqs[0].first, reqs[0].second}, {reqs[1].first, reqs[1].second}}, {"acc"}, resps,
                               {{"acc", argmax(dummy) == gold ? 1.0 : 0.0}}));
    wino_reqs.push_back(reqs);
    wino_gold.push_back(gold);
  }
  // MMLU-5-shot-style: a header, five solved examples, the question; letters as choices.
  std::vector<json> mmlu;
  std::vector<std::vector<std::pair<std::string, std::string>>> mmlu_reqs;
  std::vector<int64_t> mmlu_gold;
  std::string shots = "The following are multiple choice questions (with answers) about astronomy.\n\n";
  for (int k = 0; k < 5; ++k)
    shots += "Which planet is number " + std::to_string(k + 1) + "?\nA. Mercury\nB. Venus\nC. Earth\nD. Mars\nAnswer: " + std::string(1, static_cast<char>('A' + (k % 4))) + "\n\n";
  for (int64_t d = 0; d < 3; ++d) {
    const std::string ctx = shots + "How many moons has planet " + std::to_string(d + 2) + "?\nA. 0\nB. 1\nC. 2\nD. 79\nAnswer:";
    std::vector<std::pair<std::string, std::string>> reqs;
    std::vector<json> args;
    for (const char* l : {" A", " B", " C", " D"}) reqs.push_back({ctx, l}), args.push_back({ctx, l});
    const int64_t gold = (d + 1) % 4;
    const json resps = dummy_resps(rng, 4, dummy);
    mmlu.push_back(sample_line(d, std::to_string(gold), args, {"acc"}, resps, {{"acc", argmax(dummy) == gold ? 1.0 : 0.0}}));
    mmlu_reqs.push_back(reqs);
    mmlu_gold.push_back(gold);
  }
  // ARC-style cloze with acc_norm; the target is the gold choice's text; accented choices.
  std::vector<json> arc;
  std::vector<std::vector<std::string>> arc_choices;
  std::vector<std::string> arc_ctx;
  std::vector<int64_t> arc_gold;
  const std::vector<std::vector<std::string>> choice_sets = {{"fjord", "d\xc3\xa9j\xc3\xa0 vu", "lake"},
                                                             {"na\xc3\xafve", "simple minded", "new"},
                                                             {"caf\xc3\xa9", "bar", "tea room"}};
  for (int64_t d = 0; d < 3; ++d) {
    const std::string ctx = "Question: what word fits riddle " + std::to_string(d) + "?\nAnswer:";
    std::vector<json> args;
    for (const std::string& c : choice_sets[d]) args.push_back({ctx, " " + c});
    const int64_t gold = 2 - d;
    const json resps = dummy_resps(rng, 3, dummy);
    arc.push_back(sample_line(d, choice_sets[d][static_cast<size_t>(gold)], args, {"acc", "acc_norm"}, resps, json::object()));
    arc_choices.push_back(choice_sets[d]);
    arc_ctx.push_back(ctx);
    arc_gold.push_back(gold);
  }
  write_lines(fx.dir + "/samples_winogrande_2025-01-01T00-00-00.000001.jsonl", wino);
  write_lines(fx.dir + "/samples_mmlu_astronomy_2025-01-01T00-00-00.000001.jsonl", mmlu);
  write_lines(fx.dir + "/samples_arc_easy_2025-01-01T00-00-00.000001.jsonl", arc);
  const json r = run_samples({fx.dir + "/samples_winogrande_2025-01-01T00-00-00.000001.jsonl",
                              fx.dir + "/samples_mmlu_astronomy_2025-01-01T00-00-00.000001.jsonl",
                              fx.dir + "/samples_arc_easy_2025-01-01T00-00-00.000001.jsonl"});

  double max_err = 0;
  const auto check_task = [&](const char* task, const std::vector<std::vector<std::pair<std::string, std::string>>>& reqs,
                              const std::vector<int64_t>& gold) {
    const json& t = r["tasks"][task];
    ASSERT_EQ(t["samples"].size(), reqs.size()) << task;
    double acc = 0;
    for (size_t d = 0; d < reqs.size(); ++d) {
      std::vector<double> lls;
      for (size_t i = 0; i < reqs[d].size(); ++i) {
        bool greedy = false;
        lls.push_back(reference_ll(reqs[d][i].first, reqs[d][i].second, &greedy));
        const double got = t["samples"][d]["resps"][i][0];
        max_err = std::max(max_err, std::fabs(got - lls.back()));
        EXPECT_NEAR(got, lls.back(), 2e-4 * std::max(1.0, std::fabs(lls.back()))) << task << " doc " << d << " request " << i;
        EXPECT_EQ(t["samples"][d]["resps"][i][1].get<bool>(), greedy);
      }
      EXPECT_EQ(t["samples"][d]["gold"], gold[d]) << task << " doc " << d;
      acc += argmax(lls) == gold[d];
    }
    EXPECT_DOUBLE_EQ(t["metrics"]["acc"].get<double>(), acc / static_cast<double>(reqs.size())) << task;
  };
  check_task("winogrande", wino_reqs, wino_gold);
  check_task("mmlu_astronomy", mmlu_reqs, mmlu_gold);
  EXPECT_EQ(r["tasks"]["winogrande"]["output_type"], "multiple_choice");
  EXPECT_EQ(r["tasks"]["winogrande"]["gold_from"]["recorded metrics"], 4) << "WinoGrande's gold comes from the recorded acc";
  EXPECT_FALSE(r["tasks"]["mmlu_astronomy"]["metrics"].contains("acc_norm")) << "MMLU's metric list is acc only";
  // ARC-style: acc_norm divides by characters of the choice (without the delimiter).
  const json& t = r["tasks"]["arc_easy"];
  double acc = 0, acc_norm = 0;
  for (size_t d = 0; d < arc_choices.size(); ++d) {
    std::vector<double> lls, norm;
    for (const std::string& c : arc_choices[d]) {
      lls.push_back(reference_ll(arc_ctx[d], " " + c));
      norm.push_back(lls.back() / static_cast<double>(eval::python_len(c)));
    }
    for (size_t i = 0; i < lls.size(); ++i) max_err = std::max(max_err, std::fabs(t["samples"][d]["resps"][i][0].get<double>() - lls[i]));
    acc += argmax(lls) == arc_gold[d];
    acc_norm += argmax(norm) == arc_gold[d];
  }
  EXPECT_DOUBLE_EQ(t["metrics"]["acc"].get<double>(), acc / 3);
  EXPECT_DOUBLE_EQ(t["metrics"]["acc_norm"].get<double>(), acc_norm / 3);
  EXPECT_EQ(t["gold_from"]["target choice text"], 3);
  std::printf("[lm-eval samples] max |ll - forward| over all requests: %.3g\n", max_err);
}

TEST(EvalLmSamples, RollingAndGenerationTasks) {
  const Fixture& fx = fixture();
  // Rolling: lm-eval records (loglikelihood, words) and (loglikelihood, bytes) per document.
  const std::vector<std::string> texts = {" = Valkyria Chronicles = \n\n Senj\xc5\x8d no Valkyria 3 is a game . \n",
                                          "Plain text without edges", "\n Two  spaces and a tab\there\n"};
  std::vector<json> wiki;
  for (size_t d = 0; d < texts.size(); ++d) {
    const int64_t words = eval::lm_eval_word_count(texts[d]), bytes = static_cast<int64_t>(texts[d].size());
    wiki.push_back(sample_line(static_cast<int64_t>(d), texts[d], {{texts[d]}}, {"word_perplexity", "byte_perplexity", "bits_per_byte"},
                               json::array({"-0.5"}),
                               {{"word_perplexity", {-0.5, words}}, {"byte_perplexity", {-0.5, bytes}}, {"bits_per_byte", {-0.5, bytes}}}));
  }
  // generate_until: the first target is what greedy decoding writes, the second is not.
  Model model = Model::load(fx.model_dir);
  auto tok = open_tokenizer("bytes");
  std::vector<json> gen;
  // A prompt whose two greedy tokens (from infer's generate) are printable text without a
  // newline: its target is that text (exact match 1); another prompt's target is not (0).
  std::string prompt, greedy_text;
  for (int i = 0; i < 400 && greedy_text.empty(); ++i) {
    const std::string p = "Question: " + std::to_string(i) + "+" + std::to_string(i) + "=\nAnswer:";
    GenerateOptions g;
    g.max_tokens = 2;
    g.stop_at_eos = false;
    const std::vector<int32_t> out = generate(model, tok->encode(p), g);
    if (std::all_of(out.begin(), out.end(), [](int32_t t) { return t >= 32 && t < 127; })) {
      prompt = p;
      greedy_text = std::string(out.begin(), out.end());
    }
  }
  ASSERT_FALSE(greedy_text.empty()) << "no prompt with a printable greedy continuation";
  const json kw = {{"until", {"\n"}}, {"max_gen_toks", 2}, {"do_sample", false}};
  gen.push_back(sample_line(0, greedy_text, {{prompt, kw}}, {"exact_match"}, json::array({{"lol"}}), {{"exact_match", 0.0}}));
  gen.push_back(sample_line(1, "never this", {{"Question: 3+3=\nAnswer:", kw}}, {"exact_match"}, json::array({{"lol"}}), {{"exact_match", 0.0}}));
  write_lines(fx.dir + "/samples_wikitext_2025-01-01T00-00-00.000001.jsonl", wiki);
  write_lines(fx.dir + "/samples_tiny_gen_2025-01-01T00-00-00.000001.jsonl", gen);
  const json r = run_samples({fx.dir + "/samples_wikitext_2025-01-01T00-00-00.000001.jsonl",
                              fx.dir + "/samples_tiny_gen_2025-01-01T00-00-00.000001.jsonl"});
  const json& w = r["tasks"]["wikitext"];
  EXPECT_EQ(w["output_type"], "loglikelihood_rolling");
  double ll = 0;
  int64_t words = 0, bytes = 0;
  eval::Scorer probe(model, tok.get());
  for (size_t d = 0; d < texts.size(); ++d) {
    // The whole document after the prefix token (BOS): the hybrid's attention window
    // (max_position_embeddings) is longer than these texts, so one window each.
    std::vector<int32_t> all = {probe.prefix_token()};
    for (int32_t t : bytes_of(texts[d])) all.push_back(t);
    const double want = forward_cli_logprob(all, 1);
    EXPECT_NEAR(w["samples"][d]["resps"][0].get<double>(), want, 2e-4 * std::fabs(want)) << d;
    ll += want;
    words += eval::lm_eval_word_count(texts[d]);
    bytes += static_cast<int64_t>(texts[d].size());
  }
  EXPECT_EQ(w["metrics"]["words"].get<int64_t>(), words);
  EXPECT_NEAR(w["metrics"]["word_perplexity"].get<double>(), std::exp(-ll / static_cast<double>(words)), 1e-4 * std::exp(-ll / static_cast<double>(words)));
  EXPECT_NEAR(w["metrics"]["bits_per_byte"].get<double>(), -ll / static_cast<double>(bytes) / std::log(2.0), 1e-5);
  const json& g = r["tasks"]["tiny_gen"];
  EXPECT_EQ(g["output_type"], "generate_until");
  EXPECT_EQ(g["samples"][0]["resps"][0], greedy_text);
  EXPECT_DOUBLE_EQ(g["metrics"]["exact_match"].get<double>(), 0.5);
}

TEST(EvalLmSamples, FileNamesAndOlderArgumentLists) {
  EXPECT_EQ(eval::task_name_from_samples_path("/x/samples_arc_easy_2024-05-01T12-00-00.123456.jsonl"), "arc_easy");
  EXPECT_EQ(eval::task_name_from_samples_path("mine.jsonl"), "mine");
  const std::string path = fixture().dir + "/old.jsonl";
  {
    // Older lm-eval versions wrote "arguments" as a list of argument lists; 12 requests check
    // that gen_args_10 sorts after gen_args_9 in the newer layout.
    json args = json::array(), newer = json::object();
    for (int i = 0; i < 12; ++i) {
      args.push_back({"Q:", " " + std::to_string(i)});
      newer["gen_args_" + std::to_string(i)] = {{"arg_0", "Q:"}, {"arg_1", " " + std::to_string(i)}};
    }
    std::ofstream f(path);
    f << json{{"doc_id", 0}, {"target", "3"}, {"arguments", args}, {"metrics", {"acc"}}}.dump() << "\n";
    f << json{{"doc_id", 1}, {"target", "11"}, {"arguments", newer}, {"metrics", {"acc"}}}.dump() << "\n";
  }
  const eval::LmEvalSamplesFile file = eval::read_lm_eval_samples(path);
  ASSERT_EQ(file.samples.size(), 2u);
  for (const eval::LmEvalSample& s : file.samples) {
    ASSERT_EQ(s.requests.size(), 12u);
    for (size_t i = 0; i < 12; ++i) EXPECT_EQ(s.requests[i].continuation, " " + std::to_string(i));
  }
  EXPECT_EQ(file.kind, eval::SampleTaskKind::MultipleChoice);
}

// Malformed files are one-line errors with a non-zero exit, naming the file and line.
TEST(EvalLmSamples, BadFilesAreOneLineErrors) {
  const Fixture& fx = fixture();
  const json good = {{"doc_id", 0}, {"target", "0"}, {"arguments", {{"gen_args_0", {{"arg_0", "Q"}, {"arg_1", " a"}}}}}};
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good.dump() + "\n{\"doc_id\": 1, \"arguments\": \n", "not valid JSON"},
      {good.dump() + "\n{\"doc_id\": 1, \"target\": \"\xff\", \"arguments\": {}}\n", "invalid UTF-8"},
      {"{\"target\": \"0\", \"arguments\": {}}\n", "doc_id"},
      {"{\"doc_id\": 0, \"arguments\": {\"gen_args_0\": {\"arg_0\": 5}}}\n", "must be a string"},
      {"{\"doc_id\": 0, \"arguments\": {\"gen_args_0\": {\"arg_0\": \"Q\"}, \"gen_args_1\": {\"arg_0\": \"Q\", \"arg_1\": \" a\"}}}\n", "mixes request types"},
      {"{\"doc_id\": 0, \"target\": \"zzz\", \"arguments\": {\"gen_args_0\": {\"arg_0\": \"Q\", \"arg_1\": \" a\"}, \"gen_args_1\": {\"arg_0\": \"Q\", \"arg_1\": \" b\"}}}\n",
       "cannot tell which"},
      {"", "no samples"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = fx.dir + "/bad" + std::to_string(i) + ".jsonl";
    std::ofstream(path) << cases[i].first;
    CommandResult r = run_cli("eval --model " + fx.model_dir + " --tokenizer bytes --lm-eval-samples " + path);
    EXPECT_NE(r.exit_code, 0) << i;
    EXPECT_NE(r.err.find(cases[i].second), std::string::npos) << i << ": " << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << i << ": " << r.err;
  }
  CommandResult both = run_cli("eval --model " + fx.model_dir + " --task mc --lm-eval-samples x.jsonl");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("either --task"), std::string::npos) << both.err;
}

}  // namespace
