// PyTorch checkpoint files (io/torch/): the fixtures of tests/golden/make_torch_fixtures.py read
// back exactly as expected.json says (names, dtypes, shapes, strides, offsets, every value, the
// saved arguments), in protocol 2 and 4; hostile files and malformed pickles each give one
// mambalm::Error naming what was refused, never a crash, a leak or a call of anything.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/torch/torch_checkpoint.h"
#include "io/torch/unpickler.h"
#include "io/torch/zip_archive.h"
#include "test_util.h"

namespace mambalm::io::torch {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return mambalm::testing::source_dir() + "/tests/golden/torch/" + name; }

// Ordered: the tensors are listed in state-dict order.
const nlohmann::ordered_json& expected() {
  static const nlohmann::ordered_json j = [] {
    std::ifstream f(fixture("expected.json"));
    return nlohmann::ordered_json::parse(f);
  }();
  return j;
}

using mambalm::testing::expect_error;

// Every element of a read tensor as double (F32, BF16, I64, I32).
std::vector<double> values_of(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::F32: out.push_back(t.data<float>()[i]); break;
      case DType::BF16: out.push_back(bf16_to_f32(t.data<uint16_t>()[i])); break;
      case DType::I64: out.push_back(static_cast<double>(t.data<int64_t>()[i])); break;
      case DType::I32: out.push_back(t.data<int32_t>()[i]); break;
      default: ADD_FAILURE() << "unexpected dtype " << dtype_name(t.dtype()); return out;
    }
  }
  return out;
}

DType read_dtype_for(const std::string& torch_dtype) {
  if (torch_dtype == "bfloat16") return DType::BF16;
  if (torch_dtype == "int64") return DType::I64;
  return DType::F32;  // float32, and float16 / float64 converted
}

void check_good_checkpoint(const std::string& file, const std::string& dir) {
  SCOPED_TRACE(file);
  auto ck = TorchCheckpoint::open(fixture(file));
  EXPECT_EQ(ck->archive_dir(), dir);
  EXPECT_EQ(ck->top_level_keys(), expected()["top_level_keys"].get<std::vector<std::string>>());
  EXPECT_EQ(ck->other_entries(), expected()["other_entries"].get<std::vector<std::string>>());

  const auto& want = expected()["tensors"];
  ASSERT_EQ(ck->tensors().size(), want.size());
  size_t i = 0;
  for (const auto& [name, w] : want.items()) {
    SCOPED_TRACE(name);
    const TorchTensorEntry& e = ck->tensors()[i++];
    EXPECT_EQ(e.name, name);  // state-dict order kept
    EXPECT_EQ(torch_dtype_name(e.dtype), w["dtype"].get<std::string>());
    EXPECT_EQ(e.shape, w["shape"].get<Shape>());
    EXPECT_EQ(e.stride, w["stride"].get<Shape>());
    EXPECT_EQ(e.storage_offset, w["offset"].get<int64_t>());
    EXPECT_EQ(e.storage_key, w["storage_key"].get<std::string>());
    EXPECT_EQ(e.storage_numel, w["storage_numel"].get<int64_t>());

    const Tensor t = ck->read(name);
    EXPECT_EQ(t.shape(), w["shape"].get<Shape>());
    EXPECT_EQ(t.dtype(), read_dtype_for(w["dtype"]));
    EXPECT_EQ(values_of(t), w["values"].get<std::vector<double>>());  // exact: every value is representable
  }
  EXPECT_TRUE(ck->has_args());
  EXPECT_EQ(ck->args(), nlohmann::json::parse(expected()["args"].dump()));
}

TEST(TorchCheckpoint, ReadsMegatronLikeCheckpointExactly) { check_good_checkpoint("model_optim_rng.pt", "model_optim_rng"); }

TEST(TorchCheckpoint, ReadsPickleProtocol4) { check_good_checkpoint("proto4.pt", "archive"); }

// torch_saved.pt exists only where `make_torch_fixtures.py --check` ran with real PyTorch.
TEST(TorchCheckpoint, ReadsRealTorchSaveOutputWhenPresent) {
  if (!fs::exists(fixture("torch_saved.pt"))) GTEST_SKIP() << "no torch_saved.pt (made on a machine with PyTorch)";
  check_good_checkpoint("torch_saved.pt", "torch_saved");
}

