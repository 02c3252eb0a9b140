#include "io/torch/torch_checkpoint.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/limits.h"
#include "io/torch/zip_archive.h"

namespace mambalm::io::torch {

namespace {

using Kind = PickleValue::Kind;
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxJsonValues = int64_t{1} << 20;

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "argparse.Namespace";
    case Kind::Global: return "global";
    case Kind::Object: return "object";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

// `budget` counts the values emitted: shared sub-lists (memo references) are expanded each time
// they appear, so a small hostile pickle could otherwise expand to 2^64 values.
nlohmann::json to_json(const PickleTree& tree, ValueId id, const std::string& where, int depth, int64_t& budget) {
  if (depth > kMaxDepth) fail(where, "value nested more than " + std::to_string(kMaxDepth) + " levels deep");
  if (--budget < 0) fail(where, "value expands to more than " + std::to_string(kMaxJsonValues) + " JSON values");
  const PickleValue& v = tree.at(id);
  switch (v.kind) {
    case Kind::None: return nullptr;
    case Kind::Bool: return v.boolean;
    case Kind::Int: return v.integer;
    case Kind::Float: return v.number;
    case Kind::String: return v.text;
    case Kind::Global: return v.text;  // torch dtypes: "torch.bfloat16"
    case Kind::List:
    case Kind::Tuple: {
      nlohmann::json a = nlohmann::json::array();
      for (ValueId i : v.items) a.push_back(to_json(tree, i, where, depth + 1, budget));
      return a;
    }
    case Kind::Dict:
    case Kind::Namespace: {
      nlohmann::json o = nlohmann::json::object();
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        const PickleValue& k = tree.at(v.items[i]);
        std::string key;
        if (k.kind == Kind::String) key = k.text;
        else if (k.kind == Kind::Int) key = std::to_string(k.integer);
        else fail(where, "a dict key is a " + kind_name(k.kind) + ", not a string");
        o[key] = to_json(tree, v.items[i + 1], where, depth + 1, budget);
      }
      return o;
    }
    case Kind::Object: {
      nlohmann::json a = nlohmann::json::array();
      for (ValueId i : v.items) a.push_back(to_json(tree, i, where, depth + 1, budget));
      return {{"__object__", v.text}, {"args", a}};
    }
    case Kind::Bytes:
    case Kind::Storage:
    case Kind::Tensor:
      return {{"__unsupported__", kind_name(v.kind)}};
  }
  return nullptr;
}

// Element strides of a contiguous row-major tensor of `shape`.
bool is_contiguous(const Shape& shape, const Shape& stride) {
  int64_t expect = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && stride[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

bool mambalm_dtype(TorchDType t, DType* out) {
  switch (t) {
    case TorchDType::F32: *out = DType::F32; return true;
    case TorchDType::BF16: *out = DType::BF16; return true;
    case TorchDType::F16: *out = DType::F16; return true;
    case TorchDType::F64: *out = DType::F64; return true;
    case TorchDType::I64: *out = DType::I64; return true;
    case TorchDType::I32: *out = DType::I32; return true;
    default: return false;
  }
}

}  // namespace

nlohmann::json pickle_to_json(const PickleTree& tree, ValueId id, const std::string& where) {
  int64_t budget = kMaxJsonValues;
  return to_json(tree, id, where, 0, budget);
}

TorchCheckpoint::~TorchCheckpoint() = default;

std::unique_ptr<TorchCheckpoint> TorchCheckpoint::open(const std::string& path, const TorchCheckpointOptions& options) {
  std::unique_ptr<TorchCheckpoint> ck(new TorchCheckpoint());
  ck->path_ = path;
  ck->zip_ = ZipArchive::open(path);
  std::string pickle_entry;
  for (const std::string& name : ck->zip_->names()) {
    const size_t slash = name.find('/');
    if (slash == std::string::npos || slash == 0 || name.substr(slash) != "/data.pkl") continue;
    if (!pickle_entry.empty()) fail(path, "holds more than one data.pkl ('" + pickle_entry + "', '" + name + "')");
    pickle_entry = name;
    ck->dir_ = name.substr(0, slash);
  }
  if (pickle_entry.empty())
    fail(path, "no '<dir>/data.pkl' entry in the zip", "not a checkpoint written by torch.save");
  const std::string byteorder = ck->dir_ + "/byteorder";
  if (ck->zip_->contains(byteorder)) {
    const std::string order = ck->zip_->read_all(byteorder, 16);
    if (order != "little") fail(path, "byte order '" + order + "' is not supported (little only)");
  }
  UnpickleOptions uo;
  uo.where = path + ": " + pickle_entry;
  uo.opaque = options.opaque;
  const std::string pickle = ck->zip_->read_all(pickle_entry, options.max_pickle_bytes);
  ck->tree_ = unpickle(pickle, uo);

  const PickleValue& root = ck->tree_.at(ck->tree_.root);
  if (root.kind != Kind::Dict) fail(path, "the checkpoint is a " + kind_name(root.kind) + ", not a dict");
  ValueId state = ck->tree_.root;
  for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const PickleValue& k = ck->tree_.at(root.items[i]);
    if (k.kind == Kind::String && k.text == "model") {
      state = root.items[i + 1];
      const Kind sk = ck->tree_.at(state).kind;
      if (sk != Kind::Dict) fail(path, "checkpoint['model'] is a " + kind_name(sk) + ", not a state dict");
    }
  }
  ck->collect(state, "", 0);
  return ck;
}

void TorchCheckpoint::collect(ValueId dict, const std::string& prefix, int depth) {
  if (depth > kMaxDepth) fail(path_, "state dict nested more than " + std::to_string(kMaxDepth) + " levels deep");
  const PickleValue& d = tree_.at(dict);
  for (size_t i = 0; i + 1 < d.items.size(); i += 2) {
    const PickleValue& k = tree_.at(d.items[i]);
    if (k.kind != Kind::String) fail(path_, "state dict key under '" + prefix + "' is a " + kind_name(k.kind) + ", not a string");
    if (dict == tree_.root && k.text == "args") continue;  // a flat file's own arguments, not a tensor
    const std::string name = prefix + k.text;
    const PickleValue& v = tree_.at(d.items[i + 1]);
    if (v.kind == Kind::Dict) {
      collect(d.items[i + 1], name + ".", depth + 1);
    } else if (v.kind == Kind::Tensor) {
      if (contains(name)) fail(path_, "tensor '" + name + "' appears twice");
      TorchTensorEntry e;
      e.name = name;
      e.dtype = v.dtype;
      e.shape = v.shape;
      e.stride = v.stride;
      e.storage_offset = v.storage_offset;
      e.storage_key = v.storage_key;
      e.storage_numel = v.storage_numel;
      by_name_.emplace(name, tensors_.size());
      tensors_.push_back(std::move(e));
    } else {
      others_.push_back(name);
    }
  }
}

std::vector<std::string> TorchCheckpoint::top_level_keys() const {
  std::vector<std::string> keys;
  const PickleValue& root = tree_.at(tree_.root);
  for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const PickleValue& k = tree_.at(root.items[i]);
    keys.push_back(k.kind == Kind::String ? k.text : "<" + kind_name(k.kind) + ">");
  }
  return keys;
}

