// A 64-bit value as 16 lowercase hex digits (run ids, file fingerprints, phase markers, GEMM
// algorithm words) and back.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mambalm {

std::string hex16(uint64_t v);
// Exactly 16 hex digits (either case) into `v`; false for anything else (no sign, no spaces).
bool parse_hex16(std::string_view text, uint64_t& v);

}  // namespace mambalm