TEST(TorchCheckpoint, SharedStorageAndOffsets) {
  auto ck = TorchCheckpoint::open(fixture("model_optim_rng.pt"));
  const auto& fc1 = ck->entry("decoder.layers.0.mlp.linear_fc1.weight");
  const auto& fc2 = ck->entry("decoder.layers.0.mlp.linear_fc2.weight");
  EXPECT_EQ(fc1.storage_key, fc2.storage_key);
  EXPECT_EQ(fc2.storage_offset, 6);
  // Storage 5 holds 1.5 i - 2: fc2 starts at element 6.
  EXPECT_EQ(values_of(ck->read(fc2.name)), (std::vector<double>{7, 8.5, 10, 11.5, 13, 14.5}));
  // A_log: offset 3 into 1 + 0.5 i.
  EXPECT_EQ(values_of(ck->read("decoder.layers.0.mixer.A_log")), (std::vector<double>{2.5, 3, 3.5, 4}));
  // The transposed view [3, 2] with strides [1, 3] over 0.25 i comes back contiguous.
  EXPECT_EQ(values_of(ck->read("output_layer.weight")), (std::vector<double>{0, 0.75, 0.25, 1, 0.5, 1.25}));
  expect_error([&] { ck->read("no.such.tensor"); }, {"model_optim_rng.pt", "no tensor 'no.such.tensor'"});
}

TEST(TorchCheckpoint, HostileFilesAreRefused) {
  expect_error([] { TorchCheckpoint::open(fixture("hostile_os_system.pt")); },
               {"hostile_os_system.pt", "refused global 'os.system'", "never imports or calls"});
  expect_error([] { TorchCheckpoint::open(fixture("hostile_global.pt")); },
               {"hostile_global.pt", "refused global 'torch.nn.modules.linear.Linear'"});
  expect_error([] { TorchCheckpoint::open(fixture("hostile_truncated.pt")); },
               {"hostile_truncated.pt", "cannot open as a zip archive"});

  auto past = TorchCheckpoint::open(fixture("hostile_storage_past_end.pt"));  // lazily: opening reads no data
  expect_error([&] { past->read("past_entry"); },
               {"tensor 'past_entry'", "claims 1000 elements (4000 bytes) but its entry holds 16 bytes"});
  expect_error([&] { past->read("past_storage"); },
               {"tensor 'past_storage'", "elements up to index 10 lie past its storage of 10 elements"});
  expect_error([&] { past->read("overlapping"); },
               {"tensor 'overlapping'", "1000000 elements overlap within a storage of 10", "not supported"});
  EXPECT_FALSE(past->has_args());
  expect_error([&] { past->args(); }, {"no 'args' entry"});

  auto args = TorchCheckpoint::open(fixture("hostile_args_type.pt"));
  expect_error([&] { args->args(); }, {"hostile_args_type.pt", "checkpoint['args'] is a list, not an argparse.Namespace"});
}

TEST(TorchCheckpoint, OpaquePrefixesKeepUnknownObjectsInert) {
  // With "torch.nn." declared opaque, the pickled nn.Linear becomes an inert entry; the tensor
  // beside it still reads, and os.system stays refused.
  TorchCheckpointOptions options;
  options.opaque = {"torch.nn."};
  auto ck = TorchCheckpoint::open(fixture("hostile_global.pt"), options);
  EXPECT_EQ(ck->other_entries(), (std::vector<std::string>{"a.module"}));
  EXPECT_EQ(values_of(ck->read("a.weight")), (std::vector<double>{1, 2}));
  expect_error([&] { TorchCheckpoint::open(fixture("hostile_os_system.pt"), options); }, {"refused global 'os.system'"});
}

