#include "io/indexed_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::io {

namespace {

constexpr size_t kFlushBytes = size_t{4} << 20;

// Little-endian loads from possibly unaligned bytes (the .idx arrays start at offset 34).
template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void append(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

bool is_known_code(uint8_t code) { return code >= 1 && code <= 8; }

}  // namespace

int64_t token_dtype_size(TokenDType t) {
  switch (t) {
    case TokenDType::U8: case TokenDType::I8: return 1;
    case TokenDType::I16: case TokenDType::U16: return 2;
    case TokenDType::I32: case TokenDType::F32: return 4;
    case TokenDType::I64: case TokenDType::F64: return 8;
  }
  return 0;
}

const char* token_dtype_name(TokenDType t) {
  switch (t) {
    case TokenDType::U8: return "uint8";
    case TokenDType::I8: return "int8";
    case TokenDType::I16: return "int16";
    case TokenDType::I32: return "int32";
    case TokenDType::I64: return "int64";
    case TokenDType::F64: return "float64";
    case TokenDType::F32: return "float32";
    case TokenDType::U16: return "uint16";
  }
  return "?";
}

TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::U16 : TokenDType::I32;
}

// ---------------------------------------------------------------------------------------------
// Writer

struct IndexedDatasetWriter::Files {
  AtomicFileWriter bin;
  explicit Files(const std::string& prefix) : bin(prefix + ".bin") {}
};

IndexedDatasetWriter::IndexedDatasetWriter(const std::string& prefix, int64_t vocab_size)
    : prefix_(prefix), vocab_size_(vocab_size), dtype_(token_dtype_for_vocab(vocab_size)) {
  check(vocab_size > 0, prefix + ".bin", "vocabulary size must be positive, got " +
                                             std::to_string(vocab_size));
  check(vocab_size <= int64_t{std::numeric_limits<int32_t>::max()} + 1, prefix + ".bin",
        "vocabulary size " + std::to_string(vocab_size) + " does not fit int32 token ids");
  files_ = std::make_unique<Files>(prefix);
  buffer_.reserve(kFlushBytes + (size_t{1} << 16));
}

IndexedDatasetWriter::~IndexedDatasetWriter() = default;  // unfinished: tmp files removed

void IndexedDatasetWriter::add_document(std::span<const int32_t> tokens) {
  const std::string where = prefix_ + ".bin";
  check(!finished_, where, "add_document after finish");
  const int64_t doc = document_count();
  check(tokens.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), where,
        "document " + std::to_string(doc) + " has " + std::to_string(tokens.size()) +
            " tokens, more than an int32 sequence length can hold",
        "split the document");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size_) [[unlikely]]
      fail(where, "document " + std::to_string(doc) + " token " + std::to_string(i) + " is id " +
                      std::to_string(tokens[i]) + ", outside the vocabulary [0, " +
                      std::to_string(vocab_size_) + ")");
  }
  const size_t old = buffer_.size();
  if (dtype_ == TokenDType::U16) {
    buffer_.resize(old + tokens.size() * 2);
    char* out = buffer_.data() + old;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const uint16_t v = static_cast<uint16_t>(tokens[i]);
      std::memcpy(out + 2 * i, &v, 2);
    }
  } else {
    buffer_.resize(old + tokens.size() * 4);
    // An empty document may come with a null data pointer, which memcpy must not see.
    if (!tokens.empty()) std::memcpy(buffer_.data() + old, tokens.data(), tokens.size() * 4);
  }
  lengths_.push_back(static_cast<int32_t>(tokens.size()));
  tokens_ += static_cast<int64_t>(tokens.size());
  if (buffer_.size() >= kFlushBytes) flush();
}

