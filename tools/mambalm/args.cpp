// Option parsing and the typed readers of args.h.
#include "args.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <stdexcept>

#include "core/error.h"
#include "core/limits.h"
#include "io/weights.h"

namespace mambalm::cli {

namespace {
const OptionSpec kAllowNonfinite{"allow-nonfinite", "", "load weights holding NaN or infinity (with a warning) instead of refusing them"};
// 0.5, 1, 1e+06: the shortest form that reads back.
std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

Args::Args(std::string command, std::string usage, std::vector<OptionSpec> options, const std::vector<OptionSpec>& more)
    : command_(std::move(command)), usage_(std::move(usage)), options_(std::move(options)) {
  options_.insert(options_.end(), more.begin(), more.end());
  // Every command that loads model weights refuses NaN/Inf in them unless told otherwise.
  for (const char* loads : {"forward", "generate", "train", "grad", "bench", "eval"})
    if (command_ == loads) options_.push_back(kAllowNonfinite);
  // One entry per option: a second would print a second help line and never be looked up.
  std::set<std::string> seen;
  for (const OptionSpec& o : options_)
    if (!seen.insert(o.name).second) throw std::logic_error("mambalm " + command_ + ": option --" + o.name + " is declared twice");
}

const OptionSpec* Args::find(const std::string& name) const {
  for (const OptionSpec& o : options_)
    if (o.name == name) return &o;
  return nullptr;
}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      print_help();
      return false;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const OptionSpec* spec = find(name);
    if (!spec) fail(where(), "unknown option --" + name, "see 'mambalm " + command_ + " --help'");
    if (spec->value_name.empty()) {
      check(!inline_value, where(), option_label(name) + " takes no value");
      values_[name] = "1";
      all_values_[name].push_back("1");
      continue;
    }
    if (!inline_value) {
      check(i + 1 < argc, where(), option_label(name) + " needs a value (" + spec->value_name + ")");
      value = argv[++i];
    }
    values_[name] = value;
    all_values_[name].push_back(value);
  }
  if (has(kAllowNonfinite.name)) io::allow_nonfinite_weights(true);
  return true;
}

bool Args::parse(const std::vector<std::string>& tokens) {
  std::vector<char*> argv;
  for (const std::string& t : tokens) argv.push_back(const_cast<char*>(t.c_str()));
  return parse(static_cast<int>(argv.size()), argv.data());
}

void Args::set_origin(const std::string& name, const std::string& origin) { origins_[name] = origin; }

std::string Args::option_label(const std::string& name) const {
  auto it = origins_.find(name);
  return "option --" + name + (it == origins_.end() ? "" : " (from " + it->second + ")");
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& name) const {
  check(has(name), where(), "missing required option --" + name, "see 'mambalm " + command_ + " --help'");
  return str(name);
}

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = all_values_.find(name);
  return it == all_values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Args::integer(const std::string& name, int64_t fallback) const {
  if (!has(name)) return fallback;
  const std::string& s = values_.at(name);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  // strtoll skips leading blanks; an option value is the number alone.
  check(!s.empty() && !std::isspace(static_cast<unsigned char>(s[0])) && *end == '\0', where(),
        option_label(name) + ": '" + s + "' is not an integer");
  check(errno == 0, where(), option_label(name) + ": " + s + " is out of range", "integers are below 2^63");
  return v;
}

double Args::real(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string& s = values_.at(name);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  check(!s.empty() && !std::isspace(static_cast<unsigned char>(s[0])) && *end == '\0' && std::isfinite(v), where(),
        option_label(name) + ": '" + s + "' is not a finite number");
  check(errno == 0 || v != 0, where(), option_label(name) + ": " + s + " is too small to represent");
  return v;
}

double Args::real_in(const std::string& name, double fallback, double lo, double hi, const std::string& hint) const {
  const double v = real(name, fallback);
  if (v >= lo && v <= hi) return v;
  fail(where(), option_label(name) + " must be in [" + format_number(lo) + ", " + format_number(hi) + "], got " + str(name), hint);
}

uint64_t Args::seed(const std::string& name, uint64_t fallback) const {
  return static_cast<uint64_t>(integer_in(name, static_cast<int64_t>(fallback), 0, std::numeric_limits<int64_t>::max(),
                                          "a seed is an integer in [0, 2^63)"));
}

int64_t Args::integer_in(const std::string& name, int64_t fallback, int64_t lo, int64_t hi, const std::string& hint) const {
  const int64_t v = integer(name, fallback);
  if (v >= lo && v <= hi) return v;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string range = hi != kMax ? "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"
                            : lo == 1  ? "positive"
                                       : ">= " + std::to_string(lo);
  fail(where(), option_label(name) + " must be " + range + ", got " + std::to_string(v), hint);
}

int64_t Args::positive(const std::string& name, int64_t fallback) const {
  return integer_in(name, fallback, 1, std::numeric_limits<int64_t>::max());
}

std::vector<int64_t> Args::sizes(const std::string& name, const std::string& fallback, int64_t max) const {
  const std::string text = str(name, fallback);
  std::vector<int64_t> out;
  for (std::string item : split_list(text)) {
    int64_t scale = 1;
    if (item.back() == 'K' || item.back() == 'k') {
      scale = 1024;
      item.pop_back();
    }
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    check(!item.empty() && !std::isspace(static_cast<unsigned char>(item[0])) && *end == '\0' && errno == 0 && v > 0, where(),
          option_label(name) + ": '" + text + "' is not a comma-separated list of positive sizes", "e.g. 1K,4K,32K");
    out.push_back(limits::checked_mul(static_cast<int64_t>(v), scale, where(), option_label(name) + " size " + item));
    check(out.back() <= max, where(),
          option_label(name) + ": size " + std::to_string(out.back()) + " is larger than the limit " + std::to_string(max));
  }
  check(!out.empty() || !has(name), where(), option_label(name) + ": empty list");
  return out;
}

std::vector<double> Args::reals(const std::string& name, std::vector<double> fallback, double lo, double hi) const {
  if (!has(name)) return fallback;
  std::vector<double> out;
  for (const std::string& item : split_list(str(name))) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    check(!std::isspace(static_cast<unsigned char>(item[0])) && *end == '\0' && std::isfinite(v), where(),
          option_label(name) + ": '" + item + "' is not a finite number", "give a comma-separated list such as 0,0.5,1");
    check(v >= lo && v <= hi, where(),
          option_label(name) + ": " + item + " is outside [" + format_number(lo) + ", " + format_number(hi) + "]");
    out.push_back(v);
  }
  check(!out.empty(), where(), option_label(name) + ": empty list");
  return out;
}

void Args::print_help() const {
  std::printf("usage: mambalm %s %s\n\noptions:\n", command_.c_str(), usage_.c_str());
  for (const OptionSpec& o : options_) {
    std::string left = "--" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
    std::printf("  %-28s %s\n", left.c_str(), o.help.c_str());
  }
  std::printf("  %-28s %s\n", "--help", "show this help");
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace mambalm::cli
