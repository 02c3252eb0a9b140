#include "convert/megatron_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::convert {

namespace fs = std::filesystem;

namespace {

std::string read_first_line(const fs::path& p) {
  std::string text = io::read_text_file(p.string());
  const size_t end = text.find_first_of("\r\n");
  text = text.substr(0, end);
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// CKPT (with its tracker file) -> the iteration folder it names.
fs::path iteration_folder(const fs::path& dir) {
  const fs::path tracker = dir / "latest_checkpointed_iteration.txt";
  if (!fs::exists(tracker)) return dir;
  const std::string it = read_first_line(tracker);
  if (it == "release") return dir / "release";
  check(!it.empty() && it.size() <= 12 && std::all_of(it.begin(), it.end(), [](char c) { return c >= '0' && c <= '9'; }), tracker.string(),
        "expected 'release' or an iteration number, got '" + it + "'");
  char name[32];
  std::snprintf(name, sizeof name, "iter_%07lld", std::stoll(it));
  return dir / name;
}

// The one .pt file of an mp_rank folder (model_optim_rng.pt; model_rng.pt without optimizer).
fs::path rank_file(const fs::path& dir) {
  std::vector<fs::path> pts;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".pt") pts.push_back(e.path());
  check(!pts.empty(), dir.string(), "no .pt file in this tensor-parallel rank's folder");
  std::sort(pts.begin(), pts.end());
  for (const fs::path& p : pts)
    if (p.filename() == "model_optim_rng.pt") return p;
  check(pts.size() == 1, dir.string(), "several .pt files and none is model_optim_rng.pt");
  return pts[0];
}

// "mp_rank_TT" (tensor parallelism only) or, with `pipeline`, "mp_rank_TT_PPP".
bool is_rank_folder(const std::string& name, bool pipeline) {
  auto digits = [&](size_t at, size_t n) {
    return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(at), name.begin() + static_cast<std::ptrdiff_t>(at + n),
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (name.size() != (pipeline ? 14u : 10u) || name.compare(0, 8, "mp_rank_") != 0 || !digits(8, 2)) return false;
  return !pipeline || (name[10] == '_' && digits(11, 3));
}

}  // namespace

std::vector<std::string> megatron_opaque_modules() { return {"megatron.", "_io.", "numpy.", "_codecs.", "transformer_engine."}; }

MegatronCheckpoint MegatronCheckpoint::open(const std::string& path) {
  MegatronCheckpoint ck;
  ck.path_ = path;
  check(fs::exists(path), path, "no such file or directory");
  std::vector<fs::path> files;
  if (fs::is_regular_file(path)) {
    files.push_back(path);
  } else {
    fs::path dir = iteration_folder(path);
    check(fs::is_directory(dir), dir.string(), "the iteration folder that latest_checkpointed_iteration.txt names does not exist");
    bool has_distcp = fs::exists(dir / ".metadata");
    std::map<int, fs::path> ranks;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (e.path().extension() == ".distcp") has_distcp = true;
      if (!e.is_directory()) continue;
      check(!is_rank_folder(name, true), e.path().string(), "a pipeline-parallel checkpoint (mp_rank_TT_PPP folders) is not supported yet",
            "merge the pipeline stages with Megatron-LM's tools/checkpoint/convert.py first");
      if (is_rank_folder(name, false)) ranks[std::stoi(name.substr(8, 2))] = e.path();
    }
    check(!has_distcp, dir.string(),
          "this is the torch_dist format (PyTorch Distributed Checkpoint: .distcp files + .metadata), which is not read yet",
          "save with --ckpt-format torch, or convert with Megatron-LM's tools/checkpoint/convert.py (docs/megatron-import.md)");
    if (ranks.empty() && fs::is_regular_file(dir / "model_optim_rng.pt")) {
      files.push_back(dir / "model_optim_rng.pt");  // an mp_rank folder itself
    } else {
      check(!ranks.empty(), dir.string(), "no mp_rank_XX folders and no latest_checkpointed_iteration.txt",
            "give a Megatron-LM checkpoint folder (the --save folder), an iteration folder or a .pt file");
      int expected = 0;
      for (const auto& [r, p] : ranks) {
        char missing[32];
        std::snprintf(missing, sizeof missing, "mp_rank_%02d", expected);
        check(r == expected, dir.string(), std::string("tensor-parallel rank folder ") + missing + " is missing");
        files.push_back(rank_file(p));
        ++expected;
      }
      check(expected <= 64, dir.string(), std::to_string(expected) + " tensor-parallel ranks (at most 64 are read)");
    }
  }
  io::torch::TorchCheckpointOptions options;
  options.opaque = megatron_opaque_modules();
  for (const fs::path& f : files) {
    ck.files_.push_back(f.string());
    ck.ranks_.push_back(std::shared_ptr<io::torch::TorchCheckpoint>(io::torch::TorchCheckpoint::open(f.string(), options)));
  }
  for (int r = 0; r < ck.tp(); ++r)
    check(ck.rank(r).has_args() || r > 0, ck.files_[0], "no 'args' in the checkpoint",
          "only checkpoints saved by Megatron-LM's training loop carry the model's arguments");
  return ck;
}

nlohmann::json MegatronCheckpoint::args() const { return rank(0).args(); }

std::optional<Shape> MegatronCheckpoint::rank_shape(const std::string& name) const {
  if (!rank(0).contains(name)) return std::nullopt;
  return rank(0).entry(name).shape;
}

Tensor MegatronCheckpoint::read(const MegatronTensor& t) const {
  std::vector<Tensor> parts;
  for (int r = 0; r < tp(); ++r) {
    check(rank(r).contains(t.name), files_[static_cast<size_t>(r)], "tensor '" + t.name + "' is missing");
    parts.push_back(rank(r).read(t.name));
    // The reader gives F16 and F64 as F32, integers as integers: a weight must be floating point.
    check(parts.back().dtype() == DType::F32 || parts.back().dtype() == DType::BF16, files_[static_cast<size_t>(r)],
          "tensor '" + t.name + "' is " + dtype_name(parts.back().dtype()) + ", not a floating-point weight");
  }
  Tensor whole = merge_ranks(t, parts);
  check(whole.shape() == t.shape, path_, "tensor '" + t.name + "' merges to " + shape_str(whole.shape()) + ", expected " + shape_str(t.shape));
  return whole;
}

std::vector<std::string> MegatronCheckpoint::unexpected(const std::vector<std::string>& known) const {
  const std::set<std::string> k(known.begin(), known.end());
  std::vector<std::string> out;
  for (const auto& e : rank(0).tensors()) {
    const std::string& n = e.name;
    if (k.count(n) || (n.size() >= 13 && n.compare(n.size() - 13, 13, "._extra_state") == 0)) continue;
    out.push_back(n);
  }
  return out;
}

}  // namespace mambalm::convert
