#include "model/layer.h"

#include <utility>

#include "core/error.h"
#include "ops/ops.h"

namespace mambalm {

namespace {
constexpr std::pair<const char*, unsigned> kKeepNames[] = {
    {"norms", kKeepNorms}, {"mlp", kKeepMlp}, {"gate", kKeepGate}, {"conv", kKeepConv}};
}  // namespace

unsigned parse_keep_kinds(const std::string& text, const std::string& option) {
  unsigned kinds = 0;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (item.empty() || item == "none") continue;
    if (item == "all") {
      kinds |= kKeepAll;
      continue;
    }
    bool known = false;
    for (const auto& [name, flag] : kKeepNames)
      if (item == name) kinds |= flag, known = true;
    check(known, option, "unknown activation kind '" + item + "'", "use norms, mlp, gate, conv, all or none");
  }
  return kinds;
}

std::string keep_kinds_name(unsigned kinds) {
  if (kinds == 0) return "none";
  if ((kinds & kKeepAll) == kKeepAll) return "all";
  std::string out;
  for (const auto& [name, flag] : kKeepNames)
    if (kinds & flag) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

Tensor LayerContext::zeros(const Shape& shape) const {
  Tensor t = empty(shape);
  ops::fill(t, 0.0f);
  return t;
}

void Mixer::output_projection(const Tensor& x, const Tensor& w, const Tensor* b, const LayerContext& ctx, Tensor& y) {
  if (ctx.residual) ops::linear_onto(x, w, b, *ctx.residual, y);
  else ops::linear(x, w, b, y);
}

}  // namespace mambalm
