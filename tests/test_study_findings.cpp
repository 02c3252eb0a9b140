// The study's verdicts on constructed numbers (study/findings.h): each finding's threshold on
// both sides, the inconclusive cases, and the done-markers that make phases resumable.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "study/findings.h"
#include "study/phase_marker.h"
#include "test_util.h"

namespace {

using nlohmann::json;
using mambalm::study::judge_findings;

// Results with the given bits per byte and a uniform retrieval accuracy per family.
json results(double t_bpb, double m_bpb, double m2_bpb, double h_bpb, double t_acc, double ssm_acc, double h_acc) {
  json r;
  const json bpb = {{"transformer", t_bpb}, {"mamba", m_bpb}, {"mamba2", m2_bpb}, {"hybrid", h_bpb}};
  const json acc = {{"transformer", t_acc}, {"mamba", ssm_acc}, {"mamba2", ssm_acc}, {"hybrid", h_acc}};
  for (const auto& [f, v] : bpb.items()) {
    r["lm"][f]["bits_per_byte"] = v;
    for (const char* task : {"phonebook", "phonebook_reversed", "mqar", "selective_copy"}) {
      const double a = acc[f].get<double>();
      r["retrieval"][f][task] = {{"accuracy", a}, {"by_length", {{"64", a}, {"512", a / 2}}}};
    }
    // Decode: the Transformer slows down with context, the others do not.
    const bool attention = f == "transformer";
    r["speed"][f] = json::array({{{"context", 256}, {"decode_tokens_per_s", 1000.0}, {"memory_per_sequence_bytes", attention ? 4000 : 1000}},
                                 {{"context", 4096}, {"decode_tokens_per_s", attention ? 400.0 : 900.0},
                                  {"memory_per_sequence_bytes", attention ? 64000 : 2000}}});
  }
  return r;
}

// Multiple-choice accuracies (cloze, letter) of the Transformer, both SSMs and the hybrid
// (which matches the Transformer), with standard errors of 0.05.
json with_mc(json r, double t_cloze, double t_letter, double ssm_cloze, double ssm_letter) {
  r["multiple_choice_settings"] = {{"chance", 0.25}, {"questions", 64}, {"shots", 5}, {"choices", 4}};
  const json acc = {{"transformer", {t_cloze, t_letter}}, {"mamba", {ssm_cloze, ssm_letter}},
                    {"mamba2", {ssm_cloze, ssm_letter}}, {"hybrid", {t_cloze, t_letter}}};
  for (const auto& [f, a] : acc.items()) {
    r["multiple_choice"][f]["cloze"] = {{"acc", a[0]}, {"acc_stderr", 0.05}, {"acc_norm", a[0]}, {"acc_norm_stderr", 0.05}, {"n", 64}};
    r["multiple_choice"][f]["letter"] = {{"acc", a[1]}, {"acc_stderr", 0.05}, {"acc_norm", a[1]}, {"acc_norm_stderr", 0.05}, {"n", 64}};
  }
  return r;
}

std::string verdict(const json& findings, const char* id) {
  for (const json& f : findings)
    if (f["id"] == id) return f["verdict"];
  return "missing";
}

TEST(StudyFindings, EachThresholdDecidesItsVerdict) {
  const json ok = judge_findings(results(1.00, 1.04, 1.03, 1.01, 0.9, 0.3, 0.9));
  EXPECT_EQ(verdict(ok, "a"), "reproduced");
  EXPECT_EQ(verdict(ok, "b"), "reproduced");
  EXPECT_EQ(verdict(ok, "c"), "reproduced");
  EXPECT_EQ(verdict(ok, "d"), "reproduced");
  const json bad = judge_findings(results(1.00, 1.06, 1.03, 1.03, 0.3, 0.5, 0.2));
  EXPECT_EQ(verdict(bad, "a"), "not reproduced");  // Mamba 6% worse
  EXPECT_EQ(verdict(bad, "b"), "not reproduced");  // the SSMs recall better
  EXPECT_EQ(verdict(bad, "c"), "not reproduced");  // hybrid 3% worse
}

TEST(StudyFindings, NothingLearnedIsInconclusiveNotAPass) {
  const json f = judge_findings(results(1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0));
  EXPECT_EQ(verdict(f, "b"), "inconclusive");
  EXPECT_EQ(verdict(f, "c"), "inconclusive");
  json r = results(1.0, 1.0, 1.0, 1.0, 0.5, 0.2, 0.5);
  r["speed"]["hybrid"] = json::array();
  EXPECT_EQ(verdict(judge_findings(r), "d"), "inconclusive");
}

TEST(StudyFindings, LetterFormatGapAgainstClozeGap) {
  const json base = results(1.00, 1.04, 1.03, 1.01, 0.9, 0.3, 0.9);
  // The SSMs nearly match the Transformer in cloze (lead 0.05) and trail it in letter (0.40).
  const json ok = judge_findings(with_mc(base, 0.80, 0.70, 0.75, 0.30));
  EXPECT_EQ(verdict(ok, "e"), "reproduced");
  EXPECT_NEAR(ok[4]["numbers"]["mamba_lead_letter"].get<double>(), 0.40, 1e-12);
  EXPECT_NEAR(ok[4]["numbers"]["mamba2_lead_cloze"].get<double>(), 0.05, 1e-12);
  // The Transformer's lead is larger in cloze (0.30) than in letter (0.10): not the finding.
  EXPECT_EQ(verdict(judge_findings(with_mc(base, 0.80, 0.70, 0.50, 0.60)), "e"), "not reproduced");
  // Equal leads are not "larger".
  EXPECT_EQ(verdict(judge_findings(with_mc(base, 0.80, 0.70, 0.60, 0.50)), "e"), "not reproduced");
}

TEST(StudyFindings, LetterFormatNotLearnedIsInconclusive) {
  const json base = results(1.00, 1.04, 1.03, 1.01, 0.9, 0.3, 0.9);
  // The Transformer at chance + 1.8 standard errors in the letter format: nothing to fall behind.
  EXPECT_EQ(verdict(judge_findings(with_mc(base, 0.80, 0.34, 0.75, 0.25)), "e"), "inconclusive");
  EXPECT_EQ(verdict(judge_findings(with_mc(base, 0.80, 0.36, 0.75, 0.25)), "e"), "reproduced");
  EXPECT_EQ(verdict(judge_findings(base), "e"), "inconclusive");  // no multiple-choice results at all
}

TEST(StudyFindings, ShowsTheNumbersItJudged) {
  const json f = judge_findings(results(1.00, 1.04, 1.03, 1.01, 0.9, 0.3, 0.9));
  ASSERT_EQ(f.size(), 5u);
  EXPECT_DOUBLE_EQ(f[0]["numbers"]["mamba_bpb"].get<double>(), 1.04);
  EXPECT_NEAR(f[3]["numbers"]["speedup_at_longest"].get<double>(), 900.0 / 400.0, 1e-12);
  EXPECT_NEAR(f[3]["numbers"]["transformer_memory_over_hybrid"].get<double>(), 32.0, 1e-12);
  for (const json& x : f) EXPECT_FALSE(x["detail"].get<std::string>().empty());
}

// The 8B-shape comparison (GPU runs) is reported with (d), never judged: the verdict comes from
// the trained models alone.
TEST(StudyFindings, EightBShapeIsReportedNotJudged) {
  json r = results(1.00, 1.04, 1.03, 1.01, 0.9, 0.3, 0.9);
  const std::string verdict_without = judge_findings(r)[3]["verdict"];
  r["speed_8b"] = {{"measured", true},
                   {"rows", json::array({{{"context", 4096}, {"hybrid_over_transformer", 5.0}},
                                         {{"context", 16384}, {"hybrid_over_transformer", 0.5}}})}};
  const json d = judge_findings(r)[3];
  EXPECT_EQ(d["verdict"], verdict_without);
  EXPECT_DOUBLE_EQ(d["numbers"]["speedup_8b_shape"].get<double>(), 0.5);  // the longest context's
  EXPECT_EQ(d["numbers"]["context_8b_shape"].get<int64_t>(), 16384);
  EXPECT_NE(d["detail"].get<std::string>().find("0.50x transformer-8b at context 16384"), std::string::npos);
  r["speed_8b"] = {{"measured", false}, {"reason", "measured on GPU runs only (--device cuda)"}};
  EXPECT_FALSE(judge_findings(r)[3]["numbers"].contains("speedup_8b_shape"));
}

TEST(StudyPhaseMarker, SkipsSameInputsRefusesOthers) {
  namespace st = mambalm::study;
  const std::string dir = mambalm::testing::temp_dir("study-marker");
  const std::string fp = st::fingerprint_of({{"steps", 20}});
  EXPECT_NE(fp, st::fingerprint_of({{"steps", 21}}));
  EXPECT_FALSE(st::phase_done(dir, "data", fp));
  EXPECT_THROW(st::done_fingerprint(dir, "data"), mambalm::Error);
  st::mark_done(dir, "data", fp, {{"tokens", 7}});
  EXPECT_TRUE(st::phase_done(dir, "data", fp));
  EXPECT_EQ(st::done_summary(dir, "data")["tokens"], 7);
  try {
    st::phase_done(dir, "data", st::fingerprint_of({{"steps", 21}}));
    FAIL() << "a marker with other inputs must be refused";
  } catch (const mambalm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("other inputs or options"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
