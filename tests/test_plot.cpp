// `mambalm plot` (issue 17, point 7): the loss curves of several runs, overlaid, as a
// self-contained page or a PNG; bad runs are one-line errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_util.h"

using namespace mambalm::testing;

namespace {

// A run directory whose metrics.jsonl has `steps` rows, a validation every 5 steps.
std::string fake_run(const std::string& dir, const std::string& name, double scale, int steps) {
  std::string rows;
  for (int s = 1; s <= steps; ++s) {
    rows += "{\"step\":" + std::to_string(s) + ",\"tokens\":" + std::to_string(s * 512) + ",\"loss\":" + std::to_string(scale * 10.0 / s);
    if (s % 5 == 0) rows += ",\"val_loss\":" + std::to_string(scale * 11.0 / s);
    rows += "}\n";
  }
  write_file(dir + "/" + name + "/metrics.jsonl", rows);
  return dir + "/" + name;
}

}  // namespace

TEST(Plot, HtmlPageOverlaysRunsWithTheLibraryInlined) {
  const std::string dir = temp_dir("plot");
  const std::string a = fake_run(dir, "mamba2", 1.0, 10), b = fake_run(dir, "hybrid", 0.9, 10);
  write_file(dir + "/chart.js", "/* CHART-LIBRARY-MARKER */");
  CommandResult r = run_cli("plot " + a + " " + b + " --out " + dir + "/c.html --charts " + dir + "/chart.js --title 'two </script> runs'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string page = read_file(dir + "/c.html");
  EXPECT_NE(page.find("CHART-LIBRARY-MARKER"), std::string::npos);
  EXPECT_NE(page.find("\"label\":\"mamba2\""), std::string::npos);
  EXPECT_NE(page.find("\"label\":\"hybrid\""), std::string::npos);
  EXPECT_NE(page.find("{\"x\":10.0,\"y\":0.99}"), std::string::npos) << "hybrid's validation loss at step 10";
  EXPECT_EQ(page.find("two </script> runs"), std::string::npos) << "the title is escaped";
  // --x tokens puts the tokens on the axis.
  r = run_cli("plot " + a + " --out " + dir + "/t.html --charts " + dir + "/chart.js --x tokens");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_file(dir + "/t.html").find("{\"x\":5120.0,\"y\":1.0}"), std::string::npos);
}

TEST(Plot, PngThroughGnuplot) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "gnuplot is not installed (scripts/setup.sh installs it)";
  const std::string dir = temp_dir("plot-png");
  const std::string a = fake_run(dir, "a", 1.0, 20), b = fake_run(dir, "b", 0.8, 20);
  CommandResult r = run_cli("plot " + a + " " + b + " --out " + dir + "/c.png");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string png = read_file(dir + "/c.png");
  ASSERT_GT(png.size(), 2000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(16, 8), std::string("\0\0\x05\x78\0\0\x02\x08", 8)) << "1400 x 520 pixels (IHDR)";
}

TEST(Plot, BadRunsAreOneLineErrors) {
  const std::string dir = temp_dir("plot-bad");
  write_file(dir + "/r/metrics.jsonl", "{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"loss\":\n");
  write_file(dir + "/empty/metrics.jsonl", "{\"step\":1}\n");
  const struct {
    std::string args, needle;
  } cases[] = {{dir + "/r --out " + dir + "/x.html", "metrics.jsonl:2"},
               {dir + "/empty --out " + dir + "/x.html", "no training loss"},
               {dir + "/missing --out " + dir + "/x.html", "cannot read"},
               {dir + "/r --out " + dir + "/x.svg", "neither .html nor .png"},
               {dir + "/r " + dir + "/empty --labels one --out " + dir + "/x.html", "1 labels for 2 runs"},
               {"--out " + dir + "/x.html", "no run given"}};
  for (const auto& c : cases) {
    CommandResult r = run_cli("plot " + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}
