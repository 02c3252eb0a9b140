// PyTorch checkpoint files (torch.save since 1.6: a zip of `<dir>/data.pkl`, `<dir>/data/<key>`
// per storage, `<dir>/byteorder`, `<dir>/version`), read without Python: the pickle goes
// through the restricted unpickler (io/torch/unpickler.h), which never runs code, and tensor
// bytes are read lazily from their zip entries, bounds-checked against the entry's size.
// Megatron-LM's `model_optim_rng.pt` keeps the state dict under 'model' and its command-line
// arguments under 'args' (an argparse.Namespace). docs/torch-checkpoints.md describes it all.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "io/torch/unpickler.h"

namespace mambalm::io::torch {

class ZipArchive;

// One tensor of the state dict, as recorded (nothing read yet). Sizes in elements.
struct TorchTensorEntry {
  std::string name;           // nested dicts joined with '.'
  TorchDType dtype = TorchDType::F32;
  Shape shape;
  Shape stride;
  int64_t storage_offset = 0;
  std::string storage_key;    // zip entry `<dir>/data/<key>`
  int64_t storage_numel = 0;
};

struct TorchCheckpointOptions {
  // Module prefixes kept as inert opaque values instead of refused (see UnpickleOptions).
  std::vector<std::string> opaque;
  uint64_t max_pickle_bytes = uint64_t{1} << 30;
};

class TorchCheckpoint {
 public:
  // Opens the zip, checks the byte order, parses data.pkl completely. Nothing of a tensor's
  // bytes is read here. Errors name the path.
  static std::unique_ptr<TorchCheckpoint> open(const std::string& path, const TorchCheckpointOptions& options = {});
  ~TorchCheckpoint();

  const std::string& path() const { return path_; }
  // The archive's top folder ("model_optim_rng", "archive", ...).
  const std::string& archive_dir() const { return dir_; }
  // Keys of the top-level dict (Megatron: args, checkpoint_version, iteration, model, ...).
  std::vector<std::string> top_level_keys() const;

  // The state dict's tensors: checkpoint['model'] when present, else the top-level dict itself.
  const std::vector<TorchTensorEntry>& tensors() const { return tensors_; }
  // Its entries that are not tensors (None, `_extra_state` objects, numbers), by name.
  const std::vector<std::string>& other_entries() const { return others_; }
  bool contains(const std::string& name) const;
  const TorchTensorEntry& entry(const std::string& name) const;

  // Reads one tensor into a new contiguous CPU tensor: float32 and bfloat16 as stored, float16
  // and float64 converted to F32, int64 and int32 as I64 and I32; other dtypes are an Error.
  // Strided (non-contiguous) tensors are gathered; every element must lie inside its storage
  // and the storage inside its zip entry.
  Tensor read(const std::string& name) const;

  bool has_args() const;
  // checkpoint['args'] (an argparse.Namespace) as a JSON object: ints, floats, strings, bools,
  // None (null), lists and tuples (arrays), dicts with string keys (objects), torch dtypes as
  // strings ("torch.bfloat16"), opaque objects as {"__object__": name, "args": [...]}.
  nlohmann::json args() const;

  const PickleTree& tree() const { return tree_; }

 private:
  TorchCheckpoint() = default;
  void collect(ValueId dict, const std::string& prefix, int depth);

  std::string path_;
  std::string dir_;
  std::unique_ptr<ZipArchive> zip_;
  PickleTree tree_;
  std::vector<TorchTensorEntry> tensors_;
  std::unordered_map<std::string, size_t> by_name_;  // name -> index into tensors_
  std::vector<std::string> others_;
};

// A pickled value as JSON (see TorchCheckpoint::args); Error past 64 levels of nesting or
// 2^20 values (shared sub-lists count each time they appear).
nlohmann::json pickle_to_json(const PickleTree& tree, ValueId id, const std::string& where);

}  // namespace mambalm::io::torch
