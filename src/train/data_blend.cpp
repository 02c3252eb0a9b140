// --data and --valid-data as one dataset or a weighted blend (data_blend.h).
#include "train/data_blend.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>

#include "core/error.h"

namespace mambalm {

namespace fs = std::filesystem;

namespace {

bool dataset_exists(const std::string& p) { return fs::exists(p + ".idx") && fs::exists(p + ".bin"); }

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The number `word` spells in full (strtod: "0.7", "3", "1e-2"); nullopt otherwise.
std::optional<double> number(const std::string& word) {
  const char* begin = word.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return std::nullopt;
  return v;
}

std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

std::vector<BlendPart> parse_data_blend(const std::string& spec, const std::string& option) {
  const std::vector<std::string> items = words(spec);
  check(!items.empty(), option, "is empty", "give a dataset PREFIX or WEIGHT PREFIX [WEIGHT PREFIX ...]");
  // One word, or a prefix that has spaces in it: a single dataset, as always.
  if (items.size() == 1 || dataset_exists(spec) || dataset_exists(spec + "_train")) return {{1.0, items.size() == 1 ? items[0] : spec}};
  const std::string form = "a blend is WEIGHT PREFIX [WEIGHT PREFIX ...], e.g. \"0.7 PREFIX_A 0.3 PREFIX_B\"";
  check(number(items[0]).has_value(), option,
        "'" + spec + "' is neither a dataset prefix nor a blend (its first item '" + items[0] + "' is not a weight)", form);
  check(items.size() % 2 == 0, option, "a blend of " + std::to_string(items.size()) + " items: weights and prefixes must pair up",
        form);
  std::vector<BlendPart> parts;
  double total = 0;
  for (size_t i = 0; i < items.size(); i += 2) {
    const std::optional<double> w = number(items[i]);
    const std::string which = "item " + std::to_string(i + 1) + " '" + items[i] + "'";
    check(w.has_value() && std::isfinite(*w) && *w > 0, option,
          "weight " + which + " is not a positive finite number", form);
    check(!number(items[i + 1]).has_value() || dataset_exists(items[i + 1]) || dataset_exists(items[i + 1] + "_train"), option,
          "item " + std::to_string(i + 2) + " '" + items[i + 1] + "' should be a dataset prefix, not a number", form);
    parts.push_back({*w, items[i + 1]});
    total += *w;
  }
  check(std::isfinite(total) && total > 0, option, "the weights sum to " + shortest(total) + ", not a positive finite number",
        "use smaller weights (only their ratios matter)");
  for (BlendPart& p : parts) p.weight /= total;
  return parts;
}

DataBlends resolve_data_blends(const std::string& data, const std::string& valid_data) {
  DataBlends out;
  const std::vector<BlendPart> given = parse_data_blend(data, "--data");
  double valid_total = 0;
  for (const BlendPart& p : given) {
    const std::string train = dataset_exists(p.prefix + "_train") ? p.prefix + "_train" : p.prefix;
    check(dataset_exists(train), "--data", "no dataset at " + p.prefix + "_train.{bin,idx} or " + p.prefix + ".{bin,idx}",
          "make one with 'mambalm prepare'");
    out.train.push_back({p.weight, train});
    if (valid_data.empty() && dataset_exists(p.prefix + "_valid")) {
      out.valid.push_back({p.weight, p.prefix + "_valid"});
      valid_total += p.weight;
    }
  }
  for (BlendPart& p : out.valid) p.weight /= valid_total;  // the parts that have one, in proportion
  if (!valid_data.empty()) {
    out.valid = parse_data_blend(valid_data, "--valid-data");
    for (const BlendPart& p : out.valid) check(dataset_exists(p.prefix), "--valid-data", "no dataset at " + p.prefix + ".{bin,idx}");
  }
  return out;
}

std::string blend_text(const std::vector<BlendPart>& parts) {
  if (parts.size() == 1 && parts[0].weight == 1.0) return parts[0].prefix;
  std::string s;
  for (const BlendPart& p : parts) s += (s.empty() ? "" : " ") + shortest(p.weight) + " " + p.prefix;
  return s;
}

BlendSchedule::BlendSchedule(std::vector<double> weights)
    : weights_(std::move(weights)), taken_(weights_.size(), 0) {
  check(!weights_.empty(), "blend", "has no parts");
  marks_.push_back(taken_);
}

BlendSchedule::Source BlendSchedule::advance() const {
  // The part furthest behind its share once this sample is counted; the first on a tie.
  const double n = static_cast<double>(cursor_ + 1);
  size_t best = 0;
  double best_deficit = weights_[0] * n - static_cast<double>(taken_[0]);
  for (size_t j = 1; j < weights_.size(); ++j) {
    const double deficit = weights_[j] * n - static_cast<double>(taken_[j]);
    if (deficit > best_deficit) {
      best = j;
      best_deficit = deficit;
    }
  }
  const Source s{static_cast<int>(best), taken_[best]++};
  ++cursor_;
  if (cursor_ % kMarkStride == 0 && cursor_ / kMarkStride == static_cast<int64_t>(marks_.size())) marks_.push_back(taken_);
  return s;
}

BlendSchedule::Source BlendSchedule::source_of(int64_t k) const {
  check(k >= 0, "blend", "sample " + std::to_string(k) + " is negative");
  if (weights_.size() == 1) return {0, k};
  if (k < cursor_) {  // go back to the last mark at or before k
    const int64_t m = std::min<int64_t>(k / kMarkStride, static_cast<int64_t>(marks_.size()) - 1);
    cursor_ = m * kMarkStride;
    taken_ = marks_[static_cast<size_t>(m)];
  }
  while (cursor_ < k) advance();
  return advance();
}

}  // namespace mambalm