TEST(TorchCheckpoint, NotAZipFile) {
  const std::string dir = mambalm::testing::temp_dir("torch_ckpt");
  const std::string path = dir + "/legacy.pt";
  std::ofstream(path, std::ios::binary) << std::string("\x80\x02}q\x00.", 6);
  expect_error([&] { TorchCheckpoint::open(path); }, {"legacy.pt", "cannot open as a zip archive", "legacy format"});
  expect_error([&] { TorchCheckpoint::open(dir + "/missing.pt"); }, {"missing.pt", "cannot open as a zip archive"});
  fs::remove_all(dir);
}

TEST(ZipArchive, RangesAreBoundsChecked) {
  auto zip = ZipArchive::open(fixture("model_optim_rng.pt"));
  EXPECT_EQ(zip->read_all("model_optim_rng/byteorder", 16), "little");
  EXPECT_EQ(zip->size("model_optim_rng/data/0"), 24u * 4);
  float v[2];
  zip->read_range("model_optim_rng/data/0", 4 * 22, 8, v);  // the last two elements: (i - 11.5) / 4
  EXPECT_EQ(v[0], 2.625f);
  EXPECT_EQ(v[1], 2.875f);
  expect_error([&] { zip->read_range("model_optim_rng/data/0", 4 * 23, 8, v); }, {"lie outside zip entry"});
  expect_error([&] { zip->read_range("model_optim_rng/data/0", UINT64_MAX, 2, v); }, {"lie outside zip entry"});
  expect_error([&] { zip->read_all("model_optim_rng/data.pkl", 10); }, {"more than the 10 allowed"});
  expect_error([&] { zip->size("nope"); }, {"zip entry 'nope' is missing"});
}

// ---- the unpickler on hand-written byte strings ----

PickleTree parse(const std::string& bytes) { return unpickle(bytes); }

TEST(Unpickler, MalformedInputIsAnError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "truncated"},
      {"\x80\x02N", "truncated"},
      {std::string("\x80\x09N.", 4), "protocol 9 is not supported"},
      {"\x80\x02" "a.", "stack underflow"},
      {"\x80\x02(K\x01" "a.", "stack underflow"},  // APPEND cannot reach below a MARK
      {"\x80\x02h\x05.", "memo key 5 was never stored"},
      {"\x80\x02\xff.", "unsupported pickle opcode 0xff"},
      {"\x80\x02i.", "unsupported pickle opcode 0x69"},  // INST: a call by another name
      {"\x80\x02X\xff\xff\xff\x7f", "truncated"},
      {std::string("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.", 14), "does not fit in 64 bits"},
      {"\x80\x02K\x01K\x02.", "STOP with 2 values"},
      {"\x80\x02(K\x01.", "STOP with"},
      {std::string("\x80\x02N)R.", 6), "REDUCE on a value that is not a global"},
      {"\x80\x02K\x01Q.", "persistent id is not"},
      {"\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", "called with arguments"},
      {"\x80\x02" "ctorch\nFloatStorage\n)R.", "'torch.FloatStorage' cannot be called"},
      {"\x80\x02" "ctorch\nbfloat16\nK\x01" "b.", "BUILD on a value that takes no state"},
      {std::string("\x80\x02" "(X\x07\x00\x00\x00" "storage" "ctorch\nFloatStorage\n" "X\x04\x00\x00\x00" "../x"
                   "X\x03\x00\x00\x00" "cpu" "K\x01" "tQ.", 57),
       "storage key is not a plain name"},
      {"\x80\x02" "csys\nexit\n", "never imports"},
  };
  for (const auto& [bytes, part] : cases) {
    SCOPED_TRACE(part);
    expect_error([&] { parse(bytes); }, {part});
  }
}

TEST(Unpickler, RefusesEveryOtherGlobal) {
  expect_error([] { parse("\x80\x02" "c__builtin__\neval\n."); }, {"refused global '__builtin__.eval'"});
  // STACK_GLOBAL (protocol 4) takes its names from the stack.
  expect_error([] { parse("\x80\x04\x8c\x08" "builtins\x8c\x04" "exec\x93."); }, {"refused global 'builtins.exec'"});
  expect_error([] { parse("\x80\x02" "ctorch._utils\n_rebuild_tensor\n."); }, {"refused global 'torch._utils._rebuild_tensor'"});
  EXPECT_TRUE(is_allowed_global("torch._utils._rebuild_tensor_v2"));
  EXPECT_TRUE(is_allowed_global("torch.BFloat16Storage"));
  EXPECT_FALSE(is_allowed_global("torch.load"));
  EXPECT_FALSE(is_allowed_global("posix.system"));
}

