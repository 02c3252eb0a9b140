// Data in the forms people have it (issue 17, point 6): JSON Lines with the text under any key
// (prepare --json-key, several joined), gzip and zstd files (recognised by their bytes, read
// bit for bit as their uncompressed selves, a cut or damaged file one clear error), tokenizer
// train over directories, globs and compressed files, and SentencePiece encoding cut into words
// (sentencepiece_tokenizer.cpp) giving exactly the library's whole-text ids, with any thread count.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/prepare.h"
#include "data/text_documents.h"
#include "io/indexed_dataset.h"
#include "io/input_files.h"
#include "test_util.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"

namespace mambalm {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;
using testing::run_command;

void expect_one_line_error(const testing::CommandResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
}

// The documents of a dataset as text (bytes tokenizer: one id per byte, EOD 257 dropped).
std::vector<std::string> documents(const std::string& prefix) {
  io::IndexedDataset ds(prefix);
  std::vector<std::string> out;
  for (int64_t d = 0; d < ds.document_count(); ++d) {
    std::string text;
    for (int32_t id : ds.document_tokens(d))
      if (id < 256) text.push_back(static_cast<char>(id));
    out.push_back(text);
  }
  return out;
}

// Many different pseudo-words, lines of a few each: enough pieces for any vocabulary size used here.
std::string varied_text(int lines) {
  std::string text;
  uint64_t x = 12345;
  for (int i = 0; i < lines; ++i) {
    for (int w = 0; w < 8; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const int len = 2 + static_cast<int>((x >> 60) % 7);
      for (int c = 0; c < len; ++c) text.push_back(static_cast<char>('a' + ((x >> (8 + 5 * c)) % 26)));
      text += w == 7 ? ".\n" : " ";
    }
  }
  return text;
}

std::string cache_dir() {
  const char* c = std::getenv("MAMBALM_CACHE");
  if (c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/nonexistent") + "/.cache/mambalm";
}

TEST(PrepareJsonKey, AnyFieldAndSeveralJoinedByABlankLine) {
  const std::string dir = testing::temp_dir("prepare-json-key");
  testing::write_file(dir + "/in/a.jsonl",
        "{\"title\": \"First\", \"body\": \"one \\u00e9\", \"text\": \"ignored\"}\n"
        "\n"
        "{\"title\": \"\", \"body\": \"no title\"}\n"
        "{\"body\": \"2\", \"title\": \"Second\"}\n");
  auto r = run_cli("prepare --tokenizer bytes --input " + dir + "/in --out " + dir + "/body --valid-fraction 0 --json-key body");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(documents(dir + "/body"), (std::vector<std::string>{"one \xc3\xa9", "no title", "2"}));
  r = run_cli("prepare --tokenizer bytes --input " + dir + "/in --out " + dir + "/both --valid-fraction 0 --json-key title --json-key=body");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Joined by data::kJsonKeyJoiner ("\n\n"); an empty field is left out of the join.
  EXPECT_EQ(std::string(data::kJsonKeyJoiner), "\n\n");
  EXPECT_EQ(documents(dir + "/both"), (std::vector<std::string>{"First\n\none \xc3\xa9", "no title", "Second\n\n2"}));
  // The default is "text": these records have none, and the error says how to name another.
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/in/a.jsonl --out " + dir + "/x --valid-fraction 0"),
                        {"a.jsonl:3", "no \"text\" field", "--json-key"});
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/in/a.jsonl --out " + dir + "/x --json-key title --json-key text"),
                        {"a.jsonl:3", "no \"text\" field"});
  testing::write_file(dir + "/in/b.jsonl", "{\"title\": 7, \"body\": \"x\"}\n");
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/in/b.jsonl --out " + dir + "/x --json-key title"),
                        {"b.jsonl:1", "\"title\" is a number, not a string"});
  testing::write_file(dir + "/in/c.jsonl", "{\"title\": \"\", \"body\": \"\"}\n");
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/in/c.jsonl --out " + dir + "/x --json-key title --json-key body"),
                        {"c.jsonl:1", "every --json-key field is empty"});
  EXPECT_FALSE(fs::exists(dir + "/x.bin"));
  fs::remove_all(dir);
}

