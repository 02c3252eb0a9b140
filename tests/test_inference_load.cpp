// Loading for inference (issue 12, point 6): Model::load_for_inference reads the weights straight
// into their stored dtype (F32, BF16, Q8) tensor by tensor, a bf16 file run as bf16 staying a
// view of the mapped file; and the memory check that refuses, with the numbers, a command the
// machine cannot hold (model/inference_memory.h, MAMBALM_AVAILABLE_MEMORY).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include "config/presets.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "io/npy.h"
#include "io/weights.h"
#include "model/inference_memory.h"
#include "model/model.h"
#include "model/weight_storage.h"
#include "model/state.h"
#include "ops/blas_core.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

// Three presets that cover every layer kind: Mamba-2 + attention + MLP, Mamba-1, the Transformer.
const char* const kPresets[] = {"hybrid-tiny", "mamba-tiny", "transformer-tiny"};

// I32 [1, T] of ids spread over the vocabulary.
Tensor some_ids(int64_t T, int64_t V) {
  Tensor ids = Tensor::empty({1, T}, DType::I32);
  for (int64_t t = 0; t < T; ++t) ids.data<int32_t>()[t] = static_cast<int32_t>((t * 7919 + 11) % V);
  return ids;
}

// A random model of `preset` written twice: <dir>/f32 and <dir>/bf16.
std::string write_both(const std::string& preset) {
  const std::string dir = temp_dir("infer-load-" + preset);
  Model m(preset_config(preset));
  m.init_random(test_seed());
  m.save(dir + "/f32", DType::F32);
  m.save(dir + "/bf16", DType::BF16);
  return dir;
}

// Logits [T, V] as an owned F32 tensor.
Tensor logits_of(Model& m, const Tensor& ids) {
  const int64_t T = ids.dim(1), V = m.config().vocab_size;
  return m.forward(ids).reshape({T, V}).clone();
}

// Whether `p` lies in a mapping of a file whose path ends with `file` (/proc/self/maps).
bool in_mapping_of(const void* p, const std::string& file) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    if (line.size() < file.size() || line.compare(line.size() - file.size(), file.size(), file) != 0) continue;
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream(line) >> std::hex >> lo >> dash >> hi;
    if (addr >= lo && addr < hi) return true;
  }
  return false;
}

