// A token id read from a JSON tokenizer file (tokenizer.json, encoder.json), range-checked where
// it enters: 4294967295 must not become int32 -1, nor 4294967296 become 0.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/limits.h"

namespace mambalm {

// The id in [0, limits::kMaxTokenId]; otherwise an error naming `where` and `what` (the token).
inline int32_t json_token_id(const nlohmann::json& v, const std::string& where, const std::string& what) {
  const std::string range = "[0, " + std::to_string(limits::kMaxTokenId) + "]";
  if (!v.is_number_integer()) fail(where, what + " has id " + v.dump() + ", not an integer", "ids are integers in " + range);
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(limits::kMaxTokenId)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() > limits::kMaxTokenId))
    fail(where, what + " has id " + v.dump() + ", out of range " + range, "the file is corrupt");
  return static_cast<int32_t>(v.get<int64_t>());
}

}  // namespace mambalm
