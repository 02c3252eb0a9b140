// Writing PyTorch checkpoint files (io/torch/torch_writer.h): a Megatron-like value with fresh
// random tensors of every dtype reads back through TorchCheckpoint bit for bit, with its names,
// order, Python types and arguments; the zip has torch.save's entries, stored, with every
// storage at a 64-byte aligned offset; values the writer cannot express are one mambalm::Error
// and leave nothing behind. Where PyTorch is installed, real torch.load reads the file too
// (tests/golden/check_torch_writer.py).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/torch/torch_checkpoint.h"
#include "io/torch/torch_writer.h"
#include "io/torch/unpickler.h"
#include "io/torch/zip_archive.h"
#include "test_util.h"

namespace mambalm::io::torch {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using Kind = PickleValue::Kind;

using mambalm::testing::expect_error;

std::mt19937_64& rng() {
  static std::mt19937_64 g(mambalm::testing::test_seed());
  return g;
}

// Fresh random integers, never zero, spread over the dtype's range.
Tensor random_ints(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint64_t r = rng()() | 1;
    if (dtype == DType::I64) t.data<int64_t>()[i] = static_cast<int64_t>(r);
    else t.data<int32_t>()[i] = static_cast<int32_t>(static_cast<uint32_t>(r));
  }
  return t;
}

ojson T(const std::string& key) { return {{"__tensor__", key}}; }

// A byte string from a literal that may hold NUL bytes.
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

struct Case {
  std::map<std::string, Tensor> tensors;
  ojson value;
};

// A Megatron-shaped checkpoint: args (a Namespace), numbers, the state dict (an OrderedDict,
// nested as older Megatron does), tuples of every length, a shared tensor.
Case megatron_like() {
  Case c;
  c.tensors["embed"] = mambalm::testing::random_tensor({7, 5}, -2.0f, 2.0f);
  c.tensors["norm"] = mambalm::testing::random_tensor({4, 9}, 0.5f, 1.5f).to(DType::BF16);
  c.tensors["ids"] = random_ints({6}, DType::I64);
  c.tensors["counts"] = random_ints({2, 3, 2}, DType::I32);
  c.tensors["scalar"] = mambalm::testing::random_tensor({}, 1.0f, 2.0f);  // 0-dim
  c.tensors["empty"] = Tensor::empty({0, 4}, DType::F32);                 // a storage of 0 bytes
  c.tensors["big"] = mambalm::testing::random_tensor({33, 7});            // an odd byte count
  c.value = ojson::object();
  c.value["args"] = {{"__namespace__",
                      {{"num_layers", 2},
                       {"hidden_size", 64},
                       {"lr", 3e-4},
                       {"tiny", -2.5e-300},
                       {"huge", 1e300},
                       {"name", "h\xc3\xa9llo \xe2\x9c\x93"},
                       {"bf16", true},
                       {"fp16", false},
                       {"load", nullptr},
                       {"ints", {0, 255, 256, 65535, 65536, -1, -256, INT32_MIN, INT32_MAX, int64_t{1} << 40,
                                 -(int64_t{1} << 40), INT64_MIN, INT64_MAX}},
                       {"pair", {{"__tuple__", {1, 2.5}}}},
                       {"params_dtype", {{"__dtype__", "bfloat16"}}},
                       {"nested", {{"b", 1}, {"a", {{"__tuple__", {"x", nullptr, {1, 2}, true}}}}}}}}};
  c.value["checkpoint_version"] = 3.0;
  c.value["iteration"] = 1234;
  ojson model = ojson::object();
  model["embedding.word_embeddings.weight"] = T("embed");
  model["decoder.final_norm.weight"] = T("norm");
  model["decoder"] = {{"__ordered_dict__", {{"layers.0.ids", T("ids")}, {"layers.0.counts", T("counts")}}}};
  model["decoder.layers.0._extra_state"] = nullptr;
  model["scale"] = T("scalar");
  model["empty"] = T("empty");
  model["output_layer.weight"] = T("big");
  model["tied"] = T("embed");  // the same tensor twice: one storage
  c.value["model"] = {{"__ordered_dict__", model}};
  c.value["rng_state"] = {{{"__tuple__", ojson::array()}}, {{"__tuple__", {1}}}, {{"__tuple__", {1, "b"}}},
                          {{"__tuple__", {1, 2, 3}}}, {{"__tuple__", {1, 2, 3, 4.5}}}};
  c.value["empty_things"] = {{"list", ojson::array()}, {"dict", ojson::object()},
                             {"od", {{"__ordered_dict__", ojson::object()}}}};
  return c;
}