// Sets MAMBALM_AVAILABLE_MEMORY for one scope.
struct AvailableMemory {
  explicit AvailableMemory(const std::string& value) { ::setenv("MAMBALM_AVAILABLE_MEMORY", value.c_str(), 1); }
  ~AvailableMemory() { ::unsetenv("MAMBALM_AVAILABLE_MEMORY"); }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// The new path stores exactly what the old one did (load as F32, then convert every matrix):
// same dtype and same bytes for every parameter, from either file, in every stored dtype; except
// the untied embedding table (every preset's), which keeps the file's dtype (inference_dtype).
TEST(InferenceLoad, SameWeightsAsLoadThenConvert) {
  for (const char* preset : kPresets) {
    const std::string dir = write_both(preset);
    for (const char* file : {"f32", "bf16"}) {
      const DType file_dtype = std::string(file) == "f32" ? DType::F32 : DType::BF16;
      for (DType dtype : {DType::F32, DType::BF16, DType::Q8}) {
        Model old_way = Model::load(dir + "/" + file);
        ASSERT_FALSE(old_way.config().tie_embeddings) << preset;
        const Tensor table = stored_as(*old_way.params().front().tensor, file_dtype);  // the file's [V, D]
        old_way.to_device(Device::CPU, dtype);
        *old_way.params().front().tensor = table;
        Model new_way = Model::load_for_inference(dir + "/" + file, dtype);
        EXPECT_EQ(new_way.matrix_dtype(), dtype);
        ASSERT_EQ(old_way.params().size(), new_way.params().size());
        for (size_t i = 0; i < new_way.params().size(); ++i) {
          const Tensor& a = *old_way.params()[i].tensor;
          const Tensor& b = *new_way.params()[i].tensor;
          const std::string what = std::string(preset) + " " + file + " as " + dtype_name(dtype) + ": " + new_way.params()[i].name;
          ASSERT_EQ(a.dtype(), b.dtype()) << what;
          ASSERT_EQ(a.shape(), b.shape()) << what;
          EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << what;
        }
      }
    }
    std::filesystem::remove_all(dir);
  }
}

// The brief's comparison: a bf16 file run as bf16 against the f32 file run as bf16 (the matrices
// are then the same bf16 values; the file also rounds the small F32 tensors, conv taps, A_log,
// dt_bias) and against the f32 model, within the `--dtype bf16` limit of docs/numerics.md
// (2e-2). T = 20 > 8 rows: the prefill path (bf16 blocks widened for sgemm), not only the GEMV.
TEST(InferenceLoad, Bf16FileAsBf16MatchesF32FileConverted) {
  for (const char* preset : kPresets) {
    const std::string dir = write_both(preset);
    Model f32 = Model::load(dir + "/f32");
    const Tensor ids = some_ids(20, f32.config().vocab_size);
    const Tensor want_f32 = logits_of(f32, ids);
    f32.to_device(Device::CPU, DType::BF16);
    const Tensor want_bf16 = logits_of(f32, ids);
    Model mapped = Model::load_for_inference(dir + "/bf16", DType::BF16);
    const Tensor got = logits_of(mapped, ids);
    expect_close(std::string(preset) + " bf16 file vs f32 file converted", got, want_bf16, 2e-2);
    expect_close(std::string(preset) + " bf16 file vs f32 model", got, want_f32, 2e-2);
    EXPECT_GT(relative_l2(got, want_f32), 0.0) << "the bf16 weights must differ from f32";
    std::filesystem::remove_all(dir);
  }
}

// Prefill and decode read the mapped weights (f32 and bf16 files run in their own dtype) and the
// q8 copies the same way: 20 prompt tokens then 4 decode steps against one forward of all 24
// (docs/numerics.md: decode vs forward, 1e-5; q8 1e-3, test_util.h).
TEST(InferenceLoad, PrefillThenDecodeOnLoadedWeights) {
  struct Run {
    const char* file;
    DType dtype;
  };
  for (const char* preset : kPresets) {
    const std::string dir = write_both(preset);
    for (const Run run : {Run{"f32", DType::F32}, Run{"bf16", DType::BF16}, Run{"bf16", DType::Q8}}) {
      const DType dtype = run.dtype;
      Model m = Model::load_for_inference(dir + "/" + run.file, dtype);
      const int64_t P = 20, G = 4, V = m.config().vocab_size;
      const Tensor ids = some_ids(P + G, V);
      const Tensor full = logits_of(m, ids);  // [P + G, V]
      SequenceState state(m.config(), 1);
      Tensor prompt = Tensor::empty({1, P}, DType::I32);
      std::memcpy(prompt.raw(), ids.raw(), P * 4);
      m.forward(prompt, &state, true);
      Tensor steps = Tensor::empty({G, V});
      for (int64_t g = 0; g < G; ++g) {
        Tensor one = Tensor::empty({1, 1}, DType::I32);
        one.data<int32_t>()[0] = ids.data<int32_t>()[P + g];
        const Tensor logits = m.forward(one, &state);
        std::memcpy(steps.f32() + g * V, logits.f32(), static_cast<size_t>(V) * 4);
      }
      const double limit = dtype == DType::BF16 && ops::onednn_bf16_prefill() ? kBf16RoundedDecodeLimit
                           : dtype == DType::Q8                                   ? kQ8DecodeLimit
                                                                                  : 1e-5;
      expect_close(std::string(preset) + " decode vs forward, " + dtype_name(dtype), steps,
                   time_slice(full.reshape({1, P + G, V}), P, P + G).reshape({G, V}), limit);
    }
    std::filesystem::remove_all(dir);
  }
}

// A large tensor the file already holds in its stored dtype is not copied: its bytes are the
// file's mapping. Small ones (under kSmallestMappedTensorBytes: norms, taps, small matrices) and
// converted ones (Q8, and the F32 norms of a bf16 file) are the model's own memory. The
// vocabulary is raised so that the embedding (40,000 x 64 in bf16, 5.1 MB) is mapped.
TEST(InferenceLoad, Bf16FileAsBf16MapsItsLargeTensors) {
  const std::string dir = temp_dir("infer-load-views");
  ModelConfig cfg = preset_config("hybrid-tiny");
  cfg.vocab_size = 40000;
  Model m(cfg);
  m.init_random(test_seed());
  m.save(dir + "/bf16", DType::BF16);
  Model bf16 = Model::load_for_inference(dir + "/bf16", DType::BF16);
  Model q8 = Model::load_for_inference(dir + "/bf16", DType::Q8);
  int mapped = 0, copied_matrices = 0;
  for (size_t i = 0; i < bf16.params().size(); ++i) {
    const ParamRef& p = bf16.params()[i];
    const std::string file = "/bf16/model.safetensors";
    const bool large_matrix = is_matrix(p) && p.tensor->nbytes() >= kSmallestMappedTensorBytes;
    EXPECT_EQ(in_mapping_of(p.tensor->raw(), file), large_matrix) << p.name;
    EXPECT_EQ(in_mapping_of(q8.params()[i].tensor->raw(), file), i == 0) << p.name;  // the BF16 table stays in the file
    mapped += large_matrix;
    copied_matrices += is_matrix(p) && !large_matrix;
  }
  EXPECT_GE(mapped, 1);
  EXPECT_GT(copied_matrices, 5);
  EXPECT_TRUE(bf16.embedding_read_from_file());
  EXPECT_TRUE(q8.embedding_read_from_file());
  std::filesystem::remove_all(dir);
}

// Resident bytes of the mappings of files whose path ends with `file` (/proc/self/smaps).
int64_t resident_bytes_of(const std::string& file) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_file = false;
  int64_t kib = 0;
  while (std::getline(smaps, line)) {
    const bool header = !line.empty() && (std::isdigit(static_cast<unsigned char>(line[0])) || (line[0] >= 'a' && line[0] <= 'f'));
    if (header) {  // "lo-hi perms offset dev inode path"; the fields below it start upper-case
      in_file = line.size() >= file.size() && line.compare(line.size() - file.size(), file.size(), file) == 0;
    } else if (in_file && line.rfind("Rss:", 0) == 0) {
      kib += std::stoll(line.substr(4));
    }
  }
  return kib * 1024;
}

