// Checkpoints saved by Megatron-LM itself (tests/golden/megatron/, made on the GPU machine by
// tests/golden/make_megatron_fixtures.py with Megatron-LM's own model classes and checkpoint
// code, at tensor parallelism 1 and 2): `mambalm convert --from megatron` + `mambalm forward`
// reproduce the logits Megatron computed (fp32, relative L2 <= 1e-4, docs/numerics.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "test_util.h"

namespace mambalm {
namespace {

namespace fs = std::filesystem;
using mambalm::testing::run_cli;

fs::path fixtures() { return fs::path(mambalm::testing::source_dir()) / "tests" / "golden" / "megatron"; }

void expect_megatron_logits(const std::string& name) {
  const fs::path dir = fixtures() / name;
  ASSERT_TRUE(fs::exists(dir / "logits.npy")) << dir << " is missing: run tests/golden/make_megatron_fixtures.py on the GPU machine";
  const std::string out = mambalm::testing::temp_dir("megatron-fixture-" + name);
  auto r = run_cli("convert --from megatron " + (dir / "checkpoint").string() + " --out " + out + "/model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::cout << r.out;
  const nlohmann::json meta = nlohmann::json::parse(mambalm::testing::read_file((dir / "tokens.json").string()));
  std::string ids;
  for (const auto& t : meta.at("tokens")) ids += std::to_string(t.get<int64_t>()) + " ";
  mambalm::testing::write_file(out + "/tokens.txt", ids + "\n");
  r = run_cli("forward --model " + out + "/model --tokens " + out + "/tokens.txt --logits " + out + "/logits.npy");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Tensor got = io::read_npy(out + "/logits.npy"), want = io::read_npy((dir / "logits.npy").string());
  ASSERT_EQ(got.shape(), want.shape());
  mambalm::testing::expect_close(name + " logits vs Megatron-LM", got, want, 1e-4);
  fs::remove_all(out);
}

TEST(MegatronFixtures, HybridAtOneRank) { expect_megatron_logits("hybrid_tp1"); }
TEST(MegatronFixtures, HybridAtTwoRanks) { expect_megatron_logits("hybrid_tp2"); }
TEST(MegatronFixtures, Mamba2AtOneRank) { expect_megatron_logits("mamba2_tp1"); }
TEST(MegatronFixtures, Mamba2AtTwoRanks) { expect_megatron_logits("mamba2_tp2"); }
TEST(MegatronFixtures, GptAtOneRank) { expect_megatron_logits("gpt_tp1"); }
TEST(MegatronFixtures, GptAtTwoRanks) { expect_megatron_logits("gpt_tp2"); }

}  // namespace
}  // namespace mambalm
