// safetensors read/write, model directories (single file and sharded), atomic files, and
// every malformed input we can think of: each must be a mambalm::Error naming the file and
// the field at fault, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "test_util.h"

namespace mambalm::io {
namespace {

namespace fs = std::filesystem;
using mambalm::testing::random_tensor;
using mambalm::testing::temp_dir;

using mambalm::testing::expect_error;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// An 8-byte length + the header text as given + `data_bytes` bytes of data.
std::string raw_safetensors(const std::string& header, size_t data_bytes) {
  uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  out += header;
  for (size_t i = 0; i < data_bytes; ++i) out += static_cast<char>(i * 7);
  return out;
}

// A random tensor of any dtype (integers for I32/I64, rounded values for half types).
Tensor random_of(DType dtype, const Shape& shape) {
  Tensor f = random_tensor(shape, -3.0f, 3.0f);
  if (dtype == DType::I32 || dtype == DType::I64) {
    static std::mt19937_64 gen(mambalm::testing::test_seed() + 1);
    Tensor t = Tensor::empty(shape, dtype);
    for (int64_t i = 0; i < t.numel(); ++i) {
      int64_t v = static_cast<int64_t>(gen());
      if (dtype == DType::I32) t.data<int32_t>()[i] = static_cast<int32_t>(v);
      else t.data<int64_t>()[i] = v;
    }
    return t;
  }
  return f.to(dtype);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override { dir = temp_dir("safetensors"); }
  void TearDown() override { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  std::string dir;
};

TEST_F(Safetensors, RoundTripEveryDtypeWithMetadataAndEmptyTensor) {
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"backbone.embeddings.weight", random_of(DType::F32, {7, 5})},
      {"f64", random_of(DType::F64, {3, 2, 2})},
      {"bf16", random_of(DType::BF16, {9})},  // odd byte count: the next tensor is 2-aligned only
      {"f16", random_of(DType::F16, {3, 3})},
      {"empty", Tensor::zeros({0, 4}, DType::F32)},
      {"i32", random_of(DType::I32, {4, 1})},
      {"scalar", random_of(DType::I64, {})},
      {"i64", random_of(DType::I64, {6})},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "quotes \" and \\ and ünïcode"}};
  const std::string path = file("model.safetensors");
  write_safetensors(path, tensors, meta);
  EXPECT_FALSE(fs::exists(path + ".tmp-" + std::to_string(::getpid())));

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->names().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f->names()[i], tensors[i].first) << "names() must follow data-offset order";
    EXPECT_TRUE(f->contains(tensors[i].first));
    Tensor t = f->tensor(tensors[i].first);
    EXPECT_EQ(t.device(), Device::CPU);
    EXPECT_TRUE(same_bytes(t, tensors[i].second)) << tensors[i].first;
    EXPECT_EQ(f->dtype_of(tensors[i].first), tensors[i].second.dtype());
  }
  EXPECT_FALSE(f->contains("nope"));
}

TEST_F(Safetensors, HeaderIsPaddedWithSpacesToEightBytesAndViewsAreAligned) {
  const std::string path = file("pad.safetensors");
  write_safetensors(path, {{"w", random_of(DType::F32, {2, 2})}}, {{"format", "pt"}});
  std::string bytes = read_text_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  EXPECT_EQ(header.substr(0, json.size()), json);
  EXPECT_EQ(header.find_first_not_of(' ', json.size()), std::string::npos);
  EXPECT_EQ(bytes.size(), 8 + n + 16);
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->tensor("w").raw()) % 4, 0u);
}

TEST_F(Safetensors, ReadsAHeaderAsThePythonLibraryWritesIt) {
  // Not padded to 8 and with the metadata last: both are legal.
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})";
  std::string bytes = raw_safetensors(header, 0);
  float v[2] = {1.5f, -2.25f};
  bytes.append(reinterpret_cast<const char*>(v), 8);
  write_bytes(file("py.safetensors"), bytes);
  auto f = SafetensorsFile::open(file("py.safetensors"));
  Tensor a = f->tensor("a");
  ASSERT_EQ(a.shape(), Shape({2}));
  EXPECT_EQ(a.f32()[0], 1.5f);
  EXPECT_EQ(a.f32()[1], -2.25f);
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

