#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

using nlohmann::json;

// An mmap of a whole file; unmapped when the last SafetensorsFile or tensor view lets go.
struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) ::munmap(addr, size);
  }
  const char* bytes() const { return static_cast<const char*>(addr); }
};

bool parse_safetensors_dtype(const std::string& name, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F64", DType::F64}, {"BF16", DType::BF16},
      {"F16", DType::F16}, {"I32", DType::I32}, {"I64", DType::I64}};
  for (const auto& [spelling, dtype] : table) {
    if (name == spelling) {
      *out = dtype;
      return true;
    }
  }
  return false;
}

namespace {

std::string offsets_str(uint64_t begin, uint64_t end) {
  // Appended piecewise: GCC 12's -Wrestrict misfires on "[" + std::to_string(...) at -O3.
  std::string s = "[";
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  s += "]";
  return s;
}

// A JSON number that must be a non-negative integer fitting in int64; `what` names the field.
uint64_t non_negative_int(const json& v, const std::string& where, const std::string& what) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    check(u <= static_cast<uint64_t>(INT64_MAX), where, what + " " + std::to_string(u) + " is too large");
    return u;
  }
  if (v.is_number_integer()) fail(where, what + " is negative (" + std::to_string(v.get<int64_t>()) + ")");
  fail(where, what + " is not an integer (found " + v.dump() + ")");
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open safetensors file: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int saved = errno;
    ::close(fd);
    fail(path, std::string("cannot stat safetensors file: ") + std::strerror(saved));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file", "expected a .safetensors file, found a directory or device");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length",
         "file truncated or not safetensors?");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(size);
  mapping->addr = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (mapping->addr == MAP_FAILED) {
    mapping->addr = nullptr;
    fail(path, std::string("cannot memory-map ") + std::to_string(size) + " bytes: " + std::strerror(map_errno),
         "out of address space, or a file system without mmap support?");
  }
  file->mapping_ = mapping;

  uint64_t header_len = 0;
  std::memcpy(&header_len, mapping->bytes(), 8);
  check(header_len > 0, path, "header length is 0", "not a safetensors file?");
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)", "file truncated or not safetensors?");
  file->data_start_ = 8 + header_len;
  const uint64_t data_size = size - file->data_start_;

  // Duplicate top-level keys would silently shadow each other in a parsed object; catch them
  // while parsing (depth 1 = keys of the outermost object).
  std::string duplicate;
  std::set<std::string> seen;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    const char* h = mapping->bytes() + 8;
    header = json::parse(h, h + header_len, on_event);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what(), "file corrupt or not safetensors?");
  }
  check(header.is_object(), path, std::string("header is JSON ") + header.type_name() + ", not an object",
        "not a safetensors file?");
  check(duplicate.empty(), path, "header names '" + duplicate + "' twice");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      check(value.is_object(), path, "__metadata__ is not an object of strings");
      for (const auto& [key, v] : value.items()) {
        check(v.is_string(), path, "__metadata__ '" + key + "' is " + v.dump() + ", not a string");
        file->metadata_[key] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    check(value.is_object(), where, "entry is not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      check(value.contains(field), where, std::string("missing field '") + field + "'");

    Entry e{};
    const json& dtype = value["dtype"];
    check(dtype.is_string(), where, "dtype is " + dtype.dump() + ", not a string");
    if (!parse_safetensors_dtype(dtype.get<std::string>(), &e.dtype))
      fail(path, "unsupported dtype " + dtype.get<std::string>() + " for tensor '" + name + "'",
           "supported: F32, F64, BF16, F16, I32, I64");

    const json& shape = value["shape"];
    check(shape.is_array(), where, "shape is " + shape.dump() + ", not an array");
    uint64_t numel = 1;
    bool numel_overflow = false;
    for (size_t i = 0; i < shape.size(); ++i) {
      uint64_t d = non_negative_int(shape[i], where, "shape[" + std::to_string(i) + "]");
      e.shape.push_back(static_cast<int64_t>(d));
      numel_overflow |= __builtin_mul_overflow(numel, d, &numel);
    }
    uint64_t nbytes = 0;
    numel_overflow |= __builtin_mul_overflow(numel, dtype_size(e.dtype), &nbytes);
    check(!numel_overflow && numel <= static_cast<uint64_t>(INT64_MAX), where,
          "shape " + shape_str(e.shape) + " is too large");

    const json& offsets = value["data_offsets"];
    check(offsets.is_array() && offsets.size() == 2, where,
          "data_offsets is " + offsets.dump() + ", not [begin, end]");
    e.begin = non_negative_int(offsets[0], where, "data_offsets begin");
    e.end = non_negative_int(offsets[1], where, "data_offsets end");
    const std::string offs = "data_offsets " + offsets_str(e.begin, e.end);
    check(e.begin <= e.end, where, offs + " begin is after end");
    if (e.end > data_size)
      fail(where, offs + " end past the data section (" + std::to_string(data_size) + " bytes)",
           "file truncated?");
    if (e.end - e.begin != nbytes)
      fail(where, offs + " span " + std::to_string(e.end - e.begin) + " bytes but shape " +
                      shape_str(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                      std::to_string(nbytes), "header and data disagree");
    file->entries_.emplace(name, std::move(e));
  }

  // Data-offset order; then no two tensors may share a byte (empty tensors own no bytes).
  for (const auto& [name, e] : file->entries_) file->names_.push_back(name);
  std::stable_sort(file->names_.begin(), file->names_.end(), [&](const std::string& a, const std::string& b) {
    const Entry& x = file->entries_.at(a);
    const Entry& y = file->entries_.at(b);
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  const std::string* previous = nullptr;
  for (const std::string& name : file->names_) {
    const Entry& e = file->entries_.at(name);
    if (e.begin == e.end) continue;
    if (previous) {
      const Entry& p = file->entries_.at(*previous);
      if (p.end > e.begin)
        fail(path + ": tensor '" + name + "'",
             "data_offsets " + offsets_str(e.begin, e.end) + " overlap tensor '" + *previous +
                 "' at " + offsets_str(p.begin, p.end), "file corrupt?");
    }
    previous = &name;
  }
  return file;
}

size_t SafetensorsFile::file_size() const { return mapping_->size; }

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it != entries_.end()) return it->second;
  std::string some;
  for (size_t i = 0; i < names_.size() && i < 4; ++i) some += (i ? ", '" : "'") + names_[i] + "'";
  if (names_.size() > 4) some += ", ...";
  fail(path_ + ": tensor '" + name + "'", "not in this file",
       names_.empty() ? "the file holds no tensors"
                      : "the file holds " + std::to_string(names_.size()) + " tensors: " + some);
}

DType SafetensorsFile::dtype_of(const std::string& name) const { return entry(name).dtype; }
const Shape& SafetensorsFile::shape_of(const std::string& name) const { return entry(name).shape; }

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const Entry& e = entry(name);
  const char* p = mapping_->bytes() + data_start_ + e.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
    Tensor copy = Tensor::empty(e.shape, e.dtype);
    std::memcpy(copy.raw(), p, e.end - e.begin);
    return copy;
  }
  // The view aliases the mapping's control block: it keeps the bytes mapped, not this object.
  std::shared_ptr<void> owner(mapping_, mapping_.get());
  return Tensor::view_of(const_cast<char*>(p), e.shape, e.dtype, std::move(owner));
}

