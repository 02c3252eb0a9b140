#include "study/phase_marker.h"

#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "core/hex.h"
#include "io/atomic_file.h"

namespace mambalm::study {

namespace fs = std::filesystem;

std::string fingerprint_of(const nlohmann::json& inputs) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : inputs.dump()) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return hex16(h);
}

std::string marker_path(const std::string& out_dir, const std::string& phase) {
  return (fs::path(out_dir) / phase / "done.json").string();
}

namespace {
nlohmann::json read_marker(const std::string& path) {
  nlohmann::json m = nlohmann::json::parse(io::read_text_file(path), nullptr, false);
  check(!m.is_discarded() && m.is_object() && m.contains("fingerprint") && m["fingerprint"].is_string(), path,
        "not a valid done-marker", "delete it to redo the phase");
  return m;
}
}  // namespace

bool phase_done(const std::string& out_dir, const std::string& phase, const std::string& fingerprint) {
  const std::string path = marker_path(out_dir, phase);
  if (!fs::exists(path)) return false;
  const nlohmann::json m = read_marker(path);
  check(m["fingerprint"].get<std::string>() == fingerprint, out_dir + "/" + phase,
        "was made with other inputs or options (fingerprint " + m["fingerprint"].get<std::string>() + ", now " + fingerprint + ")",
        "use another --out, or delete " + out_dir + "/" + phase + " and the phases after it to redo them");
  return true;
}

bool marker_matches(const std::string& out_dir, const std::string& phase, const std::string& fingerprint) {
  const std::string path = marker_path(out_dir, phase);
  if (!fs::exists(path)) return false;
  const nlohmann::json m = nlohmann::json::parse(io::read_text_file(path), nullptr, false);
  return !m.is_discarded() && m.is_object() && m.contains("fingerprint") && m["fingerprint"] == fingerprint;
}

std::string done_fingerprint(const std::string& out_dir, const std::string& phase) {
  const std::string path = marker_path(out_dir, phase);
  check(fs::exists(path), out_dir, "the " + phase + " phase has not finished", "run it first: --phase " + phase);
  return read_marker(path)["fingerprint"].get<std::string>();
}

void mark_done(const std::string& out_dir, const std::string& phase, const std::string& fingerprint, const nlohmann::json& summary) {
  fs::create_directories(fs::path(out_dir) / phase);
  const nlohmann::json m = {{"phase", phase}, {"fingerprint", fingerprint}, {"summary", summary}};
  io::write_file_atomically(marker_path(out_dir, phase), m.dump(2) + "\n");
}

nlohmann::json done_summary(const std::string& out_dir, const std::string& phase) {
  const std::string path = marker_path(out_dir, phase);
  check(fs::exists(path), out_dir, "the " + phase + " phase has not finished", "run it first: --phase " + phase);
  return read_marker(path).value("summary", nlohmann::json::object());
}

}  // namespace mambalm::study