const char* torch_dtype_of(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::I64: return "int64";
    case DType::I32: return "int32";
    default: return "?";
  }
}

std::vector<std::string> keys_of(const PickleTree& tree, const PickleValue& mapping) {
  std::vector<std::string> keys;
  for (size_t i = 0; i < mapping.items.size(); i += 2) keys.push_back(tree.at(mapping.items[i]).text);
  return keys;
}

TEST(TorchWriter, RoundTripsThroughOurReaderBitForBit) {
  const std::string dir = mambalm::testing::temp_dir("torch_writer");
  const std::string path = dir + "/model_optim_rng.pt";
  const Case c = megatron_like();
  write_torch_file(path, c.value, c.tensors);

  auto ck = TorchCheckpoint::open(path);
  EXPECT_EQ(ck->archive_dir(), "model_optim_rng");
  EXPECT_EQ(ck->top_level_keys(),
            (std::vector<std::string>{"args", "checkpoint_version", "iteration", "model", "rng_state", "empty_things"}));
  // The state dict in order, nested OrderedDicts flattened with '.'.
  const std::vector<std::pair<std::string, std::string>> want = {
      {"embedding.word_embeddings.weight", "embed"}, {"decoder.final_norm.weight", "norm"},
      {"decoder.layers.0.ids", "ids"},              {"decoder.layers.0.counts", "counts"},
      {"scale", "scalar"},                          {"empty", "empty"},
      {"output_layer.weight", "big"},               {"tied", "embed"}};
  ASSERT_EQ(ck->tensors().size(), want.size());
  // Storages are numbered in order of first use; the tied tensor shares storage "0".
  const std::vector<std::string> storage = {"0", "1", "2", "3", "4", "5", "6", "0"};
  for (size_t i = 0; i < want.size(); ++i) {
    const TorchTensorEntry& e = ck->tensors()[i];
    const Tensor& src = c.tensors.at(want[i].second);
    SCOPED_TRACE(e.name);
    EXPECT_EQ(e.name, want[i].first);
    EXPECT_EQ(torch_dtype_name(e.dtype), torch_dtype_of(src.dtype()));
    EXPECT_EQ(e.shape, src.shape());
    EXPECT_EQ(e.storage_key, storage[i]);
    EXPECT_EQ(e.storage_offset, 0);
    EXPECT_EQ(e.storage_numel, src.numel());
    Shape stride(src.shape().size());
    int64_t step = 1;
    for (size_t d = stride.size(); d-- > 0; step *= src.shape()[d]) stride[d] = step;
    EXPECT_EQ(e.stride, stride);
    const Tensor got = ck->read(e.name);
    ASSERT_EQ(got.dtype(), src.dtype());
    ASSERT_EQ(got.shape(), src.shape());
    if (src.numel() > 0) {
      EXPECT_EQ(std::memcmp(got.raw(), src.raw(), src.nbytes()), 0) << "bytes differ";
    }
  }
  EXPECT_EQ(ck->other_entries(), std::vector<std::string>{"decoder.layers.0._extra_state"});

  // args: every value, as JSON (tuples as arrays, the dtype by name) ...
  nlohmann::json want_args = c.value["args"]["__namespace__"];
  want_args["pair"] = {1, 2.5};
  want_args["params_dtype"] = "torch.bfloat16";
  want_args["nested"]["a"] = {"x", nullptr, {1, 2}, true};
  EXPECT_EQ(ck->args(), want_args) << ck->args().dump();
  // ... and the Python types and key order, from the pickle tree itself.
  const PickleTree& tree = ck->tree();
  const PickleValue& root = tree.at(tree.root);
  const PickleValue* args = tree.get(root, "args");
  ASSERT_NE(args, nullptr);
  EXPECT_EQ(args->kind, Kind::Namespace);
  std::vector<std::string> arg_keys;
  for (auto it = c.value["args"]["__namespace__"].begin(); it != c.value["args"]["__namespace__"].end(); ++it)
    arg_keys.push_back(it.key());
  EXPECT_EQ(keys_of(tree, *args), arg_keys);
  EXPECT_EQ(tree.get(*args, "pair")->kind, Kind::Tuple);
  EXPECT_EQ(tree.get(*args, "ints")->kind, Kind::List);
  EXPECT_EQ(tree.get(*args, "params_dtype")->kind, Kind::Global);
  EXPECT_EQ(keys_of(tree, *tree.get(*args, "nested")), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(tree.get(root, "checkpoint_version")->kind, Kind::Float);
  EXPECT_EQ(tree.get(root, "iteration")->integer, 1234);
  const PickleValue* rng_state = tree.get(root, "rng_state");
  ASSERT_EQ(rng_state->items.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const PickleValue& t = tree.at(rng_state->items[i]);
    EXPECT_EQ(t.kind, Kind::Tuple);
    EXPECT_EQ(t.items.size(), i == 4 ? 4u : i);
  }
}

// Walks the local file headers: entry order, stored (method 0, no data descriptor), and where
// each entry's data starts.
TEST(TorchWriter, ZipLayoutIsTorchSavesWithAlignedStorages) {
  const std::string dir = mambalm::testing::temp_dir("torch_writer");
  const std::string path = dir + "/some.name.pt";
  const Case c = megatron_like();
  write_torch_file(path, c.value, c.tensors);
  EXPECT_FALSE(fs::exists(path + ".tmp-" + std::to_string(::getpid())));

  auto zip = ZipArchive::open(path);
  const std::vector<std::string> names = {"some.name/data.pkl", "some.name/byteorder", "some.name/data/0",
                                          "some.name/data/1",   "some.name/data/2",    "some.name/data/3",
                                          "some.name/data/4",   "some.name/data/5",    "some.name/data/6",
                                          "some.name/version",  "some.name/.data/serialization_id"};
  ASSERT_EQ(zip->names(), names);
  EXPECT_EQ(zip->read_all("some.name/byteorder", 64), "little");
  EXPECT_EQ(zip->read_all("some.name/version", 64), "3\n");
  EXPECT_EQ(zip->size("some.name/.data/serialization_id"), 40u);
  EXPECT_EQ(zip->size("some.name/data/5"), 0u);  // the empty tensor

  const std::string bytes = mambalm::testing::read_file(path);
  auto u16 = [&](size_t at) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[at])) | static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 8; };
  size_t off = 0;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    ASSERT_LE(off + 30, bytes.size());
    ASSERT_EQ(bytes.compare(off, 4, "PK\x03\x04"), 0) << "no local header at " << off;
    EXPECT_EQ(u16(off + 6) & 8u, 0u) << "data descriptor flag set";
    EXPECT_EQ(u16(off + 8), 0u) << "not stored";
    const size_t name_len = u16(off + 26), extra_len = u16(off + 28);
    EXPECT_EQ(bytes.substr(off + 30, name_len), name);
    const size_t data = off + 30 + name_len + extra_len;
    EXPECT_EQ(data % 64, 0u) << "data at offset " << data;  // every entry, as torch pads them
    off = data + zip->size(name);
  }
  // Only the torch folder's name comes from the file: data bytes equal the tensors'.
  std::vector<char> raw(c.tensors.at("norm").nbytes());
  zip->read_range("some.name/data/1", 0, raw.size(), raw.data());
  EXPECT_EQ(std::memcmp(raw.data(), c.tensors.at("norm").raw(), raw.size()), 0);
}

