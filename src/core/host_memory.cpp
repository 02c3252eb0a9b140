#include "core/host_memory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

constexpr const char* kAvailableEnv = "MAMBALM_AVAILABLE_MEMORY";

// A cgroup v2 counter file ("max" or a byte count); INT64_MAX when absent or unlimited.
int64_t cgroup_value(const char* path) {
  std::ifstream f(path);
  std::string text;
  if (!(f >> text) || text == "max") return INT64_MAX;
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    return INT64_MAX;
  }
}

// "123", "2.5GB", "512MB", "64KB" (decimal units, as gigabytes() prints) -> bytes.
int64_t parse_memory_setting(const std::string& text) {
  const std::string where = std::string(kAvailableEnv) + "=" + text;
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB" || unit == "K") scale = 1e3;
  else if (unit == "MB" || unit == "M") scale = 1e6;
  else if (unit == "GB" || unit == "G") scale = 1e9;
  check(end != text.c_str() && scale > 0 && number >= 0 && number * scale < 9e18, where,
        "not a memory size", "give bytes, or a number with KB, MB or GB (e.g. 2.5GB)");
  return static_cast<int64_t>(number * scale);
}

// MemAvailable of /proc/meminfo in bytes; INT64_MAX when the file or the line is missing.
int64_t meminfo_available() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  long long kb = 0;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemAvailable:") return static_cast<int64_t>(kb) * 1024;
  }
  return INT64_MAX;
}

}  // namespace

int64_t available_memory_bytes() {
  if (const char* env = std::getenv(kAvailableEnv); env && *env) return parse_memory_setting(env);
  int64_t bytes = meminfo_available();
  const int64_t limit = cgroup_value("/sys/fs/cgroup/memory.max"), used = cgroup_value("/sys/fs/cgroup/memory.current");
  if (limit != INT64_MAX && used != INT64_MAX) bytes = std::min(bytes, std::max<int64_t>(0, limit - used));
  if (bytes == INT64_MAX) bytes = host_memory_bytes();  // no /proc/meminfo: the machine's size
  return bytes;
}

std::string available_memory_source() {
  const char* env = std::getenv(kAvailableEnv);
  return env && *env ? kAvailableEnv : "MemAvailable";
}

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
