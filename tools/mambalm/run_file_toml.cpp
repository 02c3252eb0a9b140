// Run files (run_file.h) read with Debian's toml++: a TOML table to argv tokens. Built only when
// CMake finds toml++ (MAMBALM_TOML); run_file_no_toml.cpp stands in for it otherwise.
#include "run_file.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

#include <toml++/toml.h>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::cli {

namespace {

std::string at(const std::string& path, const toml::source_region& where) {
  return where.begin.line > 0 ? path + ":" + std::to_string(where.begin.line) : path;
}

// The shortest text that reads back as the same double (3e-3 -> "0.003").
std::string number_text(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "true/false";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

// A scalar (string, integer or float) as the text a command-line value would be; nullopt for
// any other type.
std::optional<std::string> scalar_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) return number_text(f->get());
  return std::nullopt;
}

}  // namespace

std::vector<std::string> run_file_tokens(const std::string& path, const Args& args, const ListOptions& lists,
                                         std::vector<std::pair<std::string, std::string>>* origins) {
  const std::string text = io::read_text_file(path);
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    fail(at(path, e.source()), "not a valid TOML file: " + std::string(e.description()),
         "write one option a line: name = value, strings in quotes");
  }
  const std::string help = "see 'mambalm " + args.command() + " --help' for the options";
  // Unknown keys first, all of them: a misspelt option must not be silently ignored.
  std::vector<std::string> unknown;
  std::string first_unknown_at;
  std::map<std::string, std::string> seen;  // option -> where it was set (to refuse seq_len + seq-len)
  std::vector<std::string> tokens;
  // In the file's order (toml::table is sorted by key), so that errors point at the first culprit.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first->source().begin.line < b.first->source().begin.line; });
  for (const auto& [key_ptr, node_ptr] : entries) {
    const toml::key& key = *key_ptr;
    const toml::node& node = *node_ptr;
    std::string name(key.str());
    std::replace(name.begin(), name.end(), '_', '-');
    const std::string where = at(path, key.source().begin.line > 0 ? key.source() : node.source());
    const auto spec = std::find_if(args.options().begin(), args.options().end(), [&](const OptionSpec& o) { return o.name == name; });
    check(name != "config", where, "a run file cannot name another run file (config)", "merge the two files");
    check(!(node.is_table() && spec == args.options().end()), where, "[" + std::string(key.str()) + "]: a run file has no tables",
          "write the options at the top, before any [section]");
    if (spec == args.options().end()) {
      if (unknown.empty()) first_unknown_at = where;
      unknown.push_back(std::string(key.str()));
      continue;
    }
    if (auto [it, fresh] = seen.emplace(name, where); !fresh)
      fail(where, "option '" + name + "' is set twice (also at " + it->second + ")", "keep one of them");
    const std::string option = "option '" + name + "'";
    if (spec->value_name.empty()) {  // a flag
      const auto* b = node.as_boolean();
      check(b != nullptr, where, option + " is a flag: write " + name + " = true or false, not " + type_name(node));
      if (b->get()) tokens.push_back("--" + name);
    } else {
      std::string value;
      if (const auto* array = node.as_array()) {
        check(lists.count(name) > 0, where, option + " takes one value (" + spec->value_name + "), not an array");
        for (const toml::node& item : *array) {
          const std::optional<std::string> t = scalar_text(item);
          check(t.has_value(), at(path, item.source()),
                option + ": array items are strings or numbers, not " + std::string(type_name(item)));
          value += (value.empty() ? "" : " ") + *t;
        }
      } else {
        const std::optional<std::string> t = scalar_text(node);
        check(t.has_value(), where,
              option + " takes a value (" + spec->value_name + "), not " + type_name(node),
              "write " + name + " = VALUE, strings in quotes");
        value = *t;
      }
      tokens.push_back("--" + name);
      tokens.push_back(value);
    }
    if (origins) origins->emplace_back(name, where);
  }
  if (!unknown.empty()) {
    std::string list;
    for (const std::string& k : unknown) list += (list.empty() ? "'" : ", '") + k + "'";
    fail(first_unknown_at, std::string(unknown.size() == 1 ? "unknown option " : "unknown options ") + list + " for mambalm " +
                               args.command(),
         help);
  }
  return tokens;
}

}  // namespace mambalm::cli