// Drops `path` from the page cache and reads it back whole, as a freshly read model file is
// cached: through readahead, in folios as large as the file system makes them.
void recache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << path;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::vector<char> buffer(size_t{1} << 20);
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  ::close(fd);
}

// An untied F32 table loaded beside BF16 / Q8 matrices stays in the file and each lookup reads
// its rows from there (model/embedding_file.h): the logits are bit for bit those of the same
// matrices with the F32 table in memory, and the lookups leave none of the table's 10 MB mapped
// (a mapped row would map the page-cache folio around it, up to 2 MiB). A file cut short after
// the load is a one-line error naming it, not a crash.
TEST(InferenceLoad, EmbeddingTableIsReadFromTheFileByRow) {
  const std::string dir = temp_dir("infer-load-table");
  ModelConfig cfg = preset_config("hybrid-tiny");
  cfg.vocab_size = 40000;  // [40000, 64] F32: 10.2 MB, past kSmallestMappedTensorBytes
  Model m(cfg);
  m.init_random(test_seed());
  m.save(dir, DType::F32);
  recache(dir + "/model.safetensors");
  const Tensor ids = some_ids(64, cfg.vocab_size);  // spread over the whole table
  for (const DType dtype : {DType::BF16, DType::Q8}) {
    Model loaded = Model::load_for_inference(dir, dtype);
    ASSERT_TRUE(loaded.embedding_read_from_file()) << dtype_name(dtype);
    EXPECT_EQ(loaded.params().front().tensor->dtype(), DType::F32);
    const Tensor got = logits_of(loaded, ids);
    EXPECT_LT(resident_bytes_of("/model.safetensors"), int64_t{1} << 20) << dtype_name(dtype);
    Model in_memory = Model::load(dir);
    const Tensor table = *in_memory.params().front().tensor;  // owned F32 [V, D]
    in_memory.to_device(Device::CPU, dtype);
    *in_memory.params().front().tensor = table;
    EXPECT_FALSE(in_memory.embedding_read_from_file());
    const Tensor want = logits_of(in_memory, ids);
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0) << dtype_name(dtype);
  }
  Model loaded = Model::load_for_inference(dir, DType::BF16);
  std::filesystem::resize_file(dir + "/model.safetensors", 4 << 20);  // the table's later rows gone
  const std::string message = message_of([&] { logits_of(loaded, ids); });
  EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("the file ends early"), std::string::npos) << message;
  std::filesystem::remove_all(dir);
}

