#include "io/tensorboard_events.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "io/append_file.h"

namespace mambalm::io {

namespace {

constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoliReflected : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t masked_crc(const std::string& bytes) {
  const uint32_t crc = crc32c(bytes.data(), bytes.size());
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// Protocol-buffer wire format pieces.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
template <class T>
void put_fixed(std::string& out, T v) {  // little-endian on every machine we build for
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_bytes_field(std::string& out, int field, const std::string& bytes) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

std::string event_header(int64_t step, double wall_time) {
  std::string e;
  put_varint(e, 1 << 3 | 1);  // wall_time: 64-bit
  put_fixed(e, wall_time);
  put_varint(e, 2 << 3 | 0);  // step: varint
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = crc_table()[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string tensorboard_scalar_event(const std::string& tag, float value, int64_t step, double wall_time) {
  std::string v;
  put_bytes_field(v, 1, tag);
  put_varint(v, 2 << 3 | 5);  // simple_value: 32-bit
  put_fixed(v, value);
  std::string summary;
  put_bytes_field(summary, 1, v);
  std::string e = event_header(step, wall_time);
  put_bytes_field(e, 5, summary);
  return e;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // The pid keeps two runs started in the same second apart.
  path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." +
                                         host + "." + std::to_string(::getpid())))
              .string();
  file_ = std::make_unique<AppendFile>(path_);
  std::string e = event_header(0, now);
  put_bytes_field(e, 3, "brain.Event:2");
  record(e);
}

TensorBoardWriter::~TensorBoardWriter() = default;

void TensorBoardWriter::record(const std::string& payload) {
  std::string header;
  put_fixed(header, static_cast<uint64_t>(payload.size()));
  std::string rec = header;
  put_fixed(rec, masked_crc(header));
  rec += payload;
  put_fixed(rec, masked_crc(payload));
  file_->write_record(rec);
}

void TensorBoardWriter::scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  record(tensorboard_scalar_event(tag, static_cast<float>(value), step, wall_time));
}

void TensorBoardWriter::sync() { file_->sync(); }

}  // namespace mambalm::io