// A corpus of plain text and JSON Lines, and the same files compressed by the gzip and zstd
// command-line tools (a .gz of several members too): prepare reads each to the same bytes.
TEST(PrepareCompressed, GzipAndZstdGiveTheUncompressedResultBitForBit) {
  if (run_command("command -v gzip && command -v zstd").exit_code != 0) GTEST_SKIP() << "needs the gzip and zstd tools";
  const std::string dir = testing::temp_dir("prepare-compressed");
  std::string big;
  for (int i = 0; i < 4000; ++i) big += "Line " + std::to_string(i) + " of a longer file, caf\xc3\xa9 and more.\n\n";
  testing::write_file(dir + "/plain/a.txt", "First document.\nSecond line.\n");
  testing::write_file(dir + "/plain/b.jsonl", "{\"text\": \"json one\"}\n{\"text\": \"json two \\u00fc\"}\n");
  testing::write_file(dir + "/plain/c.txt", big);
  fs::create_directories(dir + "/gz");
  fs::create_directories(dir + "/zst");
  ASSERT_EQ(run_command("cd " + dir + "/plain && for f in a.txt b.jsonl; do gzip -c $f > ../gz/$f.gz; zstd -q -c $f > ../zst/$f.zst; done"
                        " && head -c 60000 c.txt | gzip -c > ../gz/c.txt.gz && tail -c +60001 c.txt | gzip -c >> ../gz/c.txt.gz"
                        " && zstd -q -c c.txt > ../zst/c.txt.zst")
                .exit_code,
            0);
  // Recognised by the bytes, not the name: a gzip file called .txt is read through too.
  fs::create_directories(dir + "/named");
  ASSERT_EQ(run_command("gzip -c " + dir + "/plain/a.txt > " + dir + "/named/a.txt && cp " + dir + "/zst/b.jsonl.zst " + dir +
                        "/named/b.jsonl.zst && cp " + dir + "/plain/c.txt " + dir + "/named/c.txt")
                .exit_code,
            0);
  std::string want;
  for (const char* form : {"plain", "gz", "zst", "named"}) {
    const std::string out = dir + "/out-" + form;
    auto r = run_cli("prepare --tokenizer bytes --input " + dir + "/" + form + " --out " + out + " --valid-fraction 0 --split-paragraphs --quiet");
    ASSERT_EQ(r.exit_code, 0) << form << ": " << r.err;
    const std::string got = testing::read_file(out + ".bin") + "|" + testing::read_file(out + ".idx");
    if (want.empty()) want = got;
    EXPECT_TRUE(got == want) << form << " gives a different dataset";
  }
  EXPECT_EQ(documents(dir + "/out-gz").size(), 4003u);
  EXPECT_EQ(io::read_input_file(dir + "/gz/c.txt.gz"), big) << "both gzip members";

  // Cut, damaged and misnamed files: one line naming the file and what is wrong with it.
  const std::string gz = testing::read_file(dir + "/gz/c.txt.gz"), zst = testing::read_file(dir + "/zst/c.txt.zst");
  fs::create_directories(dir + "/bad");
  testing::write_file(dir + "/bad/cut.txt.gz", gz.substr(0, gz.size() / 2));
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/bad/cut.txt.gz --out " + dir + "/x"),
                        {"cut.txt.gz", "truncated gzip"});
  testing::write_file(dir + "/bad/cut.txt.zst", zst.substr(0, zst.size() / 2));
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/bad/cut.txt.zst --out " + dir + "/x"),
                        {"cut.txt.zst", "truncated zstd"});
  std::string damaged = gz;
  for (size_t i = 20; i < 60; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5A);
  testing::write_file(dir + "/bad/damaged.txt.gz", damaged);
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/bad/damaged.txt.gz --out " + dir + "/x"),
                        {"damaged.txt.gz", "gzip"});
  damaged = zst;
  for (size_t i = 12; i < 40; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5A);
  testing::write_file(dir + "/bad/damaged.txt.zst", damaged);
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/bad/damaged.txt.zst --out " + dir + "/x"),
                        {"damaged.txt.zst", "zstd"});
  testing::write_file(dir + "/bad/plain.txt.gz", "not compressed at all\n");
  expect_one_line_error(run_cli("prepare --tokenizer bytes --input " + dir + "/bad/plain.txt.gz --out " + dir + "/x"),
                        {"plain.txt.gz", "the name says gzip"});
  EXPECT_FALSE(fs::exists(dir + "/x.bin") || fs::exists(dir + "/x_train.bin"));
  fs::remove_all(dir);
}