void IndexedDatasetWriter::flush() {
  if (!buffer_.empty()) files_->bin.write(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void IndexedDatasetWriter::finish() {
  check(!finished_, prefix_ + ".idx", "finish called twice");
  flush();
  const int64_t n = document_count();
  std::string idx;
  idx.reserve(static_cast<size_t>(kIndexHeaderBytes + n * 20 + 8));
  idx.append(kIndexMagic, sizeof kIndexMagic);
  append<uint64_t>(idx, 1);                                  // version
  append<uint8_t>(idx, static_cast<uint8_t>(dtype_));        // dtype code
  append<uint64_t>(idx, static_cast<uint64_t>(n));           // sequence count
  append<uint64_t>(idx, static_cast<uint64_t>(n + 1));       // document_indices entries
  for (int32_t len : lengths_) append<int32_t>(idx, len);
  int64_t pointer = 0;
  const int64_t size = token_dtype_size(dtype_);
  for (int32_t len : lengths_) {
    append<int64_t>(idx, pointer);
    pointer += int64_t{len} * size;
  }
  for (int64_t d = 0; d <= n; ++d) append<int64_t>(idx, d);  // one sequence per document
  // .bin first: a crash between the two renames leaves no .idx, so no dataset is visible.
  files_->bin.commit();
  write_file_atomically(prefix_ + ".idx", idx);
  finished_ = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct IndexedDataset::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && size) ::munmap(addr, size);
  }
  const unsigned char* bytes() const { return static_cast<const unsigned char*>(addr); }

  static std::unique_ptr<Mapping> open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      fail(path, std::string("cannot open: ") + std::strerror(errno),
           "an indexed dataset is PREFIX.bin + PREFIX.idx; pass PREFIX");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, "not a regular file");
    }
    auto m = std::make_unique<Mapping>();
    m->size = static_cast<size_t>(st.st_size);
    if (m->size > 0) {
      m->addr = ::mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m->addr == MAP_FAILED) {
        m->addr = nullptr;
        std::string why = std::strerror(errno);
        ::close(fd);
        fail(path, "mmap failed: " + why);
      }
    }
    ::close(fd);
    return m;
  }
};

IndexedDataset::IndexedDataset(const std::string& prefix) : prefix_(prefix) {
  const std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
  idx_ = Mapping::open(idx_path);
  bin_ = Mapping::open(bin_path);
  const unsigned char* p = idx_->bytes();
  const uint64_t idx_size = idx_->size;

  check(idx_size >= static_cast<uint64_t>(kIndexHeaderBytes), idx_path,
        "file is " + std::to_string(idx_size) + " bytes, shorter than the 34-byte header",
        "truncated or not an indexed dataset");
  check(std::memcmp(p, kIndexMagic, sizeof kIndexMagic) == 0, idx_path,
        "header: bad magic, expected \"MMIDIDX\\0\\0\"", "not a Megatron indexed dataset index");
  const uint64_t version = load<uint64_t>(p + 9);
  check(version == 1, idx_path, "header: version is " + std::to_string(version) +
                                    ", only version 1 exists");
  const uint8_t code = p[17];
  check(is_known_code(code), idx_path,
        "header: dtype code " + std::to_string(code) + " is not a Megatron DType (1..8)");
  dtype_ = static_cast<TokenDType>(code);
  check(dtype_ != TokenDType::F32 && dtype_ != TokenDType::F64, idx_path,
        std::string("header: dtype is ") + token_dtype_name(dtype_) + ", not an integer token type");
  const uint64_t seq = load<uint64_t>(p + 18);
  const uint64_t docs = load<uint64_t>(p + 26);

  // Sizes in 128 bits of headroom: counts read from a hostile file may be near 2^64.
  const unsigned __int128 need = static_cast<unsigned __int128>(kIndexHeaderBytes) +
                                 static_cast<unsigned __int128>(seq) * 12 +
                                 static_cast<unsigned __int128>(docs) * 8;
  // Multimodal datasets append one int8 mode per sequence; accept that layout too.
  check(need == idx_size || need + seq == idx_size, idx_path,
        "file is " + std::to_string(idx_size) + " bytes but the header's sequence count " +
            std::to_string(seq) + " and document index count " + std::to_string(docs) +
            " need " + std::to_string(static_cast<uint64_t>(need)),
        "truncated or corrupt index");
  check(docs >= 1, idx_path, "document_indices is empty; it must start with 0");
  sequence_count_ = static_cast<int64_t>(seq);
  lengths_ = p + kIndexHeaderBytes;
  pointers_ = lengths_ + seq * 4;
  const unsigned char* doc_bytes = pointers_ + seq * 8;

  document_indices_.resize(docs);
  for (uint64_t d = 0; d < docs; ++d) {
    const int64_t v = load<int64_t>(doc_bytes + d * 8);
    const int64_t prev = d == 0 ? 0 : document_indices_[d - 1];
    if (d == 0 && v != 0)
      fail(idx_path, "document_indices[0] is " + std::to_string(v) + ", must be 0");
    if (v < prev || v > sequence_count_)
      fail(idx_path, "document_indices[" + std::to_string(d) + "] is " + std::to_string(v) +
                         "; entries must not decrease and must be <= sequence count " +
                         std::to_string(sequence_count_));
    document_indices_[d] = v;
  }
  check(document_indices_.back() == sequence_count_, idx_path,
        "the last document index is " + std::to_string(document_indices_.back()) +
            ", must equal the sequence count " + std::to_string(sequence_count_));

  const uint64_t size = static_cast<uint64_t>(token_dtype_size(dtype_));
  const uint64_t bin_size = bin_->size;
  for (int64_t i = 0; i < sequence_count_; ++i) {
    const int32_t len = load<int32_t>(lengths_ + i * 4);
    const int64_t ptr = load<int64_t>(pointers_ + i * 8);
    if (len < 0)
      fail(idx_path, "sequence_lengths[" + std::to_string(i) + "] is negative (" +
                         std::to_string(len) + ")");
    if (ptr < 0 || static_cast<uint64_t>(ptr) % size != 0)
      fail(idx_path, "sequence_pointers[" + std::to_string(i) + "] is " + std::to_string(ptr) +
                         ", not a non-negative multiple of the " + token_dtype_name(dtype_) +
                         " size");
    if (static_cast<uint64_t>(ptr) > bin_size ||
        static_cast<uint64_t>(len) * size > bin_size - static_cast<uint64_t>(ptr))
      fail(bin_path, "sequence " + std::to_string(i) + " (bytes " + std::to_string(ptr) + " + " +
                         std::to_string(static_cast<uint64_t>(len) * size) +
                         ") runs past the end of the file (" + std::to_string(bin_size) +
                         " bytes)",
           "truncated .bin, or .idx of another dataset");
    total_tokens_ += len;
  }
}