// Nothing converted (an F32 file loaded as F32): every tensor, small ones too, is a view of the
// mapping. Reading the matrices in place maps the small tensors' page-cache folios back anyway,
// so copies would be held twice.
TEST(InferenceLoad, F32FileAsF32MapsEveryTensor) {
  const std::string dir = temp_dir("infer-load-f32-views");
  Model m(preset_config("hybrid-tiny"));
  m.init_random(test_seed());
  m.save(dir, DType::F32);
  Model loaded = Model::load_for_inference(dir, DType::F32);
  for (const ParamRef& p : loaded.params())
    EXPECT_TRUE(in_mapping_of(p.tensor->raw(), "/model.safetensors")) << p.name;
  std::filesystem::remove_all(dir);
}

// Everything a load copies or converts lies in one huge-page arena (core/huge_page_arena.h), in
// parameter order, each tensor 64-byte aligned right after the one before.
TEST(InferenceLoad, CopiedTensorsLieBackToBackInOneArena) {
  const std::string dir = temp_dir("infer-load-arena");
  Model m(preset_config("hybrid-tiny"));
  m.init_random(test_seed());
  m.save(dir, DType::F32);
  for (const DType dtype : {DType::BF16, DType::Q8}) {
    Model loaded = Model::load_for_inference(dir, dtype);
    const ParamList& params = loaded.params();
    ASSERT_GT(params.size(), 5u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(params[0].tensor->raw()) % (2u << 20), 0u) << dtype_name(dtype);
    for (size_t i = 1; i < params.size(); ++i) {
      const auto prev = reinterpret_cast<uintptr_t>(params[i - 1].tensor->raw());
      EXPECT_EQ(reinterpret_cast<uintptr_t>(params[i].tensor->raw()), prev + (params[i - 1].tensor->nbytes() + 63) / 64 * 64)
          << dtype_name(dtype) << " " << params[i].name;
    }
  }
  std::filesystem::remove_all(dir);
}

