#include "test_util.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace mambalm::testing {

uint64_t test_seed() {
  static uint64_t seed = [] {
    if (const char* s = std::getenv("MAMBALM_TEST_SEED")) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::fprintf(stderr, "[test seed %llu: set MAMBALM_TEST_SEED to replay]\n",
                 static_cast<unsigned long long>(t));
    return t;
  }();
  return seed;
}

Tensor random_tensor(const Shape& shape, float lo, float hi) {
  static std::mt19937_64 gen(test_seed());
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::empty(shape);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(gen);
  return t;
}

static double at(const Tensor& t, int64_t i) {
  if (t.dtype() == DType::F64) return t.data<double>()[i];
  return t.f32()[i];
}

double relative_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    double d = at(a, i) - at(b, i);
    num += d * d;
    den += at(b, i) * at(b, i);
  }
  if (a.numel() != b.numel()) return INFINITY;
  return std::sqrt(num) / (std::sqrt(den) + 1e-300);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return INFINITY;
  double m = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    double d = std::fabs(at(a, i) - at(b, i));
    if (!(d <= m)) m = d;  // NaN propagates as NaN
  }
  return m;
}

namespace {

// The folders temp_dir made, removed when the test process exits (every run left them behind:
// 22 GB in /tmp after a few weeks of CI runs). Only by the process that made them: a forked child
// that calls exit() runs this destructor too. MAMBALM_KEEP_TEST_DIRS=1 keeps them for debugging.
struct MadeTempDirs {
  std::vector<std::filesystem::path> dirs;
  pid_t owner = ::getpid();
  ~MadeTempDirs() {
    const char* keep = std::getenv("MAMBALM_KEEP_TEST_DIRS");
    if (::getpid() != owner || (keep && std::string(keep) == "1")) return;
    std::error_code ec;  // best effort: a folder still in use elsewhere stays
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
MadeTempDirs& made_temp_dirs() {
  static MadeTempDirs made;
  return made;
}

}  // namespace

std::string temp_dir(const std::string& tag) {
  static int counter = 0;
  auto dir = std::filesystem::temp_directory_path() /
             ("mambalm-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  made_temp_dirs().dirs.push_back(dir);
  return dir.string();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  if (std::filesystem::path(path).has_parent_path()) std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

CommandResult run_cli(const std::string& args) { return run_command(std::string(MAMBALM_CLI) + " " + args); }

CommandResult run_command(const std::string& command) {
  std::string dir = temp_dir("cli");
  std::string out = dir + "/out", err = dir + "/err";
  std::string cmd = "(" + command + ") >" + out + " 2>" + err + " </dev/null";
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  std::filesystem::remove_all(dir);
  return r;
}

std::string source_dir() { return MAMBALM_SOURCE_DIR; }

void expect_close(const std::string& what, const Tensor& got, const Tensor& want, double tol) {
  double rel = relative_l2(got, want);
  double mx = max_abs_diff(got, want);
  std::printf("[err] %-52s rel_l2=%.3e max_abs=%.3e (tol %.0e)\n", what.c_str(), rel, mx, tol);
  EXPECT_LT(rel, tol) << what << " (seed " << test_seed() << ")";
}

Tensor time_slice(const Tensor& x, int64_t t0, int64_t t1) {
  Shape s = x.shape();
  const int64_t B = s[0], T = s[1], inner = x.numel() / (B * T);
  s[1] = t1 - t0;
  Tensor out = Tensor::empty(s);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(out.f32() + b * (t1 - t0) * inner, x.f32() + (b * T + t0) * inner, size_t((t1 - t0) * inner) * sizeof(float));
  return out;
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-mambalm exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "did not throw; expected an error mentioning " << (parts.empty() ? "" : parts[0]);
}

}  // namespace mambalm::testing