bool TorchCheckpoint::contains(const std::string& name) const {
  return by_name_.count(name) != 0;
}

const TorchTensorEntry& TorchCheckpoint::entry(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) fail(path_, "no tensor '" + name + "' in the state dict");
  return tensors_[it->second];
}

Tensor TorchCheckpoint::read(const std::string& name) const {
  const TorchTensorEntry& e = entry(name);
  const std::string where = path_ + ": tensor '" + name + "'";
  DType stored;
  if (!mambalm_dtype(e.dtype, &stored))
    fail(where, "dtype " + torch_dtype_name(e.dtype) + " is not supported", "float32, bfloat16, float16, float64, int64, int32");
  const int64_t esize = static_cast<int64_t>(torch_dtype_size(e.dtype));
  const std::string data_entry = dir_ + "/data/" + e.storage_key;
  if (!zip_->contains(data_entry)) fail(where, "its storage entry '" + data_entry + "' is missing");
  const uint64_t entry_bytes = zip_->size(data_entry);
  const int64_t storage_bytes = limits::checked_mul(e.storage_numel, esize, where, "storage", limits::kMaxTensorBytes);
  if (static_cast<uint64_t>(storage_bytes) > entry_bytes)
    fail(where, "storage '" + e.storage_key + "' claims " + std::to_string(e.storage_numel) + " elements (" +
                    std::to_string(storage_bytes) + " bytes) but its entry holds " + std::to_string(entry_bytes) + " bytes");

  const int64_t numel = shape_numel(e.shape);
  Tensor out;
  if (numel == 0) out = Tensor::empty(e.shape, stored);
  if (numel > 0) {
    // The last element the view reaches, in storage elements; strides are non-negative.
    int64_t reach = e.storage_offset;
    for (size_t d = 0; d < e.shape.size(); ++d)
      reach = limits::checked_add(reach, limits::checked_mul(e.shape[d] - 1, e.stride[d], where, "stride"), where, "extent");
    if (reach >= e.storage_numel)
      fail(where, "elements up to index " + std::to_string(reach) + " lie past its storage of " +
                      std::to_string(e.storage_numel) + " elements");
    // A view with more elements than its storage overlaps itself (stride 0, as_strided): never
    // in a state dict, and refused so that a small file cannot ask for a huge tensor.
    if (numel > e.storage_numel)
      fail(where, "its " + std::to_string(numel) + " elements overlap within a storage of " +
                      std::to_string(e.storage_numel) + " (stride " + shape_str(e.stride) + ")",
           "expanded or overlapping views are not supported");
    const int64_t span = reach - e.storage_offset + 1;
    const uint64_t byte_offset = static_cast<uint64_t>(e.storage_offset) * static_cast<uint64_t>(esize);
    out = Tensor::empty(e.shape, stored);  // after the checks: a hostile size allocates nothing
    if (is_contiguous(e.shape, e.stride)) {
      zip_->read_range(data_entry, byte_offset, static_cast<uint64_t>(numel * esize), out.raw());
    } else {
      // Strided: read the span the view covers, then gather element by element.
      std::vector<char> raw(static_cast<size_t>(span * esize));
      zip_->read_range(data_entry, byte_offset, raw.size(), raw.data());
      char* dst = static_cast<char*>(out.raw());
      const size_t rank = e.shape.size();
      std::vector<int64_t> index(rank, 0);
      for (int64_t n = 0; n < numel; ++n) {
        int64_t at = 0;
        for (size_t d = 0; d < rank; ++d) at += index[d] * e.stride[d];
        std::memcpy(dst + n * esize, raw.data() + at * esize, static_cast<size_t>(esize));
        for (size_t d = rank; d-- > 0;) {
          if (++index[d] < e.shape[d]) break;
          index[d] = 0;
        }
      }
    }
  }
  if (stored == DType::F16 || stored == DType::F64) return out.to(DType::F32);
  return out;
}

bool TorchCheckpoint::has_args() const {
  return tree_.get(tree_.at(tree_.root), "args") != nullptr;
}

nlohmann::json TorchCheckpoint::args() const {
  const PickleValue* a = tree_.get(tree_.at(tree_.root), "args");
  if (!a) fail(path_, "no 'args' entry", "Megatron-LM saves its arguments as checkpoint['args']");
  if (a->kind != Kind::Namespace)
    fail(path_, "checkpoint['args'] is a " + kind_name(a->kind) + ", not an argparse.Namespace");
  const ValueId id = static_cast<ValueId>(a - tree_.values.data());
  return pickle_to_json(tree_, id, path_ + ": args");
}

}  // namespace mambalm::io::torch
