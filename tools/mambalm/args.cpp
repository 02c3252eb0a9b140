#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace mambalm::cli {

Args::Args(std::string command, std::string usage, std::vector<OptionSpec> options)
    : command_(std::move(command)), usage_(std::move(usage)), options_(std::move(options)) {}

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
    if (!spec) fail("mambalm " + command_, "unknown option --" + name, "see 'mambalm " + command_ + " --help'");
    if (spec->value_name.empty()) {
      check(!inline_value, "mambalm " + command_, "option --" + name + " takes no value");
      values_[name] = "1";
      continue;
    }
    if (!inline_value) {
      check(i + 1 < argc, "mambalm " + command_, "option --" + name + " needs a value (" + spec->value_name + ")");
      value = argv[++i];
    }
    values_[name] = value;
  }
  return true;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& name) const {
  check(has(name), "mambalm " + command_, "missing required option --" + name, "see 'mambalm " + command_ + " --help'");
  return str(name);
}

int64_t Args::integer(const std::string& name, int64_t fallback) const {
  if (!has(name)) return fallback;
  const std::string& s = values_.at(name);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  check(!s.empty() && *end == '\0' && errno == 0, "mambalm " + command_, "option --" + name + ": '" + s + "' is not an integer");
  return v;
}

double Args::real(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string& s = values_.at(name);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  check(!s.empty() && *end == '\0' && std::isfinite(v), "mambalm " + command_, "option --" + name + ": '" + s + "' is not a number");
  return v;
}

void Args::print_help() const {
  std::printf("usage: mambalm %s %s\n\noptions:\n", command_.c_str(), usage_.c_str());
  for (const OptionSpec& o : options_) {
    std::string left = "--" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
    std::printf("  %-28s %s\n", left.c_str(), o.help.c_str());
  }
  std::printf("  %-28s %s\n", "--help", "show this help");
}

}  // namespace mambalm::cli