TEST(TorchWriter, ArchiveDirCanBeChosen) {
  const std::string dir = mambalm::testing::temp_dir("torch_writer");
  std::map<std::string, Tensor> tensors{{"w", mambalm::testing::random_tensor({3})}};
  write_torch_file(dir + "/x.pt", {{"w", T("w")}}, tensors, "archive");
  auto ck = TorchCheckpoint::open(dir + "/x.pt");
  EXPECT_EQ(ck->archive_dir(), "archive");
  EXPECT_EQ(ck->tensors().at(0).name, "w");
}

// Opcodes as Python's pickle writes them for the same values (checked by hand against pickletools).
TEST(TorchWriter, PickleBytes) {
  const std::map<std::string, Tensor> none;
  EXPECT_EQ(pickle_torch_value(ojson::object(), none, "t").bytes, B("\x80\x02}."));
  EXPECT_EQ(pickle_torch_value(ojson(300), none, "t").bytes, B("\x80\x02M\x2c\x01."));
  EXPECT_EQ(pickle_torch_value(ojson(-1), none, "t").bytes, B("\x80\x02J\xff\xff\xff\xff."));
  EXPECT_EQ(pickle_torch_value(ojson(int64_t{1} << 40), none, "t").bytes,
            B("\x80\x02\x8a\x06\x00\x00\x00\x00\x00\x01."));
  EXPECT_EQ(pickle_torch_value(ojson(UINT64_MAX), none, "t").bytes,
            B("\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00."));
  EXPECT_EQ(pickle_torch_value(ojson(1.5), none, "t").bytes, B("\x80\x02G\x3f\xf8\0\0\0\0\0\0."));
  EXPECT_EQ(pickle_torch_value(ojson{{"__tuple__", {true, nullptr}}}, none, "t").bytes,
            B("\x80\x02\x88N\x86."));
  EXPECT_EQ(pickle_torch_value(ojson{{"__namespace__", {{"a", false}}}}, none, "t").bytes,
            B("\x80\x02" "cargparse\nNamespace\n)\x81}X\x01\0\0\0a\x89sb."));
  EXPECT_EQ(pickle_torch_value(ojson{{"__dtype__", "bfloat16"}}, none, "t").bytes,
            B("\x80\x02" "ctorch\nbfloat16\n."));
  EXPECT_EQ(pickle_torch_value(ojson{{"__ordered_dict__", {{"a", 1}, {"b", {2}}}}}, none, "t").bytes,
            B("\x80\x02" "ccollections\nOrderedDict\n)R(X\x01\0\0\0aK\x01X\x01\0\0\0b]K\x02" "au."));
  // 2001 items: batches of 1000 (MARK ... APPENDS) and a lone APPEND, as Python's pickler writes them.
  const std::string list = pickle_torch_value(ojson(std::vector<int>(2001, 7)), none, "t").bytes;
  EXPECT_EQ(std::count(list.begin(), list.end(), 'e'), 2);
  EXPECT_EQ(list.substr(list.size() - 4), B("K\x07" "a."));
}

