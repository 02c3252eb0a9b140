// Command-line options for the subcommands: each declares its options with help text; parsing
// rejects unknown options and malformed values with a one-line error that names the option.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mambalm::cli {

struct OptionSpec {
  std::string name;        // without dashes: "max-tokens"
  std::string value_name;  // "N"; empty for a flag
  std::string help;
};

class Args {
 public:
  Args(std::string command, std::string usage, std::vector<OptionSpec> options);

  // Parses argv after the subcommand name. Returns false if --help was asked (help printed).
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::string required(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  double real(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return has(name); }
  const std::vector<std::string>& positional() const { return positional_; }
  void print_help() const;

 private:
  const OptionSpec* find(const std::string& name) const;
  std::string command_;
  std::string usage_;
  std::vector<OptionSpec> options_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace mambalm::cli
