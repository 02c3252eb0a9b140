#include "io/weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Shard names come from a file we did not write: keep them inside the model directory.
void check_shard_name(const std::string& shard, const std::string& index_path, const std::string& tensor) {
  fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute();
  for (const auto& part : p) escapes |= part == "..";
  if (escapes)
    fail(index_path + ": weight_map['" + tensor + "']",
         "shard '" + shard + "' is not a file name inside the model directory");
}

}  // namespace

std::shared_ptr<WeightSet> WeightSet::open(const std::string& model_dir) {
  std::shared_ptr<WeightSet> set(new WeightSet());
  set->dir_ = model_dir;
  const fs::path dir(model_dir);
  {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail(model_dir, "not a directory", "expected a Hugging Face model directory");
  }

  const fs::path single = dir / kSingleFile;
  if (is_file(single)) {
    set->shards_.push_back(SafetensorsFile::open(single.string()));
    for (const std::string& name : set->shards_[0]->names()) set->shard_of_[name] = 0;
    return set;
  }
  const fs::path index = dir / kIndexFile;
  if (!is_file(index))
    fail(model_dir, std::string("no ") + kSingleFile + " or " + kIndexFile,
         "is this a model directory? weights in other formats (.bin, .pt) must be converted");

  const std::string index_path = index.string();
  json doc;
  try {
    doc = json::parse(read_text_file(index_path));
  } catch (const json::exception& e) {
    fail(index_path, std::string("not valid JSON: ") + e.what());
  }
  check(doc.is_object() && doc.contains("weight_map"), index_path, "missing field 'weight_map'");
  const json& weight_map = doc["weight_map"];
  check(weight_map.is_object(), index_path, "weight_map is not an object of tensor name -> shard file");

  // Open each distinct shard once, in file-name order.
  std::map<std::string, std::string> shard_by_tensor;
  std::map<std::string, size_t> shard_index;
  for (const auto& [tensor, shard] : weight_map.items()) {
    check(shard.is_string(), index_path + ": weight_map['" + tensor + "']", "value is not a file name");
    check_shard_name(shard.get<std::string>(), index_path, tensor);
    shard_by_tensor[tensor] = shard.get<std::string>();
    shard_index.emplace(shard.get<std::string>(), 0);
  }
  for (auto& [shard, i] : shard_index) {
    const fs::path p = dir / shard;
    if (!is_file(p))
      fail(index_path, "names shard '" + shard + "', which is missing from " + model_dir,
           "incomplete download?");
    i = set->shards_.size();
    set->shards_.push_back(SafetensorsFile::open(p.string()));
  }

  // Every tensor of every shard, each in exactly one shard.
  for (size_t i = 0; i < set->shards_.size(); ++i) {
    for (const std::string& name : set->shards_[i]->names()) {
      auto [it, inserted] = set->shard_of_.emplace(name, i);
      if (!inserted)
        fail(model_dir + ": tensor '" + name + "'",
             "appears in two shards: " + set->shards_[it->second]->path() + " and " + set->shards_[i]->path());
    }
  }
  for (const auto& [tensor, shard] : shard_by_tensor) {
    const size_t want = shard_index.at(shard);
    auto it = set->shard_of_.find(tensor);
    if (it == set->shard_of_.end() || it->second != want)
      fail(index_path + ": weight_map['" + tensor + "']",
           "tensor is not in shard '" + shard + "'" +
               (it == set->shard_of_.end() ? std::string(" nor in any other shard")
                                           : " but in " + set->shards_[it->second]->path()),
           "index and shards disagree");
  }
  return set;
}

std::vector<std::string> WeightSet::names() const {
  std::vector<std::string> out;
  out.reserve(shard_of_.size());
  for (const auto& s : shards_)
    for (const std::string& name : s->names()) out.push_back(name);
  return out;
}

const SafetensorsFile& WeightSet::shard(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    fail(dir_ + ": tensor '" + name + "'", "not in the model's weights",
         std::to_string(shard_of_.size()) + " tensors in " + std::to_string(shards_.size()) +
             " file(s); wrong model_type or a checkpoint of another architecture?");
  return *shards_[it->second];
}

namespace {
std::atomic<bool> g_allow_nonfinite{false};

template <class T, class F>
int64_t first_where(const Tensor& t, F nonfinite) {
  const T* p = t.data<T>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    if (nonfinite(p[i])) return i;
  return -1;
}
// The exponent bits all set: infinity or NaN, in bf16 and in fp16.
bool bf16_nonfinite(uint16_t v) { return (v & 0x7f80u) == 0x7f80u; }
bool f16_nonfinite(uint16_t v) { return (v & 0x7c00u) == 0x7c00u; }
}  // namespace

void allow_nonfinite_weights(bool allow) { g_allow_nonfinite = allow; }

int64_t first_nonfinite(const Tensor& t) {
  switch (t.dtype()) {
    case DType::F32: return first_where<float>(t, [](float v) { return !std::isfinite(v); });
    case DType::F64: return first_where<double>(t, [](double v) { return !std::isfinite(v); });
    case DType::BF16: return first_where<uint16_t>(t, bf16_nonfinite);
    case DType::F16: return first_where<uint16_t>(t, f16_nonfinite);
    default: return -1;
  }
}

Tensor WeightSet::tensor(const std::string& name, bool drop_checked_pages) const {
  Tensor t = shard(name).tensor(name);
  int64_t bad = -1;
  if (!drop_checked_pages || t.numel() == 0) {
    bad = first_nonfinite(t);
  } else {
    const Tensor flat = t.reshape({t.numel()});  // [n] in the file's dtype
    const int64_t block = int64_t{4} << 20;     // elements: 8-32 MiB of file per block
    const uint64_t elem = dtype_size(t.dtype());
    for (int64_t i0 = 0; i0 < flat.numel() && bad < 0; i0 += block) {
      const int64_t i1 = std::min(flat.numel(), i0 + block);
      const int64_t b = first_nonfinite(flat.slice0(i0, i1));
      if (b >= 0) bad = i0 + b;
      release(name, static_cast<uint64_t>(i0) * elem, static_cast<uint64_t>(i1) * elem);
    }
  }
  if (bad >= 0) {
    const std::string where = shard(name).path() + ": tensor '" + name + "'";
    const std::string what = "holds NaN or infinity (element " + std::to_string(bad) + " of " + shape_str(t.shape()) + ")";
    if (!g_allow_nonfinite)
      fail(where, what, "the weights are damaged (a diverged run?); --allow-nonfinite loads them anyway");
    std::fprintf(stderr, "mambalm: warning: %s: %s; loaded because of --allow-nonfinite\n", where.c_str(), what.c_str());
  }
  return t;
}
void WeightSet::release(const std::string& name) const { shard(name).release(name); }
void WeightSet::release(const std::string& name, uint64_t first, uint64_t end) const { shard(name).release(name, first, end); }
DType WeightSet::dtype_of(const std::string& name) const { return shard(name).dtype_of(name); }
const Shape& WeightSet::shape_of(const std::string& name) const { return shard(name).shape_of(name); }
std::string WeightSet::file_of(const std::string& name) const { return shard(name).path(); }
uint64_t WeightSet::file_offset_of(const std::string& name) const { return shard(name).file_offset_of(name); }

const std::map<std::string, std::string>& WeightSet::metadata() const {
  static const std::map<std::string, std::string> empty;
  return shards_.empty() ? empty : shards_[0]->metadata();
}

}  // namespace mambalm::io
