// mambalm tokenize: text on stdin -> token ids on stdout (or ids -> text with --decode), the
// tool for checking tokenizer parity by hand.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

namespace {

std::vector<int32_t> parse_ids(const std::string& text, int64_t vocab_size) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  size_t index = 0;
  while (in >> word) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || id < 0 || id >= vocab_size)
      fail("stdin", "token " + std::to_string(index) + " '" + word + "' is not an id in [0, " +
                        std::to_string(vocab_size) + ")",
           "--decode reads whitespace-separated token ids");
    ids.push_back(static_cast<int32_t>(id));
    ++index;
  }
  return ids;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args args("tokenize", "--tokenizer PATH [--decode] [--special] [--add-special-tokens] < input",
            {{"tokenizer", "PATH", "model directory, tokenizer.json, .model, .tiktoken, encoder.json, or 'bytes'"},
             {"decode", "", "read token ids on stdin and write the text"},
             {"special", "", "match special-token text such as <|endoftext|> as one token"},
             {"add-special-tokens", "", "add the BOS/EOS the tokenizer's post-processor asks for, as transformers' encode(text) does"}});
  if (!args.parse(argc, argv)) return 0;
  auto tokenizer = open_tokenizer(args.required("tokenizer"));
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (args.flag("decode")) {
    const std::string text = tokenizer->decode(parse_ids(input, tokenizer->vocab_size()));
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  std::vector<int32_t> ids = tokenizer->encode(input, args.flag("special"));
  if (args.flag("add-special-tokens")) ids = tokenizer->add_special_tokens(std::move(ids));
  std::string out;
  out.reserve(ids.size() * 6);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace mambalm::cli
