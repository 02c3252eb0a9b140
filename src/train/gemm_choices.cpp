#include "train/gemm_choices.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/hex.h"
#include "io/atomic_file.h"
#include "ops/ops.h"

namespace mambalm {

namespace {
constexpr const char* kMagic = "mambalm gemm choices 1";
constexpr size_t kAlgoWords = std::tuple_size_v<decltype(ops::GemmChoice::algo)>;

// A decimal count without sign or spaces, at most 9 digits.
bool parse_count(const std::string& s, int& v) {
  if (s.empty() || s.size() > 9) return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  return true;
}

// "KEY HEX RANK/OF": exactly three fields separated by single spaces.
bool parse_line(const std::string& line, std::string& key, ops::GemmChoice& c) {
  const size_t s1 = line.find(' '), s2 = s1 == std::string::npos ? s1 : line.find(' ', s1 + 1);
  if (s1 == 0 || s2 == std::string::npos || line.find(' ', s2 + 1) != std::string::npos) return false;
  key = line.substr(0, s1);
  const std::string hex = line.substr(s1 + 1, s2 - s1 - 1), ranks = line.substr(s2 + 1);
  if (hex.size() != 16 * kAlgoWords) return false;
  for (size_t i = 0; i < kAlgoWords; ++i)
    if (!parse_hex16(std::string_view(hex).substr(16 * i, 16), c.algo[i])) return false;
  const size_t slash = ranks.find('/');
  if (slash == std::string::npos || !parse_count(ranks.substr(0, slash), c.rank) ||
      !parse_count(ranks.substr(slash + 1), c.of))
    return false;
  return c.of >= 1 && c.rank < c.of;
}

// Parses the file and, where `pin`, pins its choices; returns why it could not, or "".
std::string read_and_pin(const std::string& path, bool pin) {
  ops::GemmChoices choices;
  std::string why = parse_gemm_choices(io::read_text_file(path), choices);
  if (why.empty() && pin) why = ops::pin_gemm_choices(choices);
  return why;
}
}  // namespace

std::string gemm_choices_path(const std::string& run_dir) {
  return (std::filesystem::path(run_dir) / "gemm_choices.txt").string();
}

std::string format_gemm_choices(const ops::GemmChoices& choices) {
  if (choices.by_shape.empty()) return "";
  std::string out = std::string(kMagic) + "\n" + choices.device + "\n";
  for (const auto& [key, c] : choices.by_shape) {
    out += key + " ";
    for (uint64_t word : c.algo) out += hex16(word);
    out += " " + std::to_string(c.rank) + "/" + std::to_string(c.of) + "\n";
  }
  return out;
}

std::string parse_gemm_choices(const std::string& text, ops::GemmChoices& out) {
  std::istringstream in(text);
  std::string magic, device, line;
  std::getline(in, magic);
  if (magic != kMagic) return "not a GEMM choices file (its first line is not '" + std::string(kMagic) + "')";
  if (!std::getline(in, device) || device.rfind("device ", 0) != 0) return "no device line after the header";
  ops::GemmChoices read;
  read.device = device;
  for (int number = 3; std::getline(in, line); ++number) {
    std::string key;
    ops::GemmChoice c;
    if (!parse_line(line, key, c)) return "line " + std::to_string(number) + " is not 'KEY HEX RANK/OF': " + line;
    if (!read.by_shape.emplace(key, c).second) return "line " + std::to_string(number) + " repeats the shape " + key;
  }
  out = std::move(read);
  return "";
}

void pin_saved_gemm_choices(const std::string& run_dir, bool say) {
  const std::string path = gemm_choices_path(run_dir);
  if (!std::filesystem::exists(path)) return;
  const std::string why = read_and_pin(path, true);
  if (!why.empty() && say)
    std::fprintf(stderr,
                 "warning: %s not used (%s); the GEMM algorithms are chosen again, so the losses may differ from the "
                 "uninterrupted run's in the last bits\n",
                 path.c_str(), why.c_str());
}

void pin_gemm_choices_file(const std::string& path, bool on_gpu) {
  const std::string why = read_and_pin(path, on_gpu);
  check(why.empty(), path, "cannot be used: " + why, "give a gemm_choices.txt made on this GPU and cuBLASLt, or --gemm-algos timed");
}

void GemmChoicesWriter::save() {
  std::string text = format_gemm_choices(ops::gemm_choices());
  if (text.empty() || text == written_) return;
  io::write_file_atomically(path_, text);
  written_ = std::move(text);
}

}  // namespace mambalm