TEST_F(Safetensors, ManyTensors) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::mt19937 gen(static_cast<uint32_t>(mambalm::testing::test_seed()));
  const DType dtypes[] = {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64};
  for (int i = 0; i < 300; ++i) {
    Shape s;
    for (int r = static_cast<int>(gen() % 4); r > 0; --r) s.push_back(static_cast<int64_t>(gen() % 5));
    tensors.emplace_back("layers." + std::to_string(i) + ".w", random_of(dtypes[gen() % 6], s));
  }
  write_safetensors(file("many.safetensors"), tensors);
  auto f = SafetensorsFile::open(file("many.safetensors"));
  EXPECT_EQ(f->names().size(), tensors.size());
  EXPECT_TRUE(f->metadata().empty());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(same_bytes(f->tensor(name), t)) << name;
}

TEST_F(Safetensors, EmptyDataSection) {
  write_safetensors(file("none.safetensors"), {});
  auto f = SafetensorsFile::open(file("none.safetensors"));
  EXPECT_TRUE(f->names().empty());
  EXPECT_EQ(f->file_size(), 16u);  // length + "{}" padded to 8

  write_safetensors(file("only_empty.safetensors"),
                    {{"a", Tensor::zeros({0}, DType::BF16)}, {"b", Tensor::zeros({3, 0}, DType::I64)}},
                    {{"k", "v"}});
  auto g = SafetensorsFile::open(file("only_empty.safetensors"));
  ASSERT_EQ(g->names().size(), 2u);
  EXPECT_EQ(g->tensor("b").shape(), Shape({3, 0}));
  EXPECT_EQ(g->tensor("a").numel(), 0);
}

TEST_F(Safetensors, ViewOutlivesTheFileObjectAndAnOverwrite) {
  Tensor w = random_of(DType::F32, {64, 33});
  const std::string path = file("model.safetensors");
  write_safetensors(path, {{"w", w}});
  Tensor view;
  {
    auto f = SafetensorsFile::open(path);
    view = f->tensor("w");
  }
  EXPECT_TRUE(same_bytes(view, w));
  // Replacing the file (rename over it) must not disturb the mapped old bytes.
  write_safetensors(path, {{"w", random_of(DType::F32, {64, 33})}});
  EXPECT_TRUE(same_bytes(view, w));
  EXPECT_FALSE(same_bytes(SafetensorsFile::open(path)->tensor("w"), w));
}

TEST_F(Safetensors, MissingTensorLookup) {
  write_safetensors(file("m.safetensors"), {{"a", random_of(DType::F32, {2})}});
  auto f = SafetensorsFile::open(file("m.safetensors"));
  expect_error([&] { f->tensor("backbone.norm_f.weight"); },
               {"m.safetensors", "'backbone.norm_f.weight'", "not in this file", "'a'"});
}

