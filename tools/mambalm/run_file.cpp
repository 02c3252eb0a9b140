// Run files (run_file.h): argv tokens back to TOML text, and --config expanded. Needs no TOML
// library: run.toml is written by hand (numbers as written, strings as TOML basic strings), so
// every build saves its runs' options, with or without toml++ (run_file_toml.cpp reads them).
#include "run_file.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string_view>

#include "core/error.h"

namespace mambalm::cli {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Digits as TOML writes an integer's (or an exponent's) digits: no leading zero unless alone,
// single underscores between digits.
bool toml_digits(std::string_view s, bool leading_zero_ok) {
  if (s.empty() || s.front() == '_' || s.back() == '_' || s.find("__") != std::string_view::npos) return false;
  std::string plain;
  for (char c : s)
    if (c != '_') plain += c;
  if (!all_digits(plain)) return false;
  return leading_zero_ok || plain.size() == 1 || plain[0] != '0';
}

// True when `text` is a TOML decimal integer or float as written (TOML 1.0: [+-]int, then
// .digits and/or e[+-]digits), so that run.toml keeps 3e-4 a number and "007" a string.
bool reads_as_toml_number(const std::string& text) {
  std::string_view s(text);
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  const size_t int_end = s.find_first_of(".eE");
  if (!toml_digits(s.substr(0, int_end), false)) return false;
  if (int_end == std::string_view::npos) return true;
  s.remove_prefix(int_end);
  if (s[0] == '.') {
    const size_t frac_end = s.find_first_of("eE");
    if (!toml_digits(s.substr(1, frac_end == std::string_view::npos ? std::string_view::npos : frac_end - 1), true))
      return false;
    if (frac_end == std::string_view::npos) return true;
    s.remove_prefix(frac_end);
  }
  s.remove_prefix(1);  // the e or E
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  return toml_digits(s, true);
}

// A TOML string as toml++ writes one: a literal string ('...', nothing escaped) when it can be
// (no ' and no control character but tab), else a basic string with escapes.
std::string toml_quoted(const std::string& value) {
  const bool literal = std::none_of(value.begin(), value.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == '\'' || (u < 0x20 && c != '\t') || u == 0x7f;
  });
  if (literal) return "'" + value + "'";
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// A key as TOML writes it: bare when it can be, else quoted.
std::string toml_key(const std::string& key) {
  const bool bare = !key.empty() && key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
                                        std::string::npos;
  return bare ? key : toml_quoted(key);
}

}  // namespace

std::vector<std::string> expand_run_file(int argc, char** argv, Args& args, const ListOptions& lists) {
  std::vector<std::string> command_line, config;
  std::set<std::string> given;  // options named on the command line: they override the file
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config") {
      check(i + 1 < argc, args.where(), "option --config needs a value (FILE)");
      config.push_back(argv[++i]);
      continue;
    }
    if (a.rfind("--config=", 0) == 0) {
      config.push_back(a.substr(9));
      continue;
    }
    if (a.rfind("--", 0) == 0) given.insert(a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2));
    command_line.push_back(a);
  }
  if (config.empty()) return command_line;
  check(config.size() == 1, args.where(), "option --config is given " + std::to_string(config.size()) + " times",
        "give one run file; override its options on the command line");
  std::vector<std::pair<std::string, std::string>> origins;
  std::vector<std::string> tokens = run_file_tokens(config.front(), args, lists, &origins);
  for (const auto& [name, where] : origins)
    if (!given.count(name)) args.set_origin(name, where);
  tokens.insert(tokens.end(), command_line.begin(), command_line.end());
  return tokens;
}

std::string run_file_text(const Args& args, const std::set<std::string>& leave_out, const ListOptions& lists) {
  std::ostringstream out;
  out << "# mambalm " << args.command() << " run file: the options of this run (run file and command line).\n"
      << "# Repeat the run with: mambalm " << args.command() << " --config run.toml\n";
  for (const OptionSpec& o : args.options()) {
    if (!args.has(o.name) || leave_out.count(o.name)) continue;
    if (o.value_name.empty()) {
      out << o.name << " = true\n";
      continue;
    }
    const std::string value = args.str(o.name);
    std::vector<std::string> words;
    std::istringstream split(value);
    std::string joined;
    for (std::string w; split >> w;) {
      joined += (joined.empty() ? "" : " ") + w;
      words.push_back(w);
    }
    if (lists.count(o.name) && words.size() > 1 && joined == value) {  // it joins back to the value exactly
      out << o.name << " = [";
      for (size_t i = 0; i < words.size(); ++i) {
        out << (i ? ", " : "");
        if (reads_as_toml_number(words[i])) {
          out << words[i];  // as written: 0.7 stays 0.7
        } else {
          out << toml_quoted(words[i]);
        }
      }
      out << "]\n";
      continue;
    }
    if (reads_as_toml_number(value)) {
      out << o.name << " = " << value << "\n";
    } else {
      out << toml_key(o.name) << " = " << toml_quoted(value) << "\n";
    }
  }
  return out.str();
}

}  // namespace mambalm::cli
