// A restricted unpickler for the subset of Python's pickle protocol (0x80 0x02..0x05) that
// torch.save writes for state dicts and Megatron-LM checkpoints. It builds an inert tree of
// values and never runs code: a GLOBAL is only a name, looked up in a fixed allow-list; only
// the few allowed names are interpreted (by code written here), every other name is refused
// with an Error naming it. Values live in one arena and refer to each other by index, so
// self-referencing or deeply nested pickles can neither leak nor overflow the stack on release.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace mambalm::io::torch {

// The element types of PyTorch storages that the allow-list admits.
enum class TorchDType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };
size_t torch_dtype_size(TorchDType t);
std::string torch_dtype_name(TorchDType t);  // "float32", "bfloat16", ...

using ValueId = uint32_t;

struct PickleValue {
  enum class Kind : uint8_t {
    None, Bool, Int, Float, String, Bytes,
    List, Tuple, Dict,       // items: elements; Dict: key, value, key, value, ... (insertion order)
    Namespace,               // argparse.Namespace: items as Dict, keys are strings
    Global,                  // an allowed (or opaque) name, `text` = "module.name"
    Object,                  // an opaque global applied to `items` (only with UnpickleOptions::opaque)
    Storage,                 // a persistent-id storage record
    Tensor,                  // torch._utils._rebuild_tensor_v2
  };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string text;              // String, Bytes, Global (and Object: its global's name)
  std::vector<ValueId> items;    // List, Tuple, Dict, Namespace, Object
  // Storage (and a Tensor's storage): zip key, element type, element count.
  std::string storage_key;
  TorchDType dtype = TorchDType::U8;
  int64_t storage_numel = 0;
  // Tensor: elements, not bytes.
  int64_t storage_offset = 0;
  Shape shape, stride;
};

// The result: every value in one arena; `root` is what STOP returned.
struct PickleTree {
  std::vector<PickleValue> values;
  ValueId root = 0;
  const PickleValue& at(ValueId id) const { return values.at(id); }
  // Dict / Namespace lookup by string key; nullptr when absent (or not a mapping).
  const PickleValue* get(const PickleValue& mapping, std::string_view key) const;
};

struct UnpickleOptions {
  // Where errors point (a file path, "…/data.pkl").
  std::string where = "pickle";
  // Module prefixes (e.g. "megatron.", "_io.") whose globals are kept as inert, opaque values
  // instead of being refused. Nothing of theirs is ever called; they are data you cannot read.
  std::vector<std::string> opaque;
  // Bounds against hostile input. A Megatron 8B state dict holds about 10^4 values; 4M values
  // (under 1 GB of arena) leave room for optimizer states and stop a pickle of tiny opcodes.
  size_t max_values = size_t{1} << 22;
  size_t max_stack = size_t{1} << 20;
};

// Parses `data` (the whole of data.pkl). Error on a refused global, an unsupported opcode,
// malformed or truncated input, naming the byte position.
PickleTree unpickle(std::string_view data, const UnpickleOptions& options = {});

// True when `module.name` is on the allow-list (see docs/torch-checkpoints.md).
bool is_allowed_global(const std::string& qualified_name);

}  // namespace mambalm::io::torch
