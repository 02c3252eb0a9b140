#include "io/torch/unpickler.h"

#include <array>
#include <bit>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/limits.h"

namespace mambalm::io::torch {

size_t torch_dtype_size(TorchDType t) {
  switch (t) {
    case TorchDType::F64: case TorchDType::I64: return 8;
    case TorchDType::F32: case TorchDType::I32: return 4;
    case TorchDType::F16: case TorchDType::BF16: case TorchDType::I16: return 2;
    case TorchDType::I8: case TorchDType::U8: case TorchDType::Bool: return 1;
  }
  return 1;
}

std::string torch_dtype_name(TorchDType t) {
  switch (t) {
    case TorchDType::F32: return "float32";
    case TorchDType::F64: return "float64";
    case TorchDType::F16: return "float16";
    case TorchDType::BF16: return "bfloat16";
    case TorchDType::I64: return "int64";
    case TorchDType::I32: return "int32";
    case TorchDType::I16: return "int16";
    case TorchDType::I8: return "int8";
    case TorchDType::U8: return "uint8";
    case TorchDType::Bool: return "bool";
  }
  return "?";
}

const PickleValue* PickleTree::get(const PickleValue& mapping, std::string_view key) const {
  if (mapping.kind != PickleValue::Kind::Dict && mapping.kind != PickleValue::Kind::Namespace) return nullptr;
  for (size_t i = 0; i + 1 < mapping.items.size(); i += 2) {
    const PickleValue& k = values.at(mapping.items[i]);
    if (k.kind == PickleValue::Kind::String && k.text == key) return &values.at(mapping.items[i + 1]);
  }
  return nullptr;
}

namespace {

using Kind = PickleValue::Kind;

// The storage classes torch.save names in a storage's persistent id.
bool storage_dtype(const std::string& name, TorchDType* out) {
  static const std::array<std::pair<const char*, TorchDType>, 11> kStorages{{
      {"torch.FloatStorage", TorchDType::F32}, {"torch.DoubleStorage", TorchDType::F64},
      {"torch.HalfStorage", TorchDType::F16}, {"torch.BFloat16Storage", TorchDType::BF16},
      {"torch.LongStorage", TorchDType::I64}, {"torch.IntStorage", TorchDType::I32},
      {"torch.ShortStorage", TorchDType::I16}, {"torch.CharStorage", TorchDType::I8},
      {"torch.ByteStorage", TorchDType::U8}, {"torch.BoolStorage", TorchDType::Bool},
      {"torch.UntypedStorage", TorchDType::U8},  // raw bytes, as torch.save writes an untyped storage
  }};
  for (const auto& [n, t] : kStorages)
    if (name == n) {
      *out = t;
      return true;
    }
  return false;
}

// torch.dtype objects pickle as globals (`params_dtype=torch.bfloat16` in Megatron's args).
bool is_torch_dtype(const std::string& name) {
  static const std::array<const char*, 15> kDTypes{
      "torch.float32", "torch.float", "torch.float64", "torch.double", "torch.float16", "torch.half",
      "torch.bfloat16", "torch.int64", "torch.long", "torch.int32", "torch.int", "torch.int16",
      "torch.int8", "torch.uint8", "torch.bool"};
  for (const char* d : kDTypes)
    if (name == d) return true;
  return false;
}

constexpr const char* kOrderedDict = "collections.OrderedDict";
constexpr const char* kNamespace = "argparse.Namespace";
constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr const char* kRebuildParameter = "torch._utils._rebuild_parameter";
constexpr const char* kRebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";

class Unpickler {
 public:
  Unpickler(std::string_view data, const UnpickleOptions& options) : data_(data), options_(options) {}

  PickleTree run() {
    while (true) {
      op_at_ = pos_;
      const uint8_t op = byte();
      if (op == '.') break;  // STOP
      step(op);
    }
    if (stack_.size() != 1 || !marks_.empty()) error("STOP with " + std::to_string(stack_.size()) + " values on the stack");
    tree_.root = stack_.back();
    return std::move(tree_);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(options_.where, "pickle byte " + std::to_string(op_at_) + ": " + what,
         "the file is damaged or is not a state dict written by torch.save");
  }

