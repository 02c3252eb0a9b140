#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/hex.h"
#include "io/atomic_file.h"
#include "io/fingerprint.h"
#include "train/checkpoint.h"

namespace mambalm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string absolute(const std::string& p) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? p : a.string();
}

std::string new_run_id() {
  std::random_device rd;
  const uint64_t bits = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                        static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return hex16(bits);
}

json dataset_identity(const std::string& prefix) {
  if (prefix.empty()) return nullptr;
  return {{"path", absolute(prefix)},
          {"idx", io::file_fingerprint(prefix + ".idx")},
          {"bin", io::file_fingerprint(prefix + ".bin")}};
}

// True when metrics.jsonl has at least one non-blank line.
bool has_metrics(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  const std::string text = io::read_text_file(path.string());
  return text.find_first_not_of(" \n\r\t") != std::string::npos;
}

void remove_tmp_files(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp-") != std::string::npos && entry.is_regular_file()) stale.push_back(entry.path());
  }
  for (const fs::path& p : stale) fs::remove(p, ec);
}

std::string describe(const json& a) { return a.is_null() ? "none" : a.dump(); }

// j[key], or null when j is not an object or has no such key (never throws).
json field(const json& j, const char* key) { return j.is_object() && j.contains(key) ? j[key] : json(); }

// "" when two data records (blend_identity()) are the same data, else what differs, naming the
// dataset and, in a blend, its place and weight.
std::string data_difference(const json& was, const json& is) {
  const auto files = [](const json& d) { return field(d, "idx").dump() + field(d, "bin").dump(); };
  const json was_blend = field(was, "blend"), is_blend = field(is, "blend");
  if (was_blend.is_array() && is_blend.is_array() && was_blend.size() == is_blend.size()) {
    for (size_t i = 0; i < was_blend.size(); ++i) {
      const json &a = was_blend[i], &b = is_blend[i];
      const std::string which = "blend part " + std::to_string(i + 1) + " ";
      if (files(a) != files(b))
        return which + "was " + describe(field(a, "path")) + ", now " + describe(field(b, "path")) + " (or its files changed)";
      if (field(a, "weight") != field(b, "weight"))
        return which + describe(field(b, "path")) + ": weight was " + describe(field(a, "weight")) + ", now " +
               describe(field(b, "weight"));
    }
    return "";
  }
  if (!was_blend.is_array() && !is_blend.is_array() && files(was) == files(is)) return "";
  const auto text = [](const json& d, const json& blend) {
    if (!blend.is_array()) return describe(field(d, "path"));
    std::string s = "a blend of";
    for (const json& p : blend) s += " " + describe(field(p, "weight")) + " " + describe(field(p, "path"));
    return s;
  };
  return text(was, was_blend) + ", now " + text(is, is_blend);
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / "lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path, std::string("cannot create the run's lock file: ") + std::strerror(errno), "is the directory writable?");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (saved == EWOULDBLOCK) {
      std::string owner = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "";
      while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
      fail(run_dir, "another training process" + (owner.empty() ? "" : " (pid " + owner + ")") + " is using this run directory",
           "wait for it to finish, or give this run another --out");
    }
    fail(path, std::string("cannot lock: ") + std::strerror(saved));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid is only for the message another process prints; the lock itself holds.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

json blend_identity(const std::vector<BlendPart>& parts) {
  if (parts.empty()) return nullptr;
  if (parts.size() == 1 && parts[0].weight == 1.0) return dataset_identity(parts[0].prefix);
  json blend = json::array();
  for (const BlendPart& p : parts) {
    json one = dataset_identity(p.prefix);
    one["weight"] = p.weight;
    blend.push_back(one);
  }
  return {{"blend", blend}};
}

json run_identity(const std::string& model_dir, const json& train_data, const json& valid_data, const json& options) {
  const fs::path dir(model_dir);
  json model = {{"path", absolute(model_dir)}, {"config", io::file_fingerprint((dir / "config.json").string())}};
  std::error_code ec;
  if (fs::is_regular_file(dir / "model.safetensors", ec))
    model["weights"] = io::file_fingerprint((dir / "model.safetensors").string());
  else if (fs::is_regular_file(dir / "model.safetensors.index.json", ec))
    model["weights"] = io::file_fingerprint((dir / "model.safetensors.index.json").string());
  return {{"model", model}, {"train_data", train_data}, {"valid_data", valid_data},
          {"options", options}};
}