TEST_F(Safetensors, BadFiles) {
  const std::string p = file("model.safetensors");
  auto bad = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    write_bytes(p, bytes);
    std::vector<std::string> all = parts;
    all.insert(all.begin(), "model.safetensors");
    expect_error([&] { SafetensorsFile::open(p); }, all);
  };
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  bad("", {"0 bytes", "8-byte"});
  bad("abcde", {"5 bytes", "8-byte"});
  {
    std::string b = raw_safetensors("{}", 0);
    uint64_t n = 1000;
    std::memcpy(b.data(), &n, 8);
    bad(b, {"header length 1000", "past the end"});
  }
  bad(std::string(8, '\0') + "{}", {"header length is 0"});
  bad(raw_safetensors("{\"w\": [", 16), {"header", "not valid JSON"});
  bad(raw_safetensors("not json at all", 0), {"not valid JSON"});
  bad(raw_safetensors("[1, 2]", 0), {"header is JSON array", "not an object"});
  bad(raw_safetensors("\"x\"", 0), {"not an object"});
  bad(raw_safetensors(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4),
      {"unsupported dtype F8_E4M3", "'w'"});
  bad(raw_safetensors(R"({"mask":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}})", 4),
      {"unsupported dtype BOOL", "'mask'"});
  bad(raw_safetensors(R"({"w":{"dtype":7,"shape":[4],"data_offsets":[0,16]}})", 16), {"'w'", "dtype"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16),
      {"tensor 'w'", "data_offsets [0, 16]", "[2, 3]", "needs 24"});
  bad(raw_safetensors(R"({"backbone.embeddings.weight":{"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}})", 3000),
      {"tensor 'backbone.embeddings.weight'", "data_offsets [0, 4096] end past the data section (3000 bytes)",
       "truncated"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 16),
      {"'w'", "data_offsets [8, 4]", "begin is after end"});
  bad(raw_safetensors("{" + ok_entry + R"(,"v":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", 24),
      {"'v'", "overlap", "'w'", "data_offsets [12, 20]"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})", 16),
      {"'w'", "shape[1] is negative"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}})", 16),
      {"'w'", "shape[0] is not an integer"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 16), {"'w'", "shape"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16),
      {"'w'", "too large"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 16),
      {"'w'", "data_offsets begin is negative"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 16), {"'w'", "data_offsets"});
  bad(raw_safetensors(R"({"w":{"dtype":"F32","shape":[2]}})", 16), {"'w'", "missing field 'data_offsets'"});
  bad(raw_safetensors(R"({"w":[1,2,3]})", 16), {"'w'", "not an object"});
  bad(raw_safetensors("{" + ok_entry + R"(,"__metadata__":{"format":1}})", 16),
      {"__metadata__ 'format'", "not a string"});
  bad(raw_safetensors("{" + ok_entry + R"(,"__metadata__":[1]})", 16), {"__metadata__"});
  bad(raw_safetensors("{" + ok_entry + "," + ok_entry + "}", 16), {"'w' twice"});
}

TEST_F(Safetensors, UnreadablePaths) {
  expect_error([&] { SafetensorsFile::open(file("absent.safetensors")); },
               {"absent.safetensors", "cannot open", "No such file"});
  fs::create_directories(file("adir.safetensors"));
  expect_error([&] { SafetensorsFile::open(file("adir.safetensors")); }, {"adir.safetensors", "not a regular file"});
}

