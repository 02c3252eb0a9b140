#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
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

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt, const TrainerState& state,
                            const std::string& tokenizer_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path final_dir = root / step_name(state.step);
  const fs::path tmp = root / (".tmp-" + step_name(state.step) + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  model.save(tmp.string(), DType::F32);  // each file written atomically and fsync'ed
  if (!tokenizer_dir.empty() && has_tokenizer(tokenizer_dir)) install_tokenizer(tokenizer_dir, tmp.string());
  io::write_safetensors((tmp / "optimizer.safetensors").string(), opt.state_tensors(),
                        {{"steps_taken", std::to_string(opt.steps_taken())}});
  nlohmann::json j = {{"step", state.step},
                      {"samples_seen", state.samples_seen},
                      {"tokens_seen", state.tokens_seen},
                      {"optimizer_steps", opt.steps_taken()},
                      {"config", state.config}};
  io::write_file_atomically((tmp / "trainer_state.json").string(), j.dump(2) + "\n");
  fsync_path(tmp);
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it
  fs::rename(tmp, final_dir);
  fsync_path(root);
  io::write_file_atomically((root / "latest").string(), step_name(state.step) + "\n");
  return final_dir.string();
}

std::string latest_checkpoint(const std::string& run_dir) {
  // The rename of a complete step-N directory is the commit point; `latest` is written after it,
  // so a kill between the two leaves the newest directory without `latest` naming it. The newest
  // complete directory is therefore found by scanning (temporary ones start with ".tmp-").
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return "";
  std::string best;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step-", 0) != 0 || name.size() != 13) continue;
    if (!fs::exists(entry.path() / "trainer_state.json")) continue;
    if (name > best) best = name;  // fixed-width step numbers sort as text
  }
  return best.empty() ? "" : (root / best).string();
}

TrainerState load_checkpoint_state(const std::string& checkpoint_dir, AdamW& opt) {
  const std::string state_path = (fs::path(checkpoint_dir) / "trainer_state.json").string();
  nlohmann::json j = nlohmann::json::parse(io::read_text_file(state_path), nullptr, false);
  check(!j.is_discarded() && j.is_object(), state_path, "not valid JSON");
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.samples_seen = j.at("samples_seen").get<int64_t>();
    s.tokens_seen = j.at("tokens_seen").get<int64_t>();
    s.config = j.at("config");
  } catch (const nlohmann::json::exception& e) {
    fail(state_path, std::string("bad trainer state: ") + e.what());
  }
  auto file = io::SafetensorsFile::open((fs::path(checkpoint_dir) / "optimizer.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : file->names()) tensors.emplace_back(name, file->tensor(name));
  opt.load_state(tensors, j.value("optimizer_steps", s.step));
  return s;
}

}  // namespace mambalm