void check_same_options(const json& saved, const json& now, const std::string& where) {
  check(saved.is_object(), where, "the saved training options are not a JSON object");
  for (const auto& [key, value] : now.items()) {
    if (!saved.contains(key)) continue;  // not recorded by an older version
    if (key == "steps") continue;        // a resume may extend the run (checked against the step reached)
    if (saved[key] != value)
      fail(where, "was trained with different options: " + key + " was " + saved[key].dump() + ", now " + value.dump(),
           "resume with the same options, or start a new run directory");
  }
}

RunStart open_run(const std::string& run_dir, const json& identity, bool resume, bool overwrite) {
  const fs::path dir(run_dir), record = dir / "run.json", metrics = dir / "metrics.jsonl";
  if (overwrite && !resume) {
    std::error_code ec;
    for (const fs::path& p : {record, metrics, dir / "checkpoints"}) fs::remove_all(p, ec);
  }
  remove_checkpoint_leftovers(run_dir);
  remove_tmp_files(dir);
  std::error_code ec;
  const bool has_record = fs::exists(record, ec);
  const bool holds_run = has_checkpoints(run_dir) || has_metrics(metrics);
  RunStart start;
  if (!resume) {
    if (holds_run)
      fail(run_dir, "already holds a training run (checkpoints or metrics.jsonl)",
           "continue it with --resume, start it again with --overwrite, or give this run a new --out");
  } else if (has_record) {
    json saved = json::parse(io::read_text_file(record.string()), nullptr, false);
    check(!saved.is_discarded() && saved.is_object() && saved.contains("run_id") && saved["run_id"].is_string(),
          record.string(), "not a valid run record", "the file is damaged; start a new run directory");
    const json was_model = field(saved, "model"), is_model = identity["model"];
    check(field(was_model, "config") == field(is_model, "config") && field(was_model, "weights") == field(is_model, "weights"),
          run_dir, "belongs to another model: it was started from " + describe(field(was_model, "path")) + ", and " +
                       is_model["path"].get<std::string>() + " is not that model (or has changed since)",
          "resume with the run's own --model, or start a new run directory");
    for (const char* data : {"train_data", "valid_data"}) {
      const std::string diff = data_difference(field(saved, data), identity[data]);
      check(diff.empty(), run_dir,
            std::string("was trained on other ") + (std::string(data) == "train_data" ? "training" : "validation") + " data: " + diff,
            "resume with the run's own --data, or start a new run directory");
    }
    check_same_options(field(saved, "options"), identity["options"], run_dir);
    start.run_id = saved["run_id"].get<std::string>();
    start.legacy = field(saved, "adopted_legacy_run") == json(true);  // its old checkpoints stay usable
    return start;
  } else if (holds_run) {
    // A run directory of a version without run.json: its checkpoints carry their options,
    // which the trainer compares; from now on the directory has a record.
    start.legacy = true;
    std::fprintf(stderr, "mambalm: warning: %s has no run.json (an older version's run); adopting it\n", run_dir.c_str());
  }
  start.run_id = new_run_id();
  json rec = identity;
  rec["run_id"] = start.run_id;
  if (start.legacy) rec["adopted_legacy_run"] = true;
  io::write_file_atomically(record.string(), rec.dump(2) + "\n");
  return start;
}

void truncate_metrics(const std::string& run_dir, int64_t step) {
  const fs::path path = fs::path(run_dir) / "metrics.jsonl";
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    io::write_file_atomically(path.string(), "");
    return;
  }
  const std::string text = io::read_text_file(path.string());
  std::string kept;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) break;  // a torn last line (killed mid-write): dropped
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    const json row = json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.is_object() || !row.contains("step") || !row["step"].is_number_integer()) continue;
    if (row["step"].get<int64_t>() <= step) kept += line + "\n";
  }
  if (kept != text) io::write_file_atomically(path.string(), kept);
}

}  // namespace mambalm
