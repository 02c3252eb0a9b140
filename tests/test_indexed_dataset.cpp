// Megatron indexed dataset: round trips for both token dtypes, the exact byte layout Megatron's
// reader expects, and corrupt files that must be errors naming the file and field.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "io/indexed_dataset.h"
#include "test_util.h"

namespace mambalm {
namespace {

namespace fs = std::filesystem;
using io::IndexedDataset;
using io::IndexedDatasetWriter;
using io::TokenDType;

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

std::vector<std::vector<int32_t>> random_documents(int64_t vocab, int count, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  std::uniform_int_distribution<int> len(0, 300);
  std::vector<std::vector<int32_t>> docs(static_cast<size_t>(count));
  for (auto& d : docs) {
    d.resize(static_cast<size_t>(len(gen)));
    for (auto& t : d) t = id(gen);
  }
  docs[1].clear();                                    // an empty document is legal
  docs[0].push_back(static_cast<int32_t>(vocab - 1));  // the largest id survives the narrowing
  return docs;
}

void round_trip(int64_t vocab, TokenDType expected_dtype) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE("MAMBALM_TEST_SEED=" + std::to_string(seed));
  const std::string prefix = testing::temp_dir("idx") + "/data";
  auto docs = random_documents(vocab, 200, seed);
  int64_t total = 0;
  {
    IndexedDatasetWriter w(prefix, vocab);
    EXPECT_EQ(w.dtype(), expected_dtype);
    for (const auto& d : docs) {
      w.add_document(d);
      total += static_cast<int64_t>(d.size());
    }
    EXPECT_FALSE(fs::exists(prefix + ".bin")) << "visible before finish()";
    w.finish();
  }
  IndexedDataset ds(prefix);
  EXPECT_EQ(ds.dtype(), expected_dtype);
  ASSERT_EQ(ds.document_count(), 200);
  EXPECT_EQ(ds.sequence_count(), 200);
  EXPECT_EQ(ds.total_tokens(), total);
  for (int64_t d = 0; d < 200; ++d) ASSERT_EQ(ds.document_tokens(d), docs[d]) << "document " << d;
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(prefix + ".bin")),
            total * io::token_dtype_size(expected_dtype));
}

TEST(IndexedDataset, RoundTripUint16) { round_trip(50257, TokenDType::U16); }
TEST(IndexedDataset, RoundTripInt32) { round_trip(128256, TokenDType::I32); }

TEST(IndexedDataset, DtypeThresholdIsMegatrons) {
  EXPECT_EQ(io::token_dtype_for_vocab(65499), TokenDType::U16);
  EXPECT_EQ(io::token_dtype_for_vocab(65500), TokenDType::I32);
}

// The bytes Megatron's _IndexWriter produces for two documents [1, 2, 3] and [7] in uint16,
// assembled by hand from its source: header, int32 lengths, int64 byte pointers, int64
// document indices starting at 0.
TEST(IndexedDataset, ByteLayoutMatchesMegatron) {
  const std::string prefix = testing::temp_dir("idx") + "/layout";
  IndexedDatasetWriter w(prefix, 100);
  w.add_document(std::vector<int32_t>{1, 2, 3});
  w.add_document(std::vector<int32_t>{7});
  w.finish();

  std::string idx("MMIDIDX\0\0", 9);
  put<uint64_t>(idx, 1);  // version
  put<uint8_t>(idx, 8);   // DType.uint16
  put<uint64_t>(idx, 2);  // sequence count
  put<uint64_t>(idx, 3);  // len(document_indices)
  put<int32_t>(idx, 3);
  put<int32_t>(idx, 1);
  put<int64_t>(idx, 0);
  put<int64_t>(idx, 6);   // 3 tokens * 2 bytes
  put<int64_t>(idx, 0);
  put<int64_t>(idx, 1);
  put<int64_t>(idx, 2);
  EXPECT_EQ(idx.size(), 34u + 2 * 4 + 2 * 8 + 3 * 8);
  EXPECT_EQ(testing::read_file(prefix + ".idx"), idx);
  EXPECT_EQ(testing::read_file(prefix + ".bin"), std::string("\x01\0\x02\0\x03\0\x07\0", 8));
}

// A hand-built file with several sequences per document (as Megatron writes for sentence-split
// data) and the multimodal mode bytes reads correctly.
TEST(IndexedDataset, ReadsMultiSequenceDocumentsAndModes) {
  const std::string prefix = testing::temp_dir("idx") + "/multi";
  std::string idx("MMIDIDX\0\0", 9);
  put<uint64_t>(idx, 1);
  put<uint8_t>(idx, 4);  // int32
  put<uint64_t>(idx, 3);
  put<uint64_t>(idx, 3);
  for (int32_t len : {2, 1, 1}) put<int32_t>(idx, len);
  for (int64_t p : {0, 8, 12}) put<int64_t>(idx, p);
  for (int64_t d : {0, 2, 3}) put<int64_t>(idx, d);
  idx.append(3, '\0');  // modes
  spit(prefix + ".idx", idx);
  std::string bin;
  for (int32_t t : {5, 6, 70000, 9}) put<int32_t>(bin, t);
  spit(prefix + ".bin", bin);
  IndexedDataset ds(prefix);
  ASSERT_EQ(ds.document_count(), 2);
  EXPECT_EQ(ds.document_tokens(0), (std::vector<int32_t>{5, 6, 70000}));
  EXPECT_EQ(ds.document_tokens(1), (std::vector<int32_t>{9}));
  EXPECT_EQ(ds.total_tokens(), 4);
}

class CorruptIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = testing::temp_dir("idx") + "/bad";
    IndexedDatasetWriter w(prefix_, 1000);
    w.add_document(std::vector<int32_t>{1, 2, 3});
    w.add_document(std::vector<int32_t>{4, 5});
    w.finish();
    idx_ = testing::read_file(prefix_ + ".idx");
    bin_ = testing::read_file(prefix_ + ".bin");
  }
  // Opening must throw an Error whose message contains every one of `parts`.
  void expect_error(std::initializer_list<std::string> parts) {
    try {
      IndexedDataset ds(prefix_);
      FAIL() << "opened a corrupt dataset";
    } catch (const Error& e) {
      for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message '" << e.what() << "' lacks '" << p << "'";
    }
  }
  std::string prefix_, idx_, bin_;
};

TEST_F(CorruptIndex, IntactFileOpens) { EXPECT_EQ(IndexedDataset(prefix_).total_tokens(), 5); }

TEST_F(CorruptIndex, TruncatedIndex) {
  spit(prefix_ + ".idx", idx_.substr(0, idx_.size() - 1));
  expect_error({prefix_ + ".idx", "bytes", "truncated"});
  spit(prefix_ + ".idx", idx_.substr(0, 20));
  expect_error({prefix_ + ".idx", "header"});
}

TEST_F(CorruptIndex, BadMagic) {
  idx_[0] = 'X';
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "magic"});
}

TEST_F(CorruptIndex, BadVersion) {
  idx_[9] = 2;
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "version"});
}

TEST_F(CorruptIndex, WrongDtypeCode) {
  idx_[17] = 9;
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "dtype code 9"});
  idx_[17] = 7;  // float32: a Megatron code, but not token ids
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "float32"});
}

TEST_F(CorruptIndex, PointerPastTheEnd) {
  const int64_t far = 1000;
  std::memcpy(idx_.data() + 34 + 2 * 4 + 8, &far, 8);  // second sequence pointer
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".bin", "sequence 1", "past the end"});
}

TEST_F(CorruptIndex, TruncatedBin) {
  spit(prefix_ + ".bin", bin_.substr(0, bin_.size() - 2));
  expect_error({prefix_ + ".bin", "sequence 1", "past the end"});
}

TEST_F(CorruptIndex, MisalignedPointer) {
  const int64_t odd = 3;
  std::memcpy(idx_.data() + 34 + 2 * 4 + 8, &odd, 8);
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "sequence_pointers[1]"});
}

TEST_F(CorruptIndex, DocumentIndicesOutOfOrder) {
  const int64_t big = 5;
  std::memcpy(idx_.data() + 34 + 2 * 4 + 2 * 8 + 8, &big, 8);  // document_indices[1]
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "document_indices[1]"});
}

TEST_F(CorruptIndex, HugeCountsDoNotOverflow) {
  const uint64_t huge = ~uint64_t{0} / 4;
  std::memcpy(idx_.data() + 18, &huge, 8);
  spit(prefix_ + ".idx", idx_);
  expect_error({prefix_ + ".idx", "sequence count"});
}

TEST_F(CorruptIndex, MissingFile) {
  fs::remove(prefix_ + ".bin");
  expect_error({prefix_ + ".bin", "cannot open"});
}

TEST(IndexedDatasetWriter, RejectsIdsOutsideTheVocabulary) {
  const std::string prefix = testing::temp_dir("idx") + "/oov";
  IndexedDatasetWriter w(prefix, 10);
  w.add_document(std::vector<int32_t>{1, 2});
  try {
    w.add_document(std::vector<int32_t>{3, 10});
    FAIL() << "accepted id 10 with vocabulary 10";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("document 1 token 1 is id 10"), std::string::npos) << e.what();
  }
  EXPECT_THROW(w.add_document(std::vector<int32_t>{-1}), Error);
  EXPECT_EQ(w.document_count(), 1);
}

TEST(IndexedDatasetWriter, UnfinishedWriterLeavesNothing) {
  const std::string dir = testing::temp_dir("idx");
  {
    IndexedDatasetWriter w(dir + "/partial", 10);
    w.add_document(std::vector<int32_t>{1, 2});
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary files left behind";
}

}  // namespace
}  // namespace mambalm
