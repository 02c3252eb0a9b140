#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "config/hf_config.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "tokenizer/install.h"

namespace mambalm {

namespace fs = std::filesystem;

namespace {

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// The step of a "step-NNNNNNNN" name (8 or more digits), or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() < 13 || name.size() > 23) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

nlohmann::json read_state_json(const std::string& checkpoint_dir) {
  const std::string state_path = (fs::path(checkpoint_dir) / "trainer_state.json").string();
  nlohmann::json j = nlohmann::json::parse(io::read_text_file(state_path), nullptr, false);
  check(!j.is_discarded() && j.is_object(), state_path, "not valid JSON");
  return j;
}

// Why checkpoint `dir` cannot be resumed from ("" when it can): every file present and
// structurally sound (a truncated safetensors file fails here), and written by run `run_id`.
std::string checkpoint_problem(const fs::path& dir, const std::string& run_id, bool accept_legacy) {
  try {
    const nlohmann::json j = read_state_json(dir.string());
    const std::string owner = j.value("run_id", std::string());
    if (owner.empty() && !accept_legacy) return "it has no run id (written by another tool or version)";
    if (!owner.empty() && owner != run_id) return "it belongs to another run (" + owner + ")";
    for (const char* key : {"step", "samples_seen", "tokens_seen"})
      check(j.contains(key) && j[key].is_number_integer() && j[key].get<int64_t>() >= 0, dir.string(),
            std::string("trainer_state.json: bad '") + key + "'");
    check(j.contains("config"), dir.string(), "trainer_state.json: no 'config'");
    load_model_config(dir.string());
    io::WeightSet::open(dir.string());
    io::SafetensorsFile::open((dir / "optimizer.safetensors").string());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

CheckpointSnapshot snapshot_checkpoint(const Model& model, NamedTensors optimizer_state, int64_t optimizer_steps,
                                       const TrainerState& state, const std::string& tokenizer_dir) {
  CheckpointSnapshot s;
  s.weights = model.host_weights(DType::F32);
  s.config = model.config();
  if (model.device() == Device::CPU)  // there an optimizer's state tensors are its live moments: copy them
    for (auto& [name, t] : optimizer_state) t = t.clone();
  s.optimizer_state = std::move(optimizer_state);
  s.optimizer_steps = optimizer_steps;
  s.state = state;
  s.tokenizer_dir = tokenizer_dir;
  return s;
}

std::string write_checkpoint(const std::string& run_dir, const CheckpointSnapshot& snapshot) {
  const TrainerState& state = snapshot.state;
  const std::string& tokenizer_dir = snapshot.tokenizer_dir;
  const int64_t optimizer_steps = snapshot.optimizer_steps;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path final_dir = root / step_name(state.step);
  const fs::path tmp = root / (".tmp-" + step_name(state.step) + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  Model::write_model_dir(tmp.string(), snapshot.config, snapshot.weights);  // each file written atomically and fsync'ed
  if (!tokenizer_dir.empty() && has_tokenizer(tokenizer_dir)) install_tokenizer(tokenizer_dir, tmp.string());
  io::write_safetensors((tmp / "optimizer.safetensors").string(), snapshot.optimizer_state,
                        {{"steps_taken", std::to_string(optimizer_steps)}});
  nlohmann::json j = {{"step", state.step},
                      {"samples_seen", state.samples_seen},
                      {"tokens_seen", state.tokens_seen},
                      {"optimizer_steps", optimizer_steps},
                      {"run_id", state.run_id},
                      {"config", state.config}};
  io::write_file_atomically((tmp / "trainer_state.json").string(), j.dump(2) + "\n");
  fsync_path(tmp);
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it
  fs::rename(tmp, final_dir);
  fsync_path(root);
  io::write_file_atomically((root / "latest").string(), step_name(state.step) + "\n");
  return final_dir.string();
}

int prune_checkpoints(const std::string& run_dir, int64_t keep) {
  if (keep <= 0) return 0;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  std::vector<std::pair<int64_t, fs::path>> all;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && entry.is_directory()) all.emplace_back(step, entry.path());
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string latest;
  try {
    latest = io::read_text_file((root / "latest").string());
  } catch (const Error&) {
  }
  while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
  int removed = 0;
  for (size_t i = static_cast<size_t>(keep); i < all.size(); ++i) {
    if (all[i].second.filename().string() == latest) continue;
    fs::remove_all(all[i].second, ec);
    removed += !ec;
  }
  return removed;
}

std::string resume_checkpoint(const std::string& run_dir, const std::string& run_id, bool accept_legacy) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return "";
  std::vector<std::pair<int64_t, fs::path>> all;  // every step-N directory, newest first
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && entry.is_directory()) all.emplace_back(step, entry.path());
  }
  if (all.empty()) return "";
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });

  // `latest` names the last checkpoint whose write completed; newer directories can only come
  // from a kill between the rename and the pointer update, and are skipped (their step is
  // recomputed). Without a readable pointer every directory is a candidate.
  int64_t latest = INT64_MAX;
  const fs::path pointer = root / "latest";
  if (fs::exists(pointer, ec)) {
    std::string name;
    try {
      name = io::read_text_file(pointer.string());
    } catch (const Error&) {
    }
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    const int64_t step = step_of(name);
    if (step >= 0) latest = step;
    else std::fprintf(stderr, "mambalm: warning: %s does not name a checkpoint; using the newest complete one\n", pointer.c_str());
  }
  std::string reasons;
  for (const auto& [step, dir] : all) {
    if (step > latest) continue;
    const std::string problem = checkpoint_problem(dir, run_id, accept_legacy);
    if (problem.empty()) return dir.string();
    std::fprintf(stderr, "mambalm: warning: skipping checkpoint %s: %s\n", dir.c_str(), problem.c_str());
    if (reasons.empty()) reasons = dir.filename().string() + ": " + problem;
  }
  fail(run_dir, "no usable checkpoint to resume from (" + reasons + ")",
       "every checkpoint is damaged or belongs to another run; start a new run directory");
}

void remove_checkpoint_leftovers(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".tmp-", 0) == 0 || name.rfind("latest.tmp-", 0) == 0) stale.push_back(entry.path());
  }
  for (const fs::path& p : stale) {
    fs::remove_all(p, ec);
    if (ec) std::fprintf(stderr, "mambalm: warning: cannot remove %s: %s\n", p.c_str(), ec.message().c_str());
  }
}

bool has_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return false;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (step_of(entry.path().filename().string()) >= 0) return true;
  return false;
}

TrainerState load_checkpoint_state(const std::string& checkpoint_dir, Optimizer& opt) {
  const std::string state_path = (fs::path(checkpoint_dir) / "trainer_state.json").string();
  const nlohmann::json j = read_state_json(checkpoint_dir);
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.samples_seen = j.at("samples_seen").get<int64_t>();
    s.tokens_seen = j.at("tokens_seen").get<int64_t>();
    s.config = j.at("config");
    s.run_id = j.value("run_id", std::string());
  } catch (const nlohmann::json::exception& e) {
    fail(state_path, std::string("bad trainer state: ") + e.what());
  }
  check(s.step >= 0 && s.samples_seen >= 0 && s.tokens_seen >= 0, state_path, "bad trainer state: negative counters");
  auto file = io::SafetensorsFile::open((fs::path(checkpoint_dir) / "optimizer.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : file->names()) tensors.emplace_back(name, file->tensor(name));
  opt.load_state(tensors, j.value("optimizer_steps", s.step));
  return s;
}

}  // namespace mambalm