// tokenizer train takes what prepare takes: a directory, a glob, compressed files; the same
// lines give the same vocabulary.
TEST(TokenizerTrainInputs, DirectoriesGlobsAndCompressedFiles) {
  if (run_command("command -v gzip && command -v zstd").exit_code != 0) GTEST_SKIP() << "needs the gzip and zstd tools";
  const std::string dir = testing::temp_dir("tok-train-inputs");
  const std::string text = varied_text(3000);
  testing::write_file(dir + "/plain/part1.txt", text.substr(0, text.size() / 2));
  testing::write_file(dir + "/plain/part2.txt", text.substr(text.size() / 2));
  fs::create_directories(dir + "/packed");
  ASSERT_EQ(run_command("gzip -c " + dir + "/plain/part1.txt > " + dir + "/packed/part1.txt.gz && zstd -q -c " + dir +
                        "/plain/part2.txt > " + dir + "/packed/part2.txt.zst")
                .exit_code,
            0);
  const std::string train = "tokenizer train --vocab-size 400 --threads 1 --input ";
  auto r = run_cli(train + dir + "/plain/part1.txt," + dir + "/plain/part2.txt --out " + dir + "/files.model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli(train + dir + "/plain --out " + dir + "/dir.model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli(train + "'" + dir + "/plain/part*.txt' --out " + dir + "/glob.model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli(train + dir + "/packed --out " + dir + "/packed.model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string want = testing::read_file(dir + "/files.vocab");
  EXPECT_FALSE(want.empty());
  for (const char* name : {"dir", "glob", "packed"}) EXPECT_TRUE(testing::read_file(dir + "/" + name + ".vocab") == want) << name;
  // Errors name the input.
  expect_one_line_error(run_cli(train + "'" + dir + "/nothing*.txt' --out " + dir + "/x.model"), {"nothing*.txt", "matches no file"});
  testing::write_file(dir + "/bad/cut.txt.gz", testing::read_file(dir + "/packed/part1.txt.gz").substr(0, 100));
  expect_one_line_error(run_cli(train + dir + "/bad/cut.txt.gz --out " + dir + "/x.model"), {"cut.txt.gz", "truncated gzip"});
  EXPECT_FALSE(fs::exists(dir + "/x.model"));
  fs::remove_all(dir);
}

// Texts where cutting into words could go wrong if the rule were loose: runs of spaces, tabs,
// line breaks, no-break and ideographic spaces, combining accents after a space, digits,
// punctuation, leading and trailing blanks, long words, a 200 KB line.
std::vector<std::string> tricky_texts() {
  std::vector<std::string> t = {"",
                                " ",
                                "a",
                                " a b ",
                                "hello world",
                                "hello  world   again\tand\ttabs\nnew lines\r\nCRLF",
                                "  leading and trailing  ",
                                "x \xcc\x81 combining after a space, e \xcc\x81",
                                "no-break\xc2\xa0space and ideographic\xe3\x80\x80space",
                                "digits 12345 678 9, (brackets) [x] {y} \"quotes\" 'single' a-b c_d e.f",
                                "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 emoji",
                                "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
                                "a . b , c ! d ? e : f ; g"};
  std::string long_line;
  for (int i = 0; i < 20000; ++i) long_line += "word" + std::to_string(i % 53) + (i % 11 == 0 ? ", " : " ");
  t.push_back(long_line);
  return t;
}

// The default corpus's Moby Dick when fetched, else the texts above only.
std::vector<std::string> corpus_texts() {
  std::vector<std::string> texts = tricky_texts();
  const std::string moby = cache_dir() + "/corpus/moby-dick";
  if (fs::exists(moby))
    for (const auto& e : fs::directory_iterator(moby))
      if (texts.size() < 60) texts.push_back(testing::read_file(e.path().string()));
  return texts;
}

std::string train_model(const std::string& dir, const std::string& type, const std::string& extra = "") {
  std::string text = varied_text(5000);
  for (const std::string& t : corpus_texts()) text += t + "\n";
  testing::write_file(dir + "/train.txt", text);
  auto r = run_cli("tokenizer train --input " + dir + "/train.txt --vocab-size 1200 --threads 1 --type " + type + " --out " + dir +
                   "/" + type + ".model" + extra);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir + "/" + type + ".model";
}

// Encoding cut into words (BPE) and whole (unigram) equals the library's encoding of the whole text.
TEST(SentencePieceSpeed, WordLocalEncodingEqualsTheLibrary) {
  const std::string dir = testing::temp_dir("sp-word-local");
  for (const std::string type : {"bpe", "unigram"}) {
    const std::string model = train_model(dir, type);
    sentencepiece::SentencePieceProcessor reference;
    ASSERT_TRUE(reference.Load(model).ok());
    auto tok = open_tokenizer(model);
    // The BPE model mambalm trains takes the word path (else this test would compare the library
    // with itself); unigram keeps the whole-text path.
    EXPECT_EQ(sentencepiece_encodes_by_words(*tok), type == "bpe") << type;
    for (int pass = 0; pass < 2; ++pass) {  // the second pass hits the per-thread word cache
      for (const std::string& text : corpus_texts()) {
        std::vector<int> want;
        ASSERT_TRUE(reference.Encode(text, &want).ok());
        const std::vector<int32_t> got = tok->encode(text);
        ASSERT_EQ(got, std::vector<int32_t>(want.begin(), want.end())) << type << " on: " << text.substr(0, 80);
      }
    }
  }
  fs::remove_all(dir);
}

// prepare with a SentencePiece model: the same tokens with 1 and 2 threads, and the same as the
// library gives each whole document.
TEST(SentencePieceSpeed, PrepareTokensIndependentOfThreadsAndEqualToTheLibrary) {
  const std::string dir = testing::temp_dir("sp-prepare");
  const std::string model = train_model(dir, "bpe");
  std::vector<std::string> texts = corpus_texts();
  for (size_t i = 0; i < texts.size(); ++i)
    if (!texts[i].empty() && texts[i].find_first_not_of(" \t\r\n") != std::string::npos)
      testing::write_file(dir + "/docs/" + std::to_string(1000 + i) + ".txt", texts[i]);
  std::string bins[2];
  for (int threads : {1, 2}) {
    auto r = run_cli("prepare --tokenizer " + model + " --input " + dir + "/docs --out " + dir + "/ds" + std::to_string(threads) +
                     " --valid-fraction 0 --quiet --threads " + std::to_string(threads));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    bins[threads - 1] = testing::read_file(dir + "/ds" + std::to_string(threads) + ".bin");
  }
  EXPECT_TRUE(bins[0] == bins[1]) << "2 threads tokenized differently from 1 thread";
  sentencepiece::SentencePieceProcessor reference;
  ASSERT_TRUE(reference.Load(model).ok());
  io::IndexedDataset ds(dir + "/ds1");
  const std::vector<std::string> paths = data::expand_inputs({dir + "/docs"});
  ASSERT_EQ(ds.document_count(), static_cast<int64_t>(paths.size()));
  for (size_t d = 0; d < paths.size(); ++d) {
    std::vector<int> want;
    ASSERT_TRUE(reference.Encode(testing::read_file(paths[d]), &want).ok());
    want.push_back(reference.eos_id());
    EXPECT_EQ(ds.document_tokens(static_cast<int64_t>(d)), std::vector<int32_t>(want.begin(), want.end())) << paths[d];
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mambalm
