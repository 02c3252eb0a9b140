// `train --tensorboard DIR` (issue 17, point 7): event files TensorBoard reads. The encoding is
// checked against values derived by hand from the specifications (the CRC-32C check value of
// RFC 3720's polynomial, protobuf's wire format), and a training run's file record by record.
// TensorBoard's own reader loads a run's file on the GPU machine (scripts/gpu-study.sh).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/tensorboard_events.h"
#include "test_util.h"
#include "train_corpus.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

TEST(TensorBoard, Crc32cCheckValue) {
  EXPECT_EQ(io::crc32c("123456789", 9), 0xE3069283u);  // the standard check value of CRC-32C
  EXPECT_EQ(io::crc32c("", 0), 0u);
}

TEST(TensorBoard, ScalarEventBytes) {
  // Event { wall_time: 0.0 (field 1, fixed64), step: 7 (field 2, varint), summary (field 5) {
  //   value (field 1) { tag: "loss" (field 1), simple_value: 1.5f (field 2, fixed32) } } }
  const std::string want = std::string("\x09\0\0\0\0\0\0\0\0", 9) + "\x10\x07" + "\x2a\x0d" + "\x0a\x0b" + "\x0a\x04loss" +
                           std::string("\x15\x00\x00\xc0\x3f", 5);
  EXPECT_EQ(io::tensorboard_scalar_event("loss", 1.5f, 7, 0.0), want);
}

namespace {

uint32_t masked(const std::string& bytes) {
  const uint32_t c = io::crc32c(bytes.data(), bytes.size());
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// The payloads of a TFRecord file; every length and CRC checked.
std::vector<std::string> records(const std::string& path) {
  const std::string f = read_file(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < f.size()) {
    EXPECT_LE(pos + 12, f.size());
    if (pos + 12 > f.size()) break;
    uint64_t len = 0;
    uint32_t crc_len = 0, crc_data = 0;
    std::memcpy(&len, f.data() + pos, 8);
    std::memcpy(&crc_len, f.data() + pos + 8, 4);
    EXPECT_EQ(crc_len, masked(f.substr(pos, 8)));
    EXPECT_LE(pos + 16 + len, f.size());
    if (pos + 16 + len > f.size()) break;
    const std::string payload = f.substr(pos + 12, len);
    std::memcpy(&crc_data, f.data() + pos + 12 + len, 4);
    EXPECT_EQ(crc_data, masked(payload));
    out.push_back(payload);
    pos += 16 + len;
  }
  return out;
}

}  // namespace

TEST(TensorBoard, TrainingWritesOneScalarPerMetric) {
  setenv("OMP_NUM_THREADS", "1", 1);
  const std::string dir = temp_dir("tensorboard");
  Corpus c = make_corpus(dir, 5);
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --seed 2 --out " + dir + "/model").exit_code, 0);
  CommandResult r = run_cli("train --model " + dir + "/model --data " + c.prefix + " --out " + dir +
                            "/run --seq-len 32 --micro-batch 2 --steps 6 --log-interval 3 --val-interval 6 --tensorboard " + dir + "/tb");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir + "/tb")) files.push_back(e.path().string());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_NE(files[0].find("events.out.tfevents."), std::string::npos);
  const std::vector<std::string> recs = records(files[0]);
  ASSERT_FALSE(recs.empty());
  EXPECT_NE(recs[0].find("brain.Event:2"), std::string::npos);
  // Steps 1..6: loss, lr, grad_norm each step; speed at the logged steps 3 and 6; validation at 6.
  int loss = 0, val = 0, speed = 0;
  for (size_t i = 1; i < recs.size(); ++i) {
    loss += recs[i].find("train/loss") != std::string::npos;
    val += recs[i].find("valid/loss") != std::string::npos;
    speed += recs[i].find("speed/tokens_per_s") != std::string::npos;
  }
  EXPECT_EQ(loss, 6);
  EXPECT_EQ(val, 1);
  EXPECT_EQ(speed, 2);
  EXPECT_EQ(recs.size(), 1u + 6 * 3 + 1 + 2 * 2);
}
