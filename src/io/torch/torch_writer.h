// Writing PyTorch checkpoint files (the zip + pickle format of torch.save since 1.6), so that
// `torch.load` and our own TorchCheckpoint read what mambalm writes (for example a Megatron-LM
// `model_optim_rng.pt`). The value to save is described as JSON with a few tagged objects for
// the Python types JSON lacks; tensors are passed by name next to it. docs/torch-checkpoints.md
// ("Writing") describes the file and what it was checked against.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace mambalm::io::torch {

// The Python value that `value` describes, pickled as torch.save does (protocol 2):
//   null, bool, integer, float, string -> None, bool, int, float, str
//   array                              -> list
//   object                             -> dict (string keys, in the object's order)
//   {"__tuple__": [...]}               -> tuple
//   {"__ordered_dict__": {...}}        -> collections.OrderedDict
//   {"__namespace__": {...}}           -> argparse.Namespace(**{...})
//   {"__tensor__": "key"}              -> the tensor tensors.at("key") (torch._utils._rebuild_tensor_v2)
//   {"__dtype__": "bfloat16"}          -> torch.bfloat16 (float32, float16, bfloat16, float64,
//                                         int64, int32, int16, int8, uint8, bool, and aliases)
// An object is a tag only when the tag is its one key. Tensors are CPU tensors of dtype F32,
// BF16, F16, F64, I64 or I32 (mambalm tensors are always dense row-major); each distinct key
// becomes one storage, named "0", "1", ... in the order of first use; a key used twice gives
// two tensors sharing one storage, as in Python.
struct PickledValue {
  std::string bytes;                      // the whole of data.pkl
  std::vector<std::string> storage_keys;  // tensor key of storage "0", "1", ...
};
PickledValue pickle_torch_value(const nlohmann::ordered_json& value, const std::map<std::string, Tensor>& tensors,
                                const std::string& where);

// Writes `value` (as above) to `path` in torch.save's zip layout, atomically (a temporary file
// next to it, fsync'ed and renamed over `path`). Entries, all stored uncompressed, in the top
// folder `archive_dir` (default: the file's stem, as torch >= 2.0 does; "model_optim_rng" for
// model_optim_rng.pt): data.pkl, byteorder ("little"), data/<key> per storage (data at a
// 64-byte aligned file offset), version ("3\n"), .data/serialization_id.
// Every tensor of `tensors` must be used by `value`. Errors are mambalm::Error naming the path
// (and the JSON path of the value that cannot be written); nothing is left behind on error.
void write_torch_file(const std::string& path, const nlohmann::ordered_json& value,
                      const std::map<std::string, Tensor>& tensors, const std::string& archive_dir = "");

}  // namespace mambalm::io::torch
