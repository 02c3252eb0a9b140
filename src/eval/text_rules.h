// Python's string rules that lm-evaluation-harness's scores depend on, for UTF-8 text:
//   len(str)              -> code points (acc_norm divides by it, not by bytes);
//   str.isspace / rstrip  -> Unicode whitespace (a context's trailing whitespace moves to the
//                            continuation, and that includes U+00A0, U+3000, ...);
//   re.split(r"\s+", doc) -> the word count of word_perplexity: one more than the number of
//                            whitespace runs, so leading and trailing whitespace each add an
//                            empty "word" (" a b " is 4 words: '', 'a', 'b', '').
// Invalid UTF-8 is an error naming the byte offset (Python could not hold such a str).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mambalm::eval {

// Code points of `text`; `where` names the text in the error on invalid UTF-8.
int64_t python_len(std::string_view text, const std::string& where = "text");

// Python's str.isspace() for one code point (the characters re's \s matches in a str pattern).
bool python_isspace(char32_t c);

// Byte length of text.rstrip() (Unicode whitespace removed from the end).
size_t python_rstrip_size(std::string_view text, const std::string& where = "text");

// len(re.split(r"\s+", text)).
int64_t lm_eval_word_count(std::string_view text, const std::string& where = "text");

// Throws (naming `where` and the byte offset) unless `text` is valid UTF-8.
void check_utf8(std::string_view text, const std::string& where);

}  // namespace mambalm::eval
