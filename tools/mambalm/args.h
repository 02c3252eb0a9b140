// Command-line options for the subcommands: each declares its options with help text; parsing
// rejects unknown options and malformed values with a one-line error that names the option.
// The readers below (ranges, lists, sizes) are written once here so that every command words
// its errors the same way: "mambalm <command>: option --name ...".
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
  // `more`: a shared group (placement_options(), ...) listed after the command's own options.
  Args(std::string command, std::string usage, std::vector<OptionSpec> options, const std::vector<OptionSpec>& more = {});

  // Parses argv after the subcommand name. Returns false if --help was asked (help printed).
  bool parse(int argc, char** argv);
  bool parse(const std::vector<std::string>& tokens);
  // Where an option's value came from when not the command line ("run.toml:3", see
  // run_file.h): errors about the value name it.
  void set_origin(const std::string& name, const std::string& origin);
  const std::vector<OptionSpec>& options() const { return options_; }
  const std::string& command() const { return command_; }

  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::string required(const std::string& name) const;
  // Every value of an option given several times ("--json-key a --json-key b"), in order; str()
  // and the typed readers see the last one.
  std::vector<std::string> all(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  double real(const std::string& name, double fallback) const;
  // An integer in [lo, hi]; outside it, an error naming the option, the range and `hint`.
  int64_t integer_in(const std::string& name, int64_t fallback, int64_t lo, int64_t hi, const std::string& hint = "") const;
  int64_t positive(const std::string& name, int64_t fallback) const;  // an integer >= 1
  // A finite number in [lo, hi]; outside it, an error naming the option, the range and `hint`.
  double real_in(const std::string& name, double fallback, double lo, double hi, const std::string& hint = "") const;
  // A seed: an integer in [0, 2^63).
  uint64_t seed(const std::string& name, uint64_t fallback) const;
  // Comma-separated positive sizes, K = x1024 ("1K,4K,32K"), each at most `max`; `fallback` is
  // parsed when absent.
  std::vector<int64_t> sizes(const std::string& name, const std::string& fallback = "", int64_t max = INT64_MAX) const;
  // Comma-separated numbers ("0,0.5,1"), each in [lo, hi]; `fallback` when absent.
  std::vector<double> reals(const std::string& name, std::vector<double> fallback = {}, double lo = -1e300, double hi = 1e300) const;
  bool flag(const std::string& name) const { return has(name); }
  const std::vector<std::string>& positional() const { return positional_; }
  void print_help() const;
  // "mambalm <command>": where an error about the command line as a whole points.
  std::string where() const { return "mambalm " + command_; }

 private:
  const OptionSpec* find(const std::string& name) const;
  std::string option_label(const std::string& name) const;  // "option --name (from FILE:LINE)"
  std::string command_;
  std::string usage_;
  std::vector<OptionSpec> options_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_values_;
  std::vector<std::string> positional_;
  std::map<std::string, std::string> origins_;
};

// "a.txt,,b/*.jsonl" -> {"a.txt", "b/*.jsonl"}: the items of a comma-separated list, empty
// ones skipped (a trailing comma is harmless).
std::vector<std::string> split_list(const std::string& text);

}  // namespace mambalm::cli
