#include "tokenizer/chat_template/jinja_text.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace mambalm::jinja::text {

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(utf8::next(s, i));
  return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < cps.size(); ++i) utf8::append(out, cps[i]);
  return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps) { return from_code_points(cps, 0, cps.size()); }

size_t length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool is_space(uint32_t cp) {
  // Python's str.isspace(): bidirectional class WS, B or S, or category Zs.
  if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0) return true;
  if (cp < 0x1680) return false;
  return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

namespace {

template <typename F>
std::string map_cps(const std::string& s, F f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) utf8::append(out, static_cast<uint32_t>(f(static_cast<utf8proc_int32_t>(utf8::next(s, i)))));
  return out;
}

bool is_cased(uint32_t cp) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

}  // namespace

// Python's str.upper() uses full case mappings; the one that matters in practice: ß -> SS.
std::string upper(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const uint32_t cp = utf8::next(s, i);
    if (cp == 0xDF) out += "SS";
    else utf8::append(out, static_cast<uint32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}
std::string lower(const std::string& s) { return map_cps(s, utf8proc_tolower); }

std::string title(const std::string& s) {
  std::string out;
  bool previous_cased = false;
  for (size_t i = 0; i < s.size();) {
    const auto cp = static_cast<utf8proc_int32_t>(utf8::next(s, i));
    const bool cased = is_cased(static_cast<uint32_t>(cp));
    if (cased && !previous_cased && cp == 0xDF) out += "Ss";
    else utf8::append(out, static_cast<uint32_t>(cased ? (previous_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp)) : cp));
    previous_cased = cased;
  }
  return out;
}

std::string capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (size_t i = 0; i < s.size();) {
    const auto cp = static_cast<utf8proc_int32_t>(utf8::next(s, i));
    if (first && cp == 0xDF) out += "Ss";
    else utf8::append(out, static_cast<uint32_t>(first ? utf8proc_totitle(cp) : utf8proc_tolower(cp)));
    first = false;
  }
  return out;
}

std::string strip(const std::string& s, Side side, bool has_chars, const std::string& chars) {
  const std::vector<uint32_t> cps = code_points(s);
  const std::vector<uint32_t> set = code_points(chars);
  auto strippable = [&](uint32_t cp) {
    return has_chars ? std::find(set.begin(), set.end(), cp) != set.end() : is_space(cp);
  };
  size_t b = 0, e = cps.size();
  if (side != Side::Right)
    while (b < e && strippable(cps[b])) ++b;
  if (side != Side::Left)
    while (e > b && strippable(cps[e - 1])) --e;
  return from_code_points(cps, b, e);
}

std::vector<std::string> split(const std::string& s, bool has_sep, const std::string& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (has_sep) {
    size_t from = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t at = s.find(sep, from);
      if (at == std::string::npos) break;
      out.push_back(s.substr(from, at - from));
      from = at + sep.size();
    }
    out.push_back(s.substr(from));
    return out;
  }
  const std::vector<uint32_t> cps = code_points(s);
  size_t i = 0;
  while (true) {
    while (i < cps.size() && is_space(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(from_code_points(cps, i, cps.size()));  // Python keeps the rest's trailing spaces
      break;
    }
    size_t j = i;
    while (j < cps.size() && !is_space(cps[j])) ++j;
    out.push_back(from_code_points(cps, i, j));
    i = j;
  }
  return out;
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between code points (and at both ends)
    const std::vector<uint32_t> cps = code_points(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < cps.size()) utf8::append(out, cps[i]);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace mambalm::jinja::text
