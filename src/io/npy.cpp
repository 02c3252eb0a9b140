#include "io/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::io {

static_assert(std::endian::native == std::endian::little, "npy data is read and written little-endian");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;               // numpy's ARRAY_ALIGN
constexpr size_t kGrowthAxisMaxDigits = 21;  // numpy leaves room to grow the first axis in place

bool descr_to_dtype(const std::string& descr, DType* out) {
  if (descr == "<f4") *out = DType::F32;
  else if (descr == "<f8") *out = DType::F64;
  else if (descr == "<i4") *out = DType::I32;
  else if (descr == "<i8") *out = DType::I64;
  else return false;
  return true;
}

// The header dict is a Python literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
// This reads exactly the subset numpy writes: quoted strings, True/False and tuples of ints.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  struct Value {
    enum Kind { String, Bool, Tuple } kind;
    std::string str;
    bool flag = false;
    Shape dims;
  };

  std::map<std::string, Value> parse() {
    std::map<std::string, Value> out;
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') { ++i_; break; }
      std::string key = string();
      expect(':');
      Value v = value(key);
      if (!out.emplace(key, std::move(v)).second) bad("key '" + key + "' appears twice");
      skip_space();
      if (peek() == ',') { ++i_; continue; }
      expect('}');
      break;
    }
    skip_space();
    if (i_ != s_.size()) bad("unexpected text after the header dict");
    return out;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    // The header ends in a newline (and may hold any byte): shown escaped, so the error stays one line.
    std::string shown;
    for (char c : s_) {
      if (c == '\n') shown += "\\n";
      else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) shown += "?";
      else shown += c;
    }
    fail(path_, "npy header: " + what + " at offset " + std::to_string(i_) + " of \"" + shown + "\"",
         "file corrupt or not written by numpy?");
  }
  void skip_space() { while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_; }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string() {
    skip_space();
    char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a quoted string");
    size_t end = s_.find(quote, ++i_);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  int64_t integer(const std::string& key) {
    skip_space();
    if (peek() == '-') bad("'" + key + "' has a negative dimension");
    if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("'" + key + "' expects integers");
    uint64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, static_cast<unsigned>(s_[i_] - '0'), &v) ||
          v > static_cast<uint64_t>(INT64_MAX))
        bad("'" + key + "' dimension too large");
      ++i_;
    }
    if (peek() == 'L') ++i_;  // Python 2 long suffix
    return static_cast<int64_t>(v);
  }
  Value value(const std::string& key) {
    skip_space();
    Value v{};
    if (peek() == '\'' || peek() == '"') {
      v.kind = Value::String;
      v.str = string();
    } else if (s_.compare(i_, 4, "True") == 0 || s_.compare(i_, 5, "False") == 0) {
      v.kind = Value::Bool;
      v.flag = s_[i_] == 'T';
      i_ += v.flag ? 4 : 5;
    } else if (peek() == '(') {
      v.kind = Value::Tuple;
      ++i_;
      for (;;) {
        skip_space();
        if (peek() == ')') { ++i_; break; }
        v.dims.push_back(integer(key));
        skip_space();
        if (peek() == ',') { ++i_; continue; }
        expect(')');
        break;
      }
    } else {
      bad("'" + key + "' has a value that is not a string, True/False or a tuple");
    }
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;
};

