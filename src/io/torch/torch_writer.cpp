#include "io/torch/torch_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "core/error.h"
#include "io/torch/zip_archive.h"

namespace mambalm::io::torch {

namespace {

using json = nlohmann::ordered_json;
constexpr int kMaxDepth = 200;  // nesting of the value; deeper is an Error, not a stack overflow

// Pickle opcodes (protocol 2), named as in Python's pickletools.
namespace op {
constexpr char PROTO = '\x80', STOP = '.', MARK = '(', NONE = 'N', NEWTRUE = '\x88', NEWFALSE = '\x89';
constexpr char BININT = 'J', BININT1 = 'K', BININT2 = 'M', LONG1 = '\x8a', BINFLOAT = 'G', BINUNICODE = 'X';
constexpr char EMPTY_TUPLE = ')', TUPLE = 't', TUPLE1 = '\x85', TUPLE2 = '\x86', TUPLE3 = '\x87';
constexpr char EMPTY_LIST = ']', APPEND = 'a', APPENDS = 'e', EMPTY_DICT = '}', SETITEM = 's', SETITEMS = 'u';
constexpr char GLOBAL = 'c', REDUCE = 'R', NEWOBJ = '\x81', BUILD = 'b', BINPERSID = 'Q';
}  // namespace op

// Python's pickler flushes APPENDS / SETITEMS every 1000 items; we do the same.
constexpr size_t kBatch = 1000;

const char* storage_class(DType t) {
  switch (t) {
    case DType::F32: return "FloatStorage";
    case DType::F64: return "DoubleStorage";
    case DType::F16: return "HalfStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::I64: return "LongStorage";
    case DType::I32: return "IntStorage";
    default: return nullptr;
  }
}

bool is_torch_dtype_name(const std::string& n) {
  static const std::set<std::string> kNames{"float32", "float", "float64", "double", "float16", "half", "bfloat16",
                                            "int64", "long", "int32", "int", "int16", "int8", "uint8", "bool"};
  return kNames.count(n) != 0;
}

// The one tag of a tagged object ("__tuple__", ...), or "" for a plain dict.
std::string tag_of(const json& v) {
  if (!v.is_object() || v.size() != 1) return "";
  const std::string& k = v.begin().key();
  static const std::set<std::string> kTags{"__tuple__", "__ordered_dict__", "__namespace__", "__tensor__", "__dtype__"};
  return kTags.count(k) ? k : "";
}

class Pickler {
 public:
  Pickler(const std::map<std::string, Tensor>& tensors, std::string where) : tensors_(tensors), where_(std::move(where)) {}

  PickledValue run(const json& value) {
    out_ += op::PROTO;
    out_ += '\x02';
    put(value, "value", 0);
    out_ += op::STOP;
    for (const auto& [key, t] : tensors_)
      if (!storage_of_.count(key))
        fail(where_, "tensor '" + key + "' is given but the value never uses it", "refer to it as {\"__tensor__\": \"" + key + "\"}");
    return {std::move(out_), std::move(keys_)};
  }

 private:
  [[noreturn]] void refuse(const std::string& at, const std::string& what, const std::string& hint = "") {
    fail(where_, at + ": " + what, hint);
  }

  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }

  void str(const std::string& s, const std::string& at) {
    if (s.size() > 0xffffffffu) refuse(at, "string longer than 4 GiB");
    out_ += op::BINUNICODE;
    u32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }

