// TensorBoard event files (`train --tensorboard DIR`): scalars that TensorBoard's own reader
// loads, written without TensorFlow or protobuf. The format:
//   - a file named events.out.tfevents.<unix seconds>.<host>, a sequence of TFRecords:
//     uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes, the payload,
//     uint32 masked CRC-32C of the payload (masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8);
//   - each payload a serialized tensorflow.Event: wall_time (field 1, double), step (2, int64)
//     and either file_version (3, string "brain.Event:2", the first record) or a Summary
//     (5), whose repeated Value (1) holds a tag (1, string) and a simple_value (2, float).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace mambalm::io {

class AppendFile;

// CRC-32C (Castagnoli), as TFRecord checks its records with.
uint32_t crc32c(const void* data, size_t size);

// The serialized Event of one scalar (exposed for tests).
std::string tensorboard_scalar_event(const std::string& tag, float value, int64_t step, double wall_time);

class TensorBoardWriter {
 public:
  // Creates `dir` if needed and a new event file in it (the version record written).
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  void scalar(const std::string& tag, double value, int64_t step, double wall_time);
  void sync();
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& payload);
  std::string path_;
  std::unique_ptr<AppendFile> file_;
};

}  // namespace mambalm::io
