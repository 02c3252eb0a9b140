#include "core/hex.h"

namespace mambalm {

std::string hex16(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[size_t(i)] = kDigits[v & 15];
  return out;
}

bool parse_hex16(std::string_view text, uint64_t& v) {
  if (text.size() != 16) return false;
  uint64_t r = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return false;
    r = (r << 4) | uint64_t(d);
  }
  v = r;
  return true;
}

}  // namespace mambalm