  // ---- reading the byte stream ----
  void need(uint64_t n) const {
    if (n > data_.size() - pos_) error("truncated: needs " + std::to_string(n) + " more bytes");
  }
  uint8_t byte() {
    need(1);
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint64_t little(int n) {
    need(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(data_[pos_ + i])} << (8 * i);
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::string bytes(uint64_t n) {
    need(n);
    std::string s(data_.substr(pos_, static_cast<size_t>(n)));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  std::string line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > 256) error("GLOBAL name without its newline");
    std::string s(data_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }

  // ---- values, stack, memo ----
  ValueId make(PickleValue v) {
    if (tree_.values.size() >= options_.max_values) error("more than " + std::to_string(options_.max_values) + " values");
    tree_.values.push_back(std::move(v));
    return static_cast<ValueId>(tree_.values.size() - 1);
  }
  ValueId make(Kind kind) {
    PickleValue v;
    v.kind = kind;
    return make(std::move(v));
  }
  PickleValue& val(ValueId id) { return tree_.values[id]; }
  void push(ValueId id) {
    if (stack_.size() >= options_.max_stack) error("stack deeper than " + std::to_string(options_.max_stack));
    stack_.push_back(id);
  }
  ValueId pop() {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) error("stack underflow");
    const ValueId id = stack_.back();
    stack_.pop_back();
    return id;
  }
  ValueId& top() {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= floor) error("stack underflow");
    return stack_.back();
  }
  // The values above the last MARK, removing them and the mark.
  std::vector<ValueId> pop_mark() {
    if (marks_.empty()) error("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValueId> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t key) { memo_[key] = top(); }
  void memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) error("memo key " + std::to_string(key) + " was never stored");
    push(it->second);
  }