// A read-only file descriptor with exact positional reads; errors name the path.
class InputFile {
 public:
  explicit InputFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      fail(path, "not a regular file", "expected a .npy file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }
  void read_at(uint64_t offset, void* dst, uint64_t bytes) const {
    char* p = static_cast<char*>(dst);
    while (bytes > 0) {
      ssize_t n = ::pread(fd_, p, std::min<uint64_t>(bytes, uint64_t{1} << 30), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail(path_, "read failed at byte " + std::to_string(offset) + ": " +
                                  (n < 0 ? std::strerror(errno) : "unexpected end of file"));
      p += n;
      offset += static_cast<uint64_t>(n);
      bytes -= static_cast<uint64_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

std::string descr_of(const Tensor& t, const std::string& path) {
  switch (t.dtype()) {
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    default: break;
  }
  fail(path, "cannot write " + dtype_name(t.dtype()) + " tensor as .npy",
       "NumPy has no bfloat16; convert with to(DType::F32) first");
}

std::string header_bytes(const Tensor& t, const std::string& path) {
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape()[i]);
  if (t.shape().size() == 1) shape += ",";
  shape += ")";
  std::string dict = "{'descr': '" + descr_of(t, path) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  if (!t.shape().empty()) dict.append(kGrowthAxisMaxDigits - std::to_string(t.shape()[0]).size(), ' ');

  // Version 1.0 stores the header length in 2 bytes; 2.0 in 4, used only when 1.0 cannot.
  for (int version : {1, 2}) {
    size_t len_bytes = version == 1 ? 2 : 4;
    size_t hlen = dict.size() + 1;  // + '\n'
    // As numpy computes it: a header that already ends on the boundary still gets kAlign spaces.
    size_t pad = kAlign - (kMagicLen + 2 + len_bytes + hlen) % kAlign;
    size_t total = hlen + pad;
    if (version == 1 && total > 0xffff) continue;
    std::string out(kMagic, kMagicLen);
    out += static_cast<char>(version);
    out += '\0';
    for (size_t b = 0; b < len_bytes; ++b) out += static_cast<char>((total >> (8 * b)) & 0xff);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  }
  fail(path, "npy header too long");
}

}  // namespace

std::string encode_npy(const Tensor& t) {
  check(t.defined(), "npy", "cannot encode an undefined tensor");
  check(t.device() == Device::CPU, "npy", "tensor is not on the CPU");
  std::string out = header_bytes(t, "npy");
  if (t.nbytes() > 0) out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  check(t.defined(), path, "cannot write an undefined tensor");
  check(t.device() == Device::CPU, path, "tensor is not on the CPU", "copy it to the CPU first");
  std::string header = header_bytes(t, path);
  AtomicFileWriter out(path);
  out.write(header);
  if (t.nbytes() > 0) out.write(t.raw(), t.nbytes());
  out.commit();
}

Tensor read_npy(const std::string& path) {
  // Read piecewise (prefix, header, then straight into the tensor) so a large array is not
  // held twice in memory.
  InputFile in(path);
  const uint64_t size = in.size();
  char prefix_bytes[12] = {};
  in.read_at(0, prefix_bytes, std::min<uint64_t>(size, sizeof prefix_bytes));
  if (size < kMagicLen + 2 || std::memcmp(prefix_bytes, kMagic, kMagicLen) != 0)
    fail(path, "not a .npy file (bad magic)", "expected a file written by numpy.save");
  const int major = static_cast<unsigned char>(prefix_bytes[6]);
  const int minor = static_cast<unsigned char>(prefix_bytes[7]);
  if ((major != 1 && major != 2) || minor != 0)
    fail(path, "npy format version " + std::to_string(major) + "." + std::to_string(minor) + " is not supported",
         "versions 1.0 and 2.0 are");
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_bytes;
  check(size >= prefix, path, "file ends inside the npy header length", "file truncated?");
  size_t header_len = 0;
  for (size_t b = 0; b < len_bytes; ++b)
    header_len |= static_cast<size_t>(static_cast<unsigned char>(prefix_bytes[kMagicLen + 2 + b])) << (8 * b);
  if (header_len > size - prefix)
    fail(path, "npy header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)", "file truncated?");

  std::string header(header_len, '\0');
  in.read_at(prefix, header.data(), header_len);
  auto dict = HeaderParser(header, path).parse();
  for (const char* key : {"descr", "fortran_order", "shape"})
    check(dict.count(key) == 1, path, std::string("npy header lacks '") + key + "'");
  check(dict.size() == 3, path, "npy header has keys other than descr, fortran_order, shape");
  const auto& descr = dict["descr"];
  const auto& fortran = dict["fortran_order"];
  const auto& shape = dict["shape"];
  check(descr.kind == HeaderParser::Value::String, path, "npy header 'descr' is not a string",
        "structured arrays are not supported");
  check(fortran.kind == HeaderParser::Value::Bool, path, "npy header 'fortran_order' is not True/False");
  check(shape.kind == HeaderParser::Value::Tuple, path, "npy header 'shape' is not a tuple");
  DType dtype;
  if (!descr_to_dtype(descr.str, &dtype))
    fail(path, "npy dtype '" + descr.str + "' is not supported",
         "supported: '<f4', '<f8', '<i4', '<i8' (little-endian float32/64, int32/64)");
  check(!fortran.flag, path, "npy 'fortran_order' is True", "save a C-contiguous array (np.ascontiguousarray)");

  uint64_t numel = 1;
  bool overflow = false;
  for (int64_t d : shape.dims) overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, dtype_size(dtype), &nbytes);
  check(!overflow, path, "npy 'shape' " + shape_str(shape.dims) + " is too large");
  const uint64_t data_start = prefix + header_len;
  if (nbytes > size - data_start)
    fail(path, "npy 'shape' " + shape_str(shape.dims) + " of " + descr.str + " needs " + std::to_string(nbytes) +
                   " data bytes, the file has " + std::to_string(size - data_start), "file truncated?");
  Tensor t = Tensor::empty(shape.dims, dtype);
  in.read_at(data_start, t.raw(), nbytes);
  return t;
}

}  // namespace mambalm::io