TEST(Unpickler, Numbers) {
  auto one = [](const std::string& bytes) { PickleTree t = parse(bytes); return t.at(t.root); };
  EXPECT_EQ(one(std::string("\x80\x02\x8a\x00.", 5)).integer, 0);
  EXPECT_EQ(one("\x80\x02\x8a\x01\xff.").integer, -1);
  EXPECT_EQ(one(std::string("\x80\x02\x8a\x02\x00\x80.", 7)).integer, -32768);
  EXPECT_EQ(one("\x80\x02\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.").integer, INT64_MAX);
  EXPECT_EQ(one("\x80\x02J\xfe\xff\xff\xff.").integer, -2);
  EXPECT_EQ(one(std::string("\x80\x02M\x00\x01.", 6)).integer, 256);
  EXPECT_EQ(one(std::string("\x80\x02G\x3f\xf8\x00\x00\x00\x00\x00\x00.", 12)).number, 1.5);
  EXPECT_EQ(one(std::string("\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x02hi\x94.", 17)).text, "hi");
}

TEST(Unpickler, CyclesAndDeepNestingStayInert) {
  // A list holding itself: parses (Python allows it), cannot leak (values live in one arena),
  // and turning it into JSON stops at the depth limit instead of recursing forever.
  PickleTree cyc = parse(std::string("\x80\x02]q\x00h\x00" "a.", 9));
  EXPECT_EQ(cyc.at(cyc.root).items.at(0), cyc.root);
  expect_error([&] { pickle_to_json(cyc, cyc.root, "cyc"); }, {"nested more than 64 levels"});
  // 200000 nested lists: built and released without recursion.
  const int depth = 200000;
  std::string deep = "\x80\x02" + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  PickleTree d = parse(deep);
  EXPECT_EQ(d.values.size(), static_cast<size_t>(depth));
  expect_error([&] { pickle_to_json(d, d.root, "deep"); }, {"nested more than 64 levels"});
  // 60 lists, each holding the previous one twice: 61 values, 2^61 once expanded.
  const std::string zero(1, '\0');
  std::string fan = "\x80\x02]q" + zero;  // memo 0 = []
  for (int i = 0; i < 60; ++i) fan += "0](h" + zero + "h" + zero + "eq" + zero;  // memo 0 = [memo 0, memo 0]
  fan += ".";
  PickleTree f = parse(fan);
  expect_error([&] { pickle_to_json(f, f.root, "fan"); }, {"expands to more than 1048576 JSON values"});
}

// Every prefix of a real data.pkl is an Error, and every single-byte corruption either parses
// or is an Error: never a crash, a hang or another exception (ASan/UBSan watch the CI run).
TEST(Unpickler, TruncatedOrCorruptedPicklesNeverCrash) {
  auto zip = ZipArchive::open(fixture("model_optim_rng.pt"));
  const std::string pkl = zip->read_all("model_optim_rng/data.pkl", 1 << 20);
  ASSERT_GT(pkl.size(), 1000u);
  for (size_t n = 0; n < pkl.size(); ++n) {
    try {
      unpickle(std::string_view(pkl).substr(0, n));
      ADD_FAILURE() << "a prefix of " << n << " bytes parsed";
    } catch (const Error&) {
    }
  }
  size_t parsed = 0, refused = 0;
  for (size_t i = 0; i < pkl.size(); ++i) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff}, static_cast<uint8_t>(pkl[i] + 1)}) {
      std::string bad = pkl;
      bad[i] = static_cast<char>(v);
      try {
        PickleTree t = unpickle(bad);
        ++parsed;
        try {
          pickle_to_json(t, t.root, "corrupt");
        } catch (const Error&) {
        }
      } catch (const Error&) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(parsed, 0u);  // a changed digit or letter still parses
}

}  // namespace
}  // namespace mambalm::io::torch