IndexedDataset::~IndexedDataset() = default;
IndexedDataset::IndexedDataset(IndexedDataset&&) noexcept = default;
IndexedDataset& IndexedDataset::operator=(IndexedDataset&&) noexcept = default;

int64_t IndexedDataset::sequence_length(int64_t i) const {
  check(i >= 0 && i < sequence_count_, prefix_ + ".idx",
        "sequence " + std::to_string(i) + " out of range [0, " + std::to_string(sequence_count_) + ")");
  return load<int32_t>(lengths_ + i * 4);
}

int64_t IndexedDataset::sequence_pointer(int64_t i) const {
  check(i >= 0 && i < sequence_count_, prefix_ + ".idx",
        "sequence " + std::to_string(i) + " out of range [0, " + std::to_string(sequence_count_) + ")");
  return load<int64_t>(pointers_ + i * 8);
}

int64_t IndexedDataset::document_first_sequence(int64_t d) const {
  check(d >= 0 && d < document_count(), prefix_ + ".idx",
        "document " + std::to_string(d) + " out of range [0, " + std::to_string(document_count()) + ")");
  return document_indices_[d];
}

int64_t IndexedDataset::document_end_sequence(int64_t d) const {
  check(d >= 0 && d < document_count(), prefix_ + ".idx",
        "document " + std::to_string(d) + " out of range [0, " + std::to_string(document_count()) + ")");
  return document_indices_[d + 1];
}

std::vector<int32_t> IndexedDataset::sequence_tokens(int64_t i) const {
  const int64_t n = sequence_length(i);
  const unsigned char* src = bin_->bytes() + sequence_pointer(i);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    int64_t v = 0;
    switch (dtype_) {
      case TokenDType::U8: v = src[k]; break;
      case TokenDType::I8: v = static_cast<int8_t>(src[k]); break;
      case TokenDType::I16: v = load<int16_t>(src + 2 * k); break;
      case TokenDType::U16: v = load<uint16_t>(src + 2 * k); break;
      case TokenDType::I32: v = load<int32_t>(src + 4 * k); break;
      case TokenDType::I64: v = load<int64_t>(src + 8 * k); break;
      default: break;  // float codes are rejected at open
    }
    if (v < 0 || v > std::numeric_limits<int32_t>::max())  // a negative id would index before the embedding
      fail(prefix_ + ".bin", "sequence " + std::to_string(i) + " token " + std::to_string(k) +
                                 " is " + std::to_string(v) + ", not a token id in [0, 2^31)");
    out[static_cast<size_t>(k)] = static_cast<int32_t>(v);
  }
  return out;
}

std::vector<int32_t> IndexedDataset::document_tokens(int64_t d) const {
  std::vector<int32_t> out;
  const int64_t end = document_end_sequence(d);
  for (int64_t s = document_first_sequence(d); s < end; ++s) {
    std::vector<int32_t> part = sequence_tokens(s);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

}  // namespace mambalm::io
