// Python's str operations on UTF-8 text, by code point: len, indexing and slicing, upper,
// lower, title, capitalize, strip (Unicode whitespace as str.isspace() knows it) and split.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mambalm::jinja::text {

std::vector<uint32_t> code_points(const std::string& s);
std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end);
std::string from_code_points(const std::vector<uint32_t>& cps);
size_t length(const std::string& s);  // in code points

bool is_space(uint32_t cp);
std::string upper(const std::string& s);
std::string lower(const std::string& s);
std::string title(const std::string& s);       // str.title()
std::string capitalize(const std::string& s);  // str.capitalize()

enum class Side { Both, Left, Right };
// str.strip() (whitespace) or str.strip(chars) (any code point of `chars`) when has_chars.
std::string strip(const std::string& s, Side side, bool has_chars = false, const std::string& chars = "");

// str.split(): on runs of whitespace (no empty parts) when has_sep is false, else on `sep`.
std::vector<std::string> split(const std::string& s, bool has_sep, const std::string& sep, int64_t maxsplit);

// str.replace(old, new, count); count < 0 replaces all.
std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);

}  // namespace mambalm::jinja::text
