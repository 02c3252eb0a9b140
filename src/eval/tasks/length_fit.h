// Sizing a generated prompt to a length in tokens, as RULER does (scripts/data/synthetic/*.py):
// the prompt plus the tokens to generate must fit in the target, and the prompt is made as long
// as that allows. The prompt is a function of a count n of haystack units (sentences, book
// entries, words), monotone in length; the largest n that fits is found by bisection on one
// sample and reused, lowered step by step where another sample's random content is longer.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>

#include "core/error.h"

namespace mambalm::eval {

// The largest n in [lo, hi] with fits(n) (fits monotone: true up to some n, false after);
// lo - 1 when even lo does not fit.
inline int64_t largest_fitting(int64_t lo, int64_t hi, const std::function<bool(int64_t)>& fits) {
  int64_t best = lo - 1;
  while (lo <= hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (fits(mid)) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

// The largest n >= minimum that fits, searched near `start` (the size that fitted another
// sample): brackets it in steps of about 1% of start, then bisects the bracket. Throws naming
// `what` when even `minimum` units do not fit.
inline int64_t fit_near(int64_t start, int64_t minimum, const std::function<bool(int64_t)>& fits, const std::string& what) {
  const int64_t step = std::max<int64_t>(1, start / 100);
  int64_t lo = std::max(start, minimum), hi = 0;
  if (fits(lo)) {
    while (fits(lo + step)) lo += step;
    hi = lo + step - 1;
  } else {
    hi = lo - 1;
    lo = std::max(minimum, lo - step);
    while (lo > minimum && !fits(lo)) {
      hi = lo - 1;
      lo = std::max(minimum, lo - step);
    }
    check(fits(lo), what, "the length is too short for the task's fixed text", "give longer --lengths");
  }
  return largest_fitting(lo, hi, fits);
}

}  // namespace mambalm::eval
