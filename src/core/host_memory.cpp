#include "core/host_memory.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.h"

namespace mambalm {

namespace {

int64_t physical_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return INT64_MAX;  // unknown: never refuse on a guess
  return static_cast<int64_t>(pages) * static_cast<int64_t>(page);
}

// cgroup v2 (memory.max) or v1 (memory.limit_in_bytes); "max" or absent means no limit.
int64_t cgroup_limit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(path);
    std::string text;
    if (!(f >> text) || text == "max") continue;
    try {
      const long long v = std::stoll(text);
      if (v > 0) return v;
    } catch (const std::exception&) {
    }
  }
  return INT64_MAX;
}

}  // namespace

int64_t host_memory_bytes() {
  static const int64_t bytes = [] {
    const int64_t phys = physical_bytes(), cg = cgroup_limit();
    return phys < cg ? phys : cg;
  }();
  return bytes;
}

std::string gigabytes(double bytes) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g GB", bytes / 1e9);
  return buf;
}

void check_fits_host_memory(int64_t bytes, const std::string& where, const std::string& what, const std::string& hint) {
  const int64_t have = host_memory_bytes();
  if (bytes <= have) return;
  fail(where, what + " needs " + gigabytes(static_cast<double>(bytes)) + " but this machine has " +
                  gigabytes(static_cast<double>(have)),
       hint);
}

}  // namespace mambalm
