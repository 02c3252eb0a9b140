#include "core/progress.h"

#include <unistd.h>

#include <algorithm>

namespace mambalm {

Progress::Progress(std::string label, int64_t total, double scale, std::string unit_name,
                   std::FILE* out)
    : label_(std::move(label)), total_(total), scale_(scale), unit_(std::move(unit_name)),
      out_(out), tty_(::isatty(::fileno(out)) != 0), start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  // Unfinished (an error is unwinding): end the redrawn line so the error starts a new one.
  if (!finished_ && tty_) std::fputc('\n', out_);
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done) {
  done_ = done;
  if (finished_) return;
  if (tty_) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(false);
  } else if (total_ > 0) {
    int decile = static_cast<int>(std::min<int64_t>(10, done * 10 / total_));
    if (decile > last_decile_ && decile < 10) {
      last_decile_ = decile;
      draw(false);
    }
  }
}

void Progress::finish() {
  if (finished_) return;
  draw(true);
  finished_ = true;
}

void Progress::draw(bool final) {
  const double secs = std::max(elapsed_seconds(), 1e-9);
  const double amount = static_cast<double>(done_) * scale_;
  const double rate = amount / secs;
  if (tty_) {
    constexpr int kWidth = 30;
    std::string bar;
    if (total_ > 0) {
      int filled = static_cast<int>(kWidth * std::min(1.0, static_cast<double>(done_) / total_));
      bar = "[" + std::string(filled, '=') + std::string(kWidth - filled, ' ') + "] ";
    }
    double left = total_ > 0 && done_ > 0 ? secs * (static_cast<double>(total_) / done_ - 1) : 0;
    std::fprintf(out_, "\r%s %s%.1f/%.1f %s  %.2f %s/s  %.0fs left   ", label_.c_str(), bar.c_str(),
                 amount, static_cast<double>(total_) * scale_, unit_.c_str(), rate, unit_.c_str(),
                 final ? 0.0 : left);
    if (final) std::fputc('\n', out_);
  } else {
    int pct = total_ > 0 ? static_cast<int>(100 * std::min(1.0, static_cast<double>(done_) / total_)) : 0;
    std::fprintf(out_, "%s: %d%% %.1f/%.1f %s, %.2f %s/s\n", label_.c_str(), pct,
                 amount, static_cast<double>(total_) * scale_, unit_.c_str(), rate, unit_.c_str());
  }
  std::fflush(out_);
}

}  // namespace mambalm
