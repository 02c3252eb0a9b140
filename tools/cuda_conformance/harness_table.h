// The result table and the registered case groups (read by main.cpp).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "harness.h"

namespace conformance {

struct Row {
  std::string op, shape, what;
  double err, limit, gpu_ms, cpu_ms;
  bool ok() const { return std::isfinite(err) && err <= limit; }
};

std::vector<Row>& table();
std::vector<CaseGroup>& groups();

}  // namespace conformance
