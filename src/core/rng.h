// A small, portable, seeded generator (SplitMix64) so that initialisation and sampling give
// the same numbers on every platform and standard library (std::normal_distribution does not).
#pragma once
#include <cmath>
#include <cstdint>

namespace mambalm {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal by Box-Muller (one value per call; the pair's twin is discarded for simplicity).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // The generator as it will be after `draws` more next_u64() calls. SplitMix64's state is a
  // counter, so this is one multiply: what lets a long draw be split among threads and still
  // give exactly the values of one thread drawing them in order (model/init.cpp).
  void skip(uint64_t draws) { state_ += draws * 0x9e3779b97f4a7c15ull; }
  // An independent stream for a sub-task (e.g. one per parameter tensor).
  Rng fork(uint64_t salt) { return Rng(next_u64() ^ (salt * 0x9e3779b97f4a7c15ull)); }

 private:
  uint64_t state_;
};

}  // namespace mambalm