  void global(const std::string& module, const std::string& name) {
    out_ += op::GLOBAL;
    out_ += module + "\n" + name + "\n";
  }

  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      out_ += op::BININT1;
      out_ += static_cast<char>(v);
    } else if (v >= 0 && v < 65536) {
      out_ += op::BININT2;
      out_ += static_cast<char>(v & 0xff);
      out_ += static_cast<char>(v >> 8);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += op::BININT;
      u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      long1(static_cast<uint64_t>(v), v < 0);
    }
  }

  // LONG1: little-endian two's complement in the fewest bytes that keep the sign.
  void long1(uint64_t bits, bool negative) {
    std::string bytes;
    for (int i = 0; i < 8; ++i) bytes += static_cast<char>((bits >> (8 * i)) & 0xff);
    if (!negative && (bits >> 63)) bytes += '\0';  // an unsigned value past INT64_MAX: 9 bytes
    const char fill = negative ? '\xff' : '\0';
    // Drop a top byte while the byte below it still carries the same sign bit.
    while (bytes.size() > 1 && bytes.back() == fill && ((bytes[bytes.size() - 2] & 0x80) != 0) == negative)
      bytes.pop_back();
    out_ += op::LONG1;
    out_ += static_cast<char>(bytes.size());
    out_ += bytes;
  }

  void real(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    out_ += op::BINFLOAT;
    for (int i = 7; i >= 0; --i) out_ += static_cast<char>((bits >> (8 * i)) & 0xff);  // big-endian
  }

  // Items already pushed as a MARK-ed run become one tuple (the short forms as Python writes them).
  template <class F>
  void tuple(size_t n, F&& items) {
    if (n == 0) {
      out_ += op::EMPTY_TUPLE;
      return;
    }
    if (n > 3) out_ += op::MARK;
    items();
    out_ += n == 1 ? op::TUPLE1 : n == 2 ? op::TUPLE2 : n == 3 ? op::TUPLE3 : op::TUPLE;
  }

  // The items into the dict on top of the stack, as Python's pickler batches them: MARK ...
  // SETITEMS per 1000 pairs, a lone pair by SETITEM.
  void dict_items(const json& obj, const std::string& at, int depth) {
    auto it = obj.begin();
    for (size_t left = obj.size(); left > 0;) {
      const size_t n = std::min(left, kBatch);
      if (n > 1) out_ += op::MARK;
      for (size_t i = 0; i < n; ++i, ++it) {
        str(it.key(), at);
        put(it.value(), at + "." + it.key(), depth + 1);
      }
      out_ += n > 1 ? op::SETITEMS : op::SETITEM;
      left -= n;
    }
  }

  void put(const json& v, const std::string& at, int depth) {
    if (depth > kMaxDepth) refuse(at, "nested more than " + std::to_string(kMaxDepth) + " levels deep");
    switch (v.type()) {
      case json::value_t::null: out_ += op::NONE; return;
      case json::value_t::boolean: out_ += v.get<bool>() ? op::NEWTRUE : op::NEWFALSE; return;
      case json::value_t::number_integer: integer(v.get<int64_t>()); return;
      case json::value_t::number_unsigned: {
        const uint64_t u = v.get<uint64_t>();
        if (u <= static_cast<uint64_t>(INT64_MAX)) integer(static_cast<int64_t>(u));
        else long1(u, false);
        return;
      }
      case json::value_t::number_float: real(v.get<double>()); return;
      case json::value_t::string: str(v.get_ref<const std::string&>(), at); return;
      case json::value_t::array: {
        out_ += op::EMPTY_LIST;  // then batches as dict_items does: APPENDS, or APPEND for one
        for (size_t i = 0; i < v.size(); i += kBatch) {
          const size_t n = std::min(v.size() - i, kBatch);
          if (n > 1) out_ += op::MARK;
          for (size_t j = i; j < i + n; ++j) put(v[j], at + "[" + std::to_string(j) + "]", depth + 1);
          out_ += n > 1 ? op::APPENDS : op::APPEND;
        }
        return;
      }
      case json::value_t::object: put_object(v, at, depth); return;
      default: refuse(at, std::string("a JSON ") + v.type_name() + " has no Python counterpart here");
    }
  }

  void put_object(const json& v, const std::string& at, int depth) {
    const std::string tag = tag_of(v);
    if (tag.empty()) {
      out_ += op::EMPTY_DICT;
      dict_items(v, at, depth);
      return;
    }
    const json& inner = v.begin().value();
    const std::string in = at + "." + tag;
    if (tag == "__tuple__") {
      if (!inner.is_array()) refuse(in, "is a " + std::string(inner.type_name()) + ", not an array");
      tuple(inner.size(), [&] {
        for (size_t i = 0; i < inner.size(); ++i) put(inner[i], in + "[" + std::to_string(i) + "]", depth + 1);
      });
    } else if (tag == "__ordered_dict__") {
      if (!inner.is_object()) refuse(in, "is a " + std::string(inner.type_name()) + ", not an object");
      global("collections", "OrderedDict");  // OrderedDict() then its items, as its __reduce__ says
      out_ += op::EMPTY_TUPLE;
      out_ += op::REDUCE;
      dict_items(inner, in, depth);
    } else if (tag == "__namespace__") {
      if (!inner.is_object()) refuse(in, "is a " + std::string(inner.type_name()) + ", not an object");
      global("argparse", "Namespace");  // object.__reduce_ex__(2): cls.__new__(cls), then BUILD with __dict__
      out_ += op::EMPTY_TUPLE;
      out_ += op::NEWOBJ;
      out_ += op::EMPTY_DICT;
      dict_items(inner, in, depth);
      out_ += op::BUILD;
    } else if (tag == "__dtype__") {
      if (!inner.is_string() || !is_torch_dtype_name(inner.get<std::string>()))
        refuse(in, "is " + inner.dump() + ", not a torch dtype name", "float32, bfloat16, float16, float64, int64, int32, ...");
      global("torch", inner.get<std::string>());
    } else {
      if (!inner.is_string()) refuse(in, "is a " + std::string(inner.type_name()) + ", not a tensor key");
      tensor(inner.get<std::string>(), in);
    }
  }

  // torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())
  void tensor(const std::string& key, const std::string& at) {
    auto it = tensors_.find(key);
    if (it == tensors_.end()) refuse(at, "tensor '" + key + "' is not among the tensors given");
    const Tensor& t = it->second;
    if (!t.defined()) refuse(at, "tensor '" + key + "' is undefined");
    if (t.device() != Device::CPU)
      refuse(at, "tensor '" + key + "' is on the GPU", "copy it to the CPU first (core/device.h)");
    const char* cls = storage_class(t.dtype());
    if (!cls)
      refuse(at, "tensor '" + key + "' has dtype " + dtype_name(t.dtype()) + ", which torch cannot store",
             "F32, BF16, F16, F64, I64 or I32");
    const Shape& shape = t.shape();
    Shape stride(shape.size());
    int64_t step = 1;
    for (size_t d = shape.size(); d-- > 0;) {
      stride[d] = step;
      step *= shape[d];
    }

    global("torch._utils", "_rebuild_tensor_v2");
    out_ += op::MARK;  // the six arguments
    // The storage: persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel).
    auto [pos, fresh] = storage_of_.emplace(key, keys_.size());
    if (fresh) keys_.push_back(key);
    out_ += op::MARK;
    str("storage", at);
    global("torch", cls);
    str(std::to_string(pos->second), at);
    str("cpu", at);
    integer(t.numel());
    out_ += op::TUPLE;
    out_ += op::BINPERSID;
    integer(0);  // storage offset
    tuple(shape.size(), [&] { for (int64_t s : shape) integer(s); });
    tuple(stride.size(), [&] { for (int64_t s : stride) integer(s); });
    out_ += op::NEWFALSE;  // requires_grad
    global("collections", "OrderedDict");  // backward hooks: none
    out_ += op::EMPTY_TUPLE;
    out_ += op::REDUCE;
    out_ += op::TUPLE;
    out_ += op::REDUCE;
  }

  const std::map<std::string, Tensor>& tensors_;
  std::string where_;
  std::string out_;
  std::vector<std::string> keys_;              // storage "i" holds tensor keys_[i]
  std::map<std::string, size_t> storage_of_;   // tensor key -> storage number
};