TEST(TorchWriter, WhatCannotBeWrittenIsAnError) {
  const std::string dir = mambalm::testing::temp_dir("torch_writer");
  const std::string path = dir + "/bad.pt";
  std::map<std::string, Tensor> good{{"w", mambalm::testing::random_tensor({2, 3})}};
  auto write = [&](const ojson& v, const std::map<std::string, Tensor>& t) { write_torch_file(path, v, t); };

  expect_error([&] { write({{"model", {{"x", T("nope")}}}}, good); }, {path, "value.model.x.__tensor__", "'nope'"});
  expect_error([&] { write({{"a", 1}}, good); }, {path, "'w'", "never uses it"});
  // A CUDA tensor (its memory is never touched: refused before any read).
  float fake = 0;
  const Tensor cuda = Tensor::view_of(&fake, {1}, DType::F32, nullptr, Device::CUDA);
  expect_error([&] { write({{"c", T("c")}}, {{"c", cuda}}); }, {path, "'c'", "GPU"});
  expect_error([&] { write({{"q", T("q")}}, {{"q", Tensor::empty({2, 32}, DType::Q8)}}); }, {path, "'q'", "Q8"});
  expect_error([&] { write({{"u", T("u")}}, {{"u", Tensor()}}); }, {path, "'u'", "undefined"});
  expect_error([&] { write({{"t", {{"__tuple__", 5}}}}, {}); }, {path, "value.t.__tuple__", "not an array"});
  expect_error([&] { write({{"d", {{"__dtype__", "complex64"}}}}, {}); }, {path, "value.d.__dtype__", "complex64"});
  expect_error([&] { write({{"n", {{"__namespace__", {1, 2}}}}}, {}); }, {path, "not an object"});
  expect_error([&] { write(ojson::binary({1, 2}), {}); }, {path, "binary"});
  ojson deep = 1;
  for (int i = 0; i < 300; ++i) deep = ojson::array({deep});
  expect_error([&] { write(deep, {}); }, {path, "nested more than"});
  expect_error([&] { write_torch_file(dir + "/missing/dir/x.pt", ojson::object(), {}); }, {dir + "/missing/dir/x.pt"});
  expect_error([&] { write_torch_file(path, ojson::object(), {}, "a/b"); }, {path, "not a plain name"});
  EXPECT_FALSE(fs::exists(path));

  // A failed write leaves an existing file as it was, and no temporary file.
  write_torch_file(path, {{"w", T("w")}}, good);
  const std::string before = mambalm::testing::read_file(path);
  expect_error([&] { write({{"w", T("w")}, {"x", T("x")}}, good); }, {path, "'x'"});
  EXPECT_EQ(mambalm::testing::read_file(path), before);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

// Real torch.load (tests/golden/check_torch_writer.py) of a file we write, compared with the
// expectation written next to it. Skipped where no Python on hand imports torch ($MAMBALM_TORCH_PYTHON,
// python3, or Debian's /usr/bin/python3 with python3-torch, when a pyenv python3 comes first).
std::string python_with_torch() {
  std::vector<std::string> candidates = {"python3", "/usr/bin/python3"};
  if (const char* env = std::getenv("MAMBALM_TORCH_PYTHON")) candidates.insert(candidates.begin(), env);
  for (const std::string& py : candidates)
    if (mambalm::testing::run_command(py + " -c 'import torch' 2>/dev/null").exit_code == 0) return py;
  return "";
}

TEST(TorchWriter, RealTorchLoadReadsIt) {
  const std::string python = python_with_torch();
  if (python.empty()) GTEST_SKIP() << "no python3 that imports torch (Debian: apt-get install python3-torch)";
  const std::string dir = mambalm::testing::temp_dir("torch_writer");
  const std::string path = dir + "/model_optim_rng.pt";
  Case c = megatron_like();
  c.value["args"]["__namespace__"]["beyond_int64"] = UINT64_MAX;  // LONG1 of 9 bytes; Python reads it
  write_torch_file(path, c.value, c.tensors);
  ojson expect;
  expect["archive_dir"] = "model_optim_rng";
  expect["value"] = c.value;
  for (const auto& [key, t] : c.tensors) {
    static const char* hex = "0123456789abcdef";
    std::string h;
    const auto* p = static_cast<const unsigned char*>(t.numel() ? t.raw() : nullptr);
    for (size_t i = 0; i < t.nbytes(); ++i) h += {hex[p[i] >> 4], hex[p[i] & 15]};
    expect["tensors"][key] = {{"dtype", torch_dtype_of(t.dtype())}, {"shape", t.shape()}, {"hex", h}};
  }
  mambalm::testing::write_file(dir + "/model_optim_rng.json", expect.dump(1));
  const auto r = mambalm::testing::run_command(python + " " + mambalm::testing::source_dir() +
                                               "/tests/golden/check_torch_writer.py " + path + " " + dir +
                                               "/model_optim_rng.json");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace mambalm::io::torch