  ValueId make_int(int64_t v) {
    PickleValue x;
    x.kind = Kind::Int;
    x.integer = v;
    return make(std::move(x));
  }
  ValueId make_text(Kind kind, std::string s) {
    PickleValue x;
    x.kind = kind;
    x.text = std::move(s);
    return make(std::move(x));
  }
  ValueId make_tuple(std::vector<ValueId> items) {
    PickleValue x;
    x.kind = Kind::Tuple;
    x.items = std::move(items);
    return make(std::move(x));
  }
  // Two's-complement little-endian integer of n bytes (LONG1 / LONG4); int64 at most.
  int64_t long_bytes(uint64_t n) {
    if (n > 8) {
      need(n);
      error("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    }
    if (n == 0) return 0;
    const uint64_t raw = little(static_cast<int>(n));
    if (n == 8) return static_cast<int64_t>(raw);
    const uint64_t sign = uint64_t{1} << (8 * n - 1);
    return static_cast<int64_t>(raw & sign ? raw | ~((sign << 1) - 1) : raw);
  }

  // ---- containers ----
  PickleValue& mutable_list(ValueId id) {
    PickleValue& v = val(id);
    if (v.kind != Kind::List) error("APPEND to a value that is not a list");
    return v;
  }
  void set_items(ValueId dict, const std::vector<ValueId>& kv) {
    if (val(dict).kind != Kind::Dict) error("SETITEM on a value that is not a dict");
    if (kv.size() % 2 != 0) error("SETITEMS with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) {
      // A repeated key replaces the earlier value, as in Python.
      bool replaced = false;
      const PickleValue& k = val(kv[i]);
      if (k.kind == Kind::String) {
        std::vector<ValueId>& items = val(dict).items;
        for (size_t j = 0; j + 1 < items.size(); j += 2)
          if (val(items[j]).kind == Kind::String && val(items[j]).text == k.text) {
            items[j + 1] = kv[i + 1];
            replaced = true;
            break;
          }
      }
      if (!replaced) {
        val(dict).items.push_back(kv[i]);
        val(dict).items.push_back(kv[i + 1]);
      }
    }
  }

  // ---- globals: names only, never imported ----
  bool is_opaque(const std::string& name) const {
    for (const std::string& prefix : options_.opaque)
      if (!prefix.empty() && name.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
  }
  ValueId global(const std::string& module, const std::string& name) {
    const std::string q = module + "." + name;
    if (!is_allowed_global(q) && !is_opaque(q))
      fail(options_.where, "refused global '" + q + "' (pickle byte " + std::to_string(op_at_) + ")",
           "only state-dict types are allowed: tensors, storages, OrderedDict, argparse.Namespace; "
           "loading never imports or calls anything");
    return make_text(Kind::Global, q);
  }
  const std::string& callable_name(ValueId id, const char* op) {
    const PickleValue& v = val(id);
    if (v.kind != Kind::Global) error(std::string(op) + " on a value that is not a global");
    return v.text;
  }

  ValueId storage_from_pid(ValueId pid) {
    const PickleValue& t = val(pid);
    if (t.kind != Kind::Tuple || t.items.size() != 5 || val(t.items[0]).kind != Kind::String ||
        val(t.items[0]).text != "storage")
      error("persistent id is not a ('storage', type, key, location, numel) record");
    const PickleValue& type = val(t.items[1]);
    const PickleValue& key = val(t.items[2]);
    const PickleValue& numel = val(t.items[4]);
    PickleValue s;
    s.kind = Kind::Storage;
    if (type.kind != Kind::Global || !storage_dtype(type.text, &s.dtype))
      error("persistent id names no storage type");
    if (key.kind != Kind::String || key.text.empty() || key.text.size() > 64 ||
        key.text.find_first_of("/\\.") != std::string::npos)
      error("storage key is not a plain name");
    if (numel.kind != Kind::Int || numel.integer < 0) error("storage size is not a non-negative integer");
    s.storage_key = key.text;
    s.storage_numel = numel.integer;
    limits::checked_mul(s.storage_numel, static_cast<int64_t>(torch_dtype_size(s.dtype)), options_.where,
                        "storage '" + s.storage_key + "'", limits::kMaxTensorBytes);
    return make(std::move(s));
  }

  Shape int_tuple(ValueId id, const char* what) {
    const PickleValue& t = val(id);
    if (t.kind != Kind::Tuple) error(std::string("tensor ") + what + " is not a tuple");
    if (t.items.size() > 64) error(std::string("tensor ") + what + " has more than 64 dimensions");
    Shape out;
    for (ValueId i : t.items) {
      const PickleValue& x = val(i);
      if (x.kind != Kind::Int || x.integer < 0) error(std::string("tensor ") + what + " holds a non-integer or negative entry");
      out.push_back(x.integer);
    }
    return out;
  }

  ValueId rebuild_tensor(const std::vector<ValueId>& args) {
    if (args.size() != 6 && args.size() != 7) error("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(args.size()));
    const PickleValue& storage = val(args[0]);
    if (storage.kind != Kind::Storage) error("_rebuild_tensor_v2 without a storage");
    const PickleValue& offset = val(args[1]);
    if (offset.kind != Kind::Int || offset.integer < 0) error("tensor storage offset is not a non-negative integer");
    PickleValue t;
    t.kind = Kind::Tensor;
    t.storage_key = storage.storage_key;
    t.dtype = storage.dtype;
    t.storage_numel = storage.storage_numel;
    t.storage_offset = offset.integer;
    t.shape = int_tuple(args[2], "size");
    t.stride = int_tuple(args[3], "stride");
    if (t.shape.size() != t.stride.size()) error("tensor size and stride differ in rank");
    int64_t numel = 1;
    for (int64_t d : t.shape) numel = limits::checked_mul(numel, d, options_.where, "tensor size", limits::kMaxTensorBytes);
    return make(std::move(t));
  }

  ValueId reduce(ValueId callable, ValueId args_id) {
    const std::string name = callable_name(callable, "REDUCE");
    const PickleValue& a = val(args_id);
    if (a.kind != Kind::Tuple) error("REDUCE arguments are not a tuple");
    const std::vector<ValueId> args = a.items;
    if (name == kOrderedDict || name == kNamespace) {
      if (!args.empty()) error(name + " called with arguments");
      return make(name == kOrderedDict ? Kind::Dict : Kind::Namespace);
    }
    if (name == kRebuildTensor) return rebuild_tensor(args);
    if (name == kRebuildParameter || name == kRebuildParameterWithState) {
      if (args.empty() || val(args[0]).kind != Kind::Tensor) error(name + " without a tensor");
      return args[0];  // a Parameter is its data for reading purposes
    }
    if (is_opaque(name) && !is_allowed_global(name)) {
      PickleValue o;
      o.kind = Kind::Object;
      o.text = name;
      o.items = args;
      return make(std::move(o));
    }
    error("'" + name + "' cannot be called");
  }

  ValueId newobj(ValueId cls, ValueId args_id) {
    const std::string name = callable_name(cls, "NEWOBJ");
    const PickleValue& a = val(args_id);
    if (a.kind != Kind::Tuple) error("NEWOBJ arguments are not a tuple");
    if (name == kNamespace || name == kOrderedDict) {
      if (!a.items.empty()) error(name + " constructed with arguments");
      return make(name == kNamespace ? Kind::Namespace : Kind::Dict);
    }
    if (is_opaque(name) && !is_allowed_global(name)) {
      PickleValue o;
      o.kind = Kind::Object;
      o.text = name;
      o.items = a.items;
      return make(std::move(o));
    }
    error("'" + name + "' cannot be constructed");
  }

  void build(ValueId state_id) {
    const ValueId obj = top();
    const Kind kind = val(obj).kind;
    const PickleValue& state = val(state_id);
    if (kind == Kind::Namespace) {
      if (state.kind != Kind::Dict) error("argparse.Namespace state is not a dict");
      const std::vector<ValueId> kv = state.items;
      for (size_t i = 0; i < kv.size(); i += 2)
        if (val(kv[i]).kind != Kind::String) error("argparse.Namespace attribute name is not a string");
      val(obj).kind = Kind::Dict;  // reuse the dict update, then restore the kind
      set_items(obj, kv);
      val(obj).kind = Kind::Namespace;
      return;
    }
    // An OrderedDict's attributes (a state dict's `_metadata`) and opaque objects' state carry
    // nothing that is read: accepted and dropped.
    if (kind == Kind::Dict || kind == Kind::Object) return;
    error("BUILD on a value that takes no state");
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t v = byte();
        if (v < 2 || v > 5) error("pickle protocol " + std::to_string(v) + " is not supported (2..5)");
        return;
      }
      case 0x95: little(8); return;  // FRAME: a length hint only
      case '(': marks_.push_back(stack_.size()); return;  // MARK
      case '}': push(make(Kind::Dict)); return;
      case ']': push(make(Kind::List)); return;
      case ')': push(make_tuple({})); return;
      case 't': push(make_tuple(pop_mark())); return;
      case 0x85: { const ValueId a = pop(); push(make_tuple({a})); return; }
      case 0x86: { const ValueId b = pop(), a = pop(); push(make_tuple({a, b})); return; }
      case 0x87: { const ValueId c = pop(), b = pop(), a = pop(); push(make_tuple({a, b, c})); return; }
      case 'l': {  // LIST
        PickleValue l;
        l.kind = Kind::List;
        l.items = pop_mark();
        push(make(std::move(l)));
        return;
      }
      case 'a': { const ValueId x = pop(); mutable_list(top()).items.push_back(x); return; }  // APPEND
      case 'e': {  // APPENDS
        const std::vector<ValueId> xs = pop_mark();
        PickleValue& l = mutable_list(top());
        l.items.insert(l.items.end(), xs.begin(), xs.end());
        return;
      }
      case 'd': { const std::vector<ValueId> kv = pop_mark(); const ValueId d = make(Kind::Dict); set_items(d, kv); push(d); return; }
      case 's': { const ValueId v = pop(), k = pop(); set_items(top(), {k, v}); return; }  // SETITEM
      case 'u': { const std::vector<ValueId> kv = pop_mark(); set_items(top(), kv); return; }  // SETITEMS
      case 'X': { const uint64_t n = little(4); push(make_text(Kind::String, bytes(n))); return; }
      case 0x8c: { const uint64_t n = byte(); push(make_text(Kind::String, bytes(n))); return; }
      case 0x8d: { const uint64_t n = little(8); push(make_text(Kind::String, bytes(n))); return; }
      case 'C': { const uint64_t n = byte(); push(make_text(Kind::Bytes, bytes(n))); return; }
      case 'B': { const uint64_t n = little(4); push(make_text(Kind::Bytes, bytes(n))); return; }
      case 0x8e: { const uint64_t n = little(8); push(make_text(Kind::Bytes, bytes(n))); return; }
      case 'J': push(make_int(static_cast<int32_t>(static_cast<uint32_t>(little(4))))); return;  // BININT
      case 'K': push(make_int(byte())); return;
      case 'M': push(make_int(static_cast<int64_t>(little(2)))); return;
      case 0x8a: { const uint64_t n = byte(); push(make_int(long_bytes(n))); return; }  // LONG1
      case 0x8b: { const uint64_t n = little(4); push(make_int(long_bytes(n))); return; }  // LONG4
      case 'G': {  // BINFLOAT: big-endian double
        need(8);
        uint64_t raw = 0;
        for (int i = 0; i < 8; ++i) raw = (raw << 8) | static_cast<uint8_t>(data_[pos_ + i]);
        pos_ += 8;
        PickleValue f;
        f.kind = Kind::Float;
        f.number = std::bit_cast<double>(raw);
        push(make(std::move(f)));
        return;
      }
      case 'N': push(make(Kind::None)); return;
      case 0x88: case 0x89: {
        PickleValue b;
        b.kind = Kind::Bool;
        b.boolean = op == 0x88;
        push(make(std::move(b)));
        return;
      }
      case 'q': memo_put(byte()); return;  // BINPUT
      case 'r': memo_put(little(4)); return;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); return;  // MEMOIZE
      case 'h': memo_get(byte()); return;  // BINGET
      case 'j': memo_get(little(4)); return;  // LONG_BINGET
      case '0': pop(); return;  // POP
      case '1': pop_mark(); return;  // POP_MARK
      case '2': push(top()); return;  // DUP
      case 'c': {  // GLOBAL
        const std::string module = line();
        const std::string name = line();
        push(global(module, name));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        const ValueId name = pop(), module = pop();
        if (val(module).kind != Kind::String || val(name).kind != Kind::String) error("STACK_GLOBAL names are not strings");
        push(global(val(module).text, val(name).text));
        return;
      }
      case 'R': { const ValueId args = pop(), f = pop(); push(reduce(f, args)); return; }
      case 0x81: { const ValueId args = pop(), cls = pop(); push(newobj(cls, args)); return; }
      case 'b': build(pop()); return;
      case 'Q': { const ValueId pid = pop(); push(storage_from_pid(pid)); return; }  // BINPERSID
      default: {
        static const char* kHex = "0123456789abcdef";
        error(std::string("unsupported pickle opcode 0x") + kHex[op >> 4] + kHex[op & 15]);
      }
    }
  }

  std::string_view data_;
  const UnpickleOptions& options_;
  size_t pos_ = 0;
  size_t op_at_ = 0;
  PickleTree tree_;
  std::vector<ValueId> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValueId> memo_;
};

}  // namespace

bool is_allowed_global(const std::string& q) {
  TorchDType ignored;
  return q == kOrderedDict || q == kNamespace || q == kRebuildTensor || q == kRebuildParameter ||
         q == kRebuildParameterWithState || storage_dtype(q, &ignored) || is_torch_dtype(q);
}

PickleTree unpickle(std::string_view data, const UnpickleOptions& options) {
  return Unpickler(data, options).run();
}

}  // namespace mambalm::io::torch