// The estimate of the study's 8B hybrid: weights exact per dtype (F32 4 bytes per parameter;
// BF16 2 per matrix weight; Q8 34 bytes per 32), a short prompt adds little.
TEST(InferenceMemory, EstimateOfThe8BHybrid) {
  const ModelConfig cfg = preset_config("hybrid-8b");
  const int64_t params = Model(cfg).parameter_count();
  const InferenceWork work{1, 16, 0, 32};
  const InferenceMemory f32 = estimate_inference_memory(cfg, DType::F32, work);
  const InferenceMemory bf16 = estimate_inference_memory(cfg, DType::BF16, work);
  const InferenceMemory q8 = estimate_inference_memory(cfg, DType::Q8, work);
  std::printf("[8B estimate] %lld parameters: f32 %.2f GB, bf16 %.2f GB, q8 %.2f GB (activations %.3f GB)\n",
              static_cast<long long>(params), f32.total() / 1e9, bf16.total() / 1e9, q8.total() / 1e9, f32.activations / 1e9);
  EXPECT_EQ(f32.weights, 4 * params);
  EXPECT_NEAR(static_cast<double>(bf16.weights), 2.0 * static_cast<double>(params), 0.01 * 2.0 * static_cast<double>(params));
  EXPECT_NEAR(static_cast<double>(q8.weights), 34.0 / 32 * static_cast<double>(params), 0.01 * static_cast<double>(params));
  EXPECT_LT(f32.activations, int64_t{100} << 20);  // 16 tokens
  EXPECT_GT(f32.total(), int64_t{34'000'000'000});
}

// Given the file, the estimate also counts what a conversion holds of the file while loading
// (one block of at most 16 MiB of F32; these tiny tensors fit in one): for Q8 the largest matrix;
// for a bf16 file run as bf16 only the small tensors widened to F32; for an f32 file run as f32
// nothing.
TEST(InferenceMemory, CountsOneBlockOfTheFileConvertedWhileLoading) {
  const std::string dir = write_both("hybrid-tiny");
  const ModelConfig cfg = preset_config("hybrid-tiny");
  const auto bf16_file = io::WeightSet::open(dir + "/bf16");
  const auto f32_file = io::WeightSet::open(dir + "/f32");
  int64_t largest = 0;
  for (const std::string& name : bf16_file->names())
    largest = std::max<int64_t>(largest, static_cast<int64_t>(storage_bytes(bf16_file->shape_of(name), DType::BF16)));
  const InferenceWork work{1, 16, 0, 32};
  EXPECT_EQ(estimate_inference_memory(cfg, DType::Q8, work, bf16_file.get()).loading, largest);
  const int64_t small = estimate_inference_memory(cfg, DType::BF16, work, bf16_file.get()).loading;
  EXPECT_GT(small, 0);
  EXPECT_LT(small, largest);
  EXPECT_EQ(estimate_inference_memory(cfg, DType::F32, work, f32_file.get()).loading, 0);
  EXPECT_EQ(estimate_inference_memory(cfg, DType::Q8, work).loading, 0);  // no file: not known
  std::filesystem::remove_all(dir);
}

// An artificially small limit (MAMBALM_AVAILABLE_MEMORY) makes the check refuse, naming the need,
// what is available and where that figure came from, and the dtype that would fit.
TEST(InferenceMemory, RefusesWithTheNumbersUnderAnArtificialLimit) {
  const ModelConfig cfg = preset_config("hybrid-8b");
  const InferenceWork work{1, 16, 0, 32};
  const int64_t f32 = estimate_inference_memory(cfg, DType::F32, work).total();
  const int64_t bf16 = estimate_inference_memory(cfg, DType::BF16, work).total();
  const int64_t q8 = estimate_inference_memory(cfg, DType::Q8, work).total();
  {
    AvailableMemory limit(std::to_string((f32 + bf16) / 2));
    EXPECT_EQ(available_memory_bytes(), (f32 + bf16) / 2);
    const std::string m = message_of([&] { check_inference_memory(cfg, DType::F32, work, "mambalm forward 8b"); });
    std::printf("[refusal] %s\n", m.c_str());
    EXPECT_NE(m.find("mambalm forward 8b: needs ~"), std::string::npos) << m;
    EXPECT_NE(m.find("available (MAMBALM_AVAILABLE_MEMORY)"), std::string::npos) << m;
    EXPECT_NE(m.find("try --dtype bf16"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line";
    EXPECT_NO_THROW(check_inference_memory(cfg, DType::BF16, work, "x"));
  }
  {
    AvailableMemory limit(std::to_string((bf16 + q8) / 2));
    const std::string m = message_of([&] { check_inference_memory(cfg, DType::BF16, work, "x"); });
    EXPECT_NE(m.find("try --dtype q8"), std::string::npos) << m;
  }
  {
    AvailableMemory limit("1GB");
    EXPECT_EQ(available_memory_bytes(), 1'000'000'000);
    const std::string m = message_of([&] { check_inference_memory(cfg, DType::Q8, work, "x"); });
    EXPECT_NE(m.find("does not fit this machine in any dtype"), std::string::npos) << m;
  }
  {
    AvailableMemory limit("lots");
    const std::string m = message_of([] { available_memory_bytes(); });
    EXPECT_NE(m.find("MAMBALM_AVAILABLE_MEMORY=lots: not a memory size"), std::string::npos) << m;
  }
  EXPECT_GT(available_memory_bytes(), 0);  // the machine's own figure again
}

// `mambalm forward` refuses before loading, in one line, and runs when the limit allows it.
TEST(InferenceMemory, CliRefusesBeforeLoading) {
  const std::string dir = temp_dir("infer-mem-cli");
  Model m(preset_config("hybrid-tiny"));
  m.init_random(test_seed());
  m.save(dir + "/model", DType::BF16);
  write_file(dir + "/tokens.txt", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
  const std::string args = " forward --model " + dir + "/model --tokens " + dir + "/tokens.txt --logits " + dir + "/logits.npy";
  CommandResult r = run_command("MAMBALM_AVAILABLE_MEMORY=1MB " + std::string(MAMBALM_CLI) + args);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("needs ~"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("0.001 GB available (MAMBALM_AVAILABLE_MEMORY)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/logits.npy"));
  r = run_command("MAMBALM_AVAILABLE_MEMORY=100GB " + std::string(MAMBALM_CLI) + args + " --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::read_npy(dir + "/logits.npy").shape(), (Shape{16, m.config().vocab_size}));
  std::filesystem::remove_all(dir);
}

// Converting while loading holds one block of the file at a time (model_load.cpp): an f32 file
// with a 128 MB tied embedding (500K x 64) loads as Q8 and as BF16 at about the converted
// size. Holding the whole f32 tensor while converting it, as before, peaked at 174 MB (Q8) and
// 203 MB (BF16); now 63 and 90 MB (GNU time's peak RSS of the command, which includes the
// program itself, ~15 MB).
TEST(InferenceLoad, ConvertingNeverHoldsAWholeTensorOfTheFile) {
  if (!std::filesystem::exists("/usr/bin/time")) GTEST_SKIP() << "needs GNU time (/usr/bin/time)";
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "resident memory is not meaningful under AddressSanitizer";
#endif
  const std::string dir = temp_dir("load-blocks");
  ASSERT_EQ(run_cli("init --arch mamba2 --preset mamba2-tiny --vocab 500000 --tie-embeddings yes --seed 3 --out " + dir + "/m").exit_code, 0);
  ASSERT_GT(std::filesystem::file_size(dir + "/m/model.safetensors"), 128'000'000u);
  write_file(dir + "/tokens.txt", "1 2 3\n");
  for (const auto& [dtype, limit_mb] : {std::pair<const char*, double>{"q8", 110.0}, {"bf16", 135.0}}) {
    const std::string cmd = "/usr/bin/time -f %M -o " + dir + "/rss " + std::string(MAMBALM_CLI) + " generate --model " + dir +
                            "/m --tokens " + dir + "/tokens.txt --max-tokens 2 --dtype " + dtype + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const double max_rss_mb = std::stod(read_file(dir + "/rss")) / 1024.0;  // GNU time prints kilobytes
    std::printf("[load max RSS] %s: %.1f MB\n", dtype, max_rss_mb);
    EXPECT_LT(max_rss_mb, limit_mb) << dtype;
  }
  std::filesystem::remove_all(dir);
}