TEST_F(Safetensors, EveryTruncationAndCorruptionIsAnErrorNotACrash) {
  const std::string p = file("t.safetensors");
  write_safetensors(p, {{"a", random_of(DType::F32, {3, 3})}, {"b", random_of(DType::BF16, {5})}}, {{"x", "y"}});
  const std::string good = read_text_file(p);
  size_t errors = 0;
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(p, good.substr(0, len));
    try {
      SafetensorsFile::open(p);
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("t.safetensors"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(errors, good.size());  // every proper prefix is missing bytes somewhere
  std::mt19937 gen(static_cast<uint32_t>(mambalm::testing::test_seed()));
  for (int trial = 0; trial < 500; ++trial) {
    std::string b = good;
    for (int k = 0; k < 3; ++k) b[gen() % std::min<size_t>(b.size(), 120)] = static_cast<char>(gen());
    write_bytes(p, b);
    try {
      auto f = SafetensorsFile::open(p);
      for (const auto& n : f->names()) f->tensor(n);
    } catch (const Error&) {
    }
  }
}

TEST_F(Safetensors, WriteErrors) {
  Tensor a = random_of(DType::F32, {2});
  expect_error([&] { write_safetensors(file("d.safetensors"), {{"a", a}, {"a", a}}); },
               {"d.safetensors", "'a'", "twice"});
  expect_error([&] { write_safetensors(file("u.safetensors"), {{"u", Tensor()}}); }, {"u.safetensors", "'u'", "undefined"});
  expect_error([&] { write_safetensors(file("m.safetensors"), {{"__metadata__", a}}); }, {"reserved"});
  expect_error([&] { write_safetensors(file("no/such/dir/x.safetensors"), {{"a", a}}); }, {"x.safetensors", "cannot create"});
  EXPECT_FALSE(fs::exists(file("d.safetensors")));
}

TEST_F(Safetensors, AtomicTextFiles) {
  const std::string p = file("config.json");
  write_file_atomically(p, "{\"a\": 1}\n");
  write_file_atomically(p, std::string("bin\0ary", 7));
  EXPECT_EQ(read_text_file(p), std::string("bin\0ary", 7));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "tmp file left behind";
  expect_error([&] { read_text_file(file("missing.json")); }, {"missing.json", "cannot open"});
  expect_error([&] { read_text_file(dir); }, {dir, "not a regular file"});
}

// ---- model directories ----------------------------------------------------------------------

class ModelDir : public Safetensors {
 protected:
  void write_index(const std::map<std::string, std::string>& weight_map) {
    std::string j = "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {";
    bool first = true;
    for (const auto& [k, v] : weight_map) {
      j += (first ? "" : ", ") + ("\"" + k + "\": \"" + v + "\"");
      first = false;
    }
    write_file_atomically(file("model.safetensors.index.json"), j + "}}");
  }
};

TEST_F(ModelDir, SingleFile) {
  Tensor a = random_of(DType::BF16, {4, 4});
  write_safetensors(file("model.safetensors"), {{"x.a", a}});
  auto w = WeightSet::open(dir);
  EXPECT_EQ(w->names(), std::vector<std::string>{"x.a"});
  EXPECT_TRUE(same_bytes(w->tensor("x.a"), a));
  EXPECT_EQ(w->file_of("x.a"), file("model.safetensors"));
  expect_error([&] { w->tensor("x.b"); }, {dir, "'x.b'", "not in the model"});
}

TEST_F(ModelDir, Sharded) {
  Tensor a = random_of(DType::F32, {3, 4}), b = random_of(DType::BF16, {5}), c = random_of(DType::I64, {2});
  write_safetensors(file("model-00001-of-00002.safetensors"), {{"a", a}, {"b", b}}, {{"format", "pt"}});
  write_safetensors(file("model-00002-of-00002.safetensors"), {{"c", c}}, {{"format", "pt"}});
  write_index({{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"},
               {"c", "model-00002-of-00002.safetensors"}});
  auto w = WeightSet::open(dir);
  EXPECT_EQ(w->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(same_bytes(w->tensor("a"), a));
  EXPECT_TRUE(same_bytes(w->tensor("b"), b));
  EXPECT_TRUE(same_bytes(w->tensor("c"), c));
  EXPECT_EQ(w->file_of("c"), file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(w->metadata().at("format"), "pt");
  EXPECT_TRUE(w->contains("b"));
  EXPECT_FALSE(w->contains("d"));
}

TEST_F(ModelDir, Errors) {
  expect_error([&] { WeightSet::open(dir); }, {dir, "no model.safetensors or model.safetensors.index.json"});
  expect_error([&] { WeightSet::open(file("nodir")); }, {"nodir", "not a directory"});

  write_safetensors(file("s1.safetensors"), {{"a", random_of(DType::F32, {2})}, {"b", random_of(DType::F32, {2})}});
  write_index({{"a", "s1.safetensors"}, {"z", "s2.safetensors"}});
  expect_error([&] { WeightSet::open(dir); }, {"model.safetensors.index.json", "'s2.safetensors'", "missing"});

  write_index({{"a", "s1.safetensors"}, {"q", "s1.safetensors"}});
  expect_error([&] { WeightSet::open(dir); }, {"index.json", "weight_map['q']", "not in shard 's1.safetensors'"});

  write_safetensors(file("s2.safetensors"), {{"a", random_of(DType::F32, {2})}});
  write_index({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}});
  expect_error([&] { WeightSet::open(dir); }, {"tensor 'a'", "two shards", "s1.safetensors", "s2.safetensors"});

  write_index({{"a", "../s1.safetensors"}});
  expect_error([&] { WeightSet::open(dir); }, {"weight_map['a']", "not a file name inside"});

  write_file_atomically(file("model.safetensors.index.json"), "{\"weight_map\": ");
  expect_error([&] { WeightSet::open(dir); }, {"model.safetensors.index.json", "not valid JSON"});
  write_file_atomically(file("model.safetensors.index.json"), "{\"metadata\": {}}");
  expect_error([&] { WeightSet::open(dir); }, {"model.safetensors.index.json", "weight_map"});

  write_bytes(file("s1.safetensors"), "junk");
  write_index({{"a", "s1.safetensors"}});
  expect_error([&] { WeightSet::open(dir); }, {"s1.safetensors", "8-byte"});
}

}  // namespace
}  // namespace mambalm::io