// ---- the zip -----------------------------------------------------------------------------------

constexpr uint64_t kAlignment = 64;      // torch.save's storage alignment
constexpr uint16_t kPadFieldId = 0x4246; // "FB": the extra field torch pads with
constexpr uint64_t kLocalHeader = 30;    // fixed part of a zip local file header

// The bytes libzip itself puts in an entry's local extra field: nothing for the entries it
// writes here (ASCII names, stored, known size), which the test checks on real files (an empty
// tensor included); a Zip64 field (4 + 16 bytes) once the size needs 64 bits. The 4 GiB case is
// not tested: if libzip did otherwise there, those storages would merely be unaligned, which
// torch.load and our reader accept.
uint64_t libzip_local_extra(uint64_t size) { return size >= 0xffffffffu ? 20 : 0; }

std::string serialization_id() {
  std::random_device rd;
  std::string id;
  for (int i = 0; i < 40; ++i) id += static_cast<char>('0' + rd() % 10);
  return id;
}

std::string parent_dir(const std::string& path) {
  const std::string p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

// An archive being written to the temporary file; discarded (and the file removed) unless closed.
class ZipOut {
 public:
  ZipOut(const std::string& path, const std::string& tmp) : path_(path), tmp_(tmp) {
    int code = 0;
    zip_ = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!zip_) fail(path, "cannot create '" + tmp + "': " + libzip_error(code), "does the directory exist and is it writable?");
  }
  ~ZipOut() {
    if (zip_) zip_discard(zip_);
    if (!done_) ::unlink(tmp_.c_str());
  }

  // Adds `size` bytes at `data` (kept alive by the caller until close) under `name`, stored,
  // the local header padded so that the data starts at a multiple of 64 (torch pads every
  // entry so; only storages need it, for memory-mapped loading).
  void add(const std::string& name, const void* data, uint64_t size) {
    zip_source_t* src = zip_source_buffer(zip_, size ? data : nullptr, size, 0);
    if (!src) fail(path_, "zip entry '" + name + "': " + zip_strerror(zip_));
    const zip_int64_t idx = zip_file_add(zip_, name.c_str(), src, ZIP_FL_ENC_GUESS);
    if (idx < 0) {
      zip_source_free(src);
      fail(path_, "zip entry '" + name + "': " + zip_strerror(zip_));
    }
    const auto i = static_cast<zip_uint64_t>(idx);
    if (zip_set_file_compression(zip_, i, ZIP_CM_STORE, 0) != 0)
      fail(path_, "zip entry '" + name + "': " + zip_strerror(zip_));
    const uint64_t header_end = offset_ + kLocalHeader + name.size() + libzip_local_extra(size) + 4;  // + our field's id, size
    const uint64_t pad = (kAlignment - header_end % kAlignment) % kAlignment;
    const std::string padding(pad, 'Z');
    if (zip_file_extra_field_set(zip_, i, kPadFieldId, ZIP_EXTRA_FIELD_NEW,
                                 reinterpret_cast<const zip_uint8_t*>(padding.data()), static_cast<zip_uint16_t>(pad),
                                 ZIP_FL_LOCAL) != 0)
      fail(path_, "zip entry '" + name + "': cannot pad its header: " + zip_strerror(zip_));
    offset_ = header_end + pad + size;
  }

  void close() {
    if (zip_close(zip_) != 0) fail(path_, "cannot write '" + tmp_ + "': " + zip_strerror(zip_), "disk full?");
    zip_ = nullptr;
  }
  void keep() { done_ = true; }

 private:
  std::string path_, tmp_;
  zip_t* zip_ = nullptr;
  uint64_t offset_ = 0;  // where the next local header will start
  bool done_ = false;
};