void SafetensorsFile::release(const std::string& name) const { release(name, 0, entry(name).end - entry(name).begin); }

void SafetensorsFile::release(const std::string& name, uint64_t first_byte, uint64_t end_byte) const {
  const Entry& e = entry(name);
  end_byte = std::min<uint64_t>(end_byte, e.end - e.begin);
  if (first_byte >= end_byte) return;
  // Whole pages only; a page shared with a neighbour is dropped too, which costs that neighbour
  // at most one refault from the page cache (the mapping is of the file: nothing is lost).
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<uintptr_t>(mapping_->bytes() + data_start_ + e.begin + first_byte) / page * page;
  const auto last = reinterpret_cast<uintptr_t>(mapping_->bytes() + data_start_ + e.begin + end_byte);
  ::madvise(reinterpret_cast<void*>(first), static_cast<size_t>(last - first), MADV_DONTNEED);  // advice: a failure changes nothing
}

namespace {

// The 8-byte length and the JSON header (padded with spaces to a multiple of 8) for tensors
// laid out back to back in the given order. Adds the data size to *data_bytes.
std::string safetensors_header(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata, uint64_t* data_bytes) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    const std::string where = path + ": tensor '" + e.name + "'";
    check(e.name != "__metadata__", where, "name is reserved for the metadata map");
    check(seen.insert(e.name).second, where, "name appears twice in the tensors to write");
    uint64_t begin = offset;
    offset += static_cast<uint64_t>(shape_numel(e.shape)) * dtype_size(e.dtype);
    header[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {begin, offset}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_len, 8);
  *data_bytes = offset;
  return out + text;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, t] : tensors) {
    const std::string where = path + ": tensor '" + name + "'";
    check(t.defined(), where, "tensor is undefined");
    check(t.device() == Device::CPU, where, "tensor is not on the CPU", "copy it to the CPU before saving");
    entries.push_back({name, t.dtype(), t.shape()});
  }
  SafetensorsStreamWriter out(path, entries, metadata);
  for (const auto& [name, t] : tensors)
    if (t.nbytes() > 0) out.write(t.raw(), t.nbytes());
  out.commit();
}

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), out_(path) {
  out_.write(safetensors_header(path, entries, metadata, &data_bytes_));
}

void SafetensorsStreamWriter::write(const void* data, size_t bytes) {
  check(data_written_ + bytes <= data_bytes_, path_, "more tensor bytes written than the header declares");
  out_.write(data, bytes);
  data_written_ += bytes;
}

void SafetensorsStreamWriter::commit() {
  check(data_written_ == data_bytes_, path_,
        "the header declares " + std::to_string(data_bytes_) + " bytes of tensors but " + std::to_string(data_written_) + " were written");
  out_.commit();
}

}  // namespace mambalm::io