void fsync_path(const std::string& file, int flags, const std::string& path) {
  const int fd = ::open(file.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open '" + file + "' to fsync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory; the file itself is already durable then.
  if (rc != 0 && !((flags & O_DIRECTORY) && (saved == EINVAL || saved == ENOTSUP)))
    fail(path, "fsync of '" + file + "' failed: " + std::strerror(saved));
}

}  // namespace

PickledValue pickle_torch_value(const nlohmann::ordered_json& value, const std::map<std::string, Tensor>& tensors,
                                const std::string& where) {
  return Pickler(tensors, where).run(value);
}

void write_torch_file(const std::string& path, const nlohmann::ordered_json& value,
                      const std::map<std::string, Tensor>& tensors, const std::string& archive_dir) {
  check(!path.empty(), "write_torch_file", "empty output path");
  std::string dir = archive_dir.empty() ? std::filesystem::path(path).stem().string() : archive_dir;
  if (dir.empty()) dir = "archive";
  check(dir.find('/') == std::string::npos && dir.find('\\') == std::string::npos && dir != "." && dir != "..", path,
        "archive folder '" + dir + "' is not a plain name");

  const PickledValue pickled = pickle_torch_value(value, tensors, path);
  static const std::string kByteOrder = "little", kVersion = "3\n";
  const std::string id = serialization_id();

  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    ZipOut zip(path, tmp);
    zip.add(dir + "/data.pkl", pickled.bytes.data(), pickled.bytes.size());
    zip.add(dir + "/byteorder", kByteOrder.data(), kByteOrder.size());
    for (size_t i = 0; i < pickled.storage_keys.size(); ++i) {
      const Tensor& t = tensors.at(pickled.storage_keys[i]);
      zip.add(dir + "/data/" + std::to_string(i), t.numel() ? t.raw() : nullptr, t.nbytes());
    }
    zip.add(dir + "/version", kVersion.data(), kVersion.size());
    zip.add(dir + "/.data/serialization_id", id.data(), id.size());
    zip.close();  // libzip writes `tmp` (itself through a temporary name and a rename)
    // On an error from here on, ~ZipOut removes `tmp`.
    fsync_path(tmp, O_RDONLY, path);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      fail(path, "cannot rename '" + tmp + "' over it: " + std::strerror(errno), "is the path a directory?");
    zip.keep();
  }
  fsync_path(parent_dir(path), O_RDONLY | O_DIRECTORY, path);
}

}  // namespace mambalm::io::torch
