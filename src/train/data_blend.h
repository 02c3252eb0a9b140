// The --data of `mambalm train`: one dataset prefix, or a weighted blend of several written as
// Megatron-LM writes it, weights and prefixes alternating ("0.7 PREFIX_A 0.3 PREFIX_B").
// Weights are positive finite numbers, normalised here to sum to 1. Each prefix resolves as a
// single one does: PREFIX_train if it exists, else PREFIX. Validation (unless --valid-data names
// it) blends the PREFIX_valid of every part that has one, with those parts' weights normalised
// again; parts without one are left out of validation. docs/file-formats.md, "Dataset blends".
#pragma once
#include <string>
#include <vector>

namespace mambalm {

struct BlendPart {
  double weight = 1;   // share of the samples, normalised: the parts' weights sum to 1
  std::string prefix;  // PREFIX of PREFIX.{bin,idx}
};

// The parts written in `spec` (an option's value; `option` names it in errors), weights
// normalised, prefixes as written. A spec of one word, or one naming an existing dataset
// as a whole (a prefix with spaces), is one part of weight 1. Syntax only: no file is read,
// except to see whether the whole spec is a dataset.
std::vector<BlendPart> parse_data_blend(const std::string& spec, const std::string& option = "--data");

// The training and validation parts of `data` (--data) and `valid_data` (--valid-data, which
// may be a blend too; empty: the parts' _valid datasets). Every dataset named must exist.
struct DataBlends {
  std::vector<BlendPart> train;  // at least one part
  std::vector<BlendPart> valid;  // empty: no validation
};
DataBlends resolve_data_blends(const std::string& data, const std::string& valid_data);

// The blend as options write it, weights normalised, with the shortest text that reads back
// as the same number ("0.7 A 0.3 B"); one part of weight 1 is just its prefix.
std::string blend_text(const std::vector<BlendPart>& parts);

// Which part sample k (k >= 0) of the blend comes from, and its index within that part, by
// Megatron-LM's greedy rule: sample i goes to the part whose deficit weight * (i + 1) - taken
// is largest (the first such part on a tie). Megatron takes the deficit before counting the
// sample (weight * max(i, 1)); counting it in keeps two or three parts within one sample. Every prefix of the stream then holds each part
// in proportion to its weight: a part is never ahead of weight * n by a whole sample, and
// behind by at most a sample with two or three parts (a little more with many). A pure
// function of (weights, k); the cursor makes consecutive k cheap (so one object is not for
// several threads at once).
class BlendSchedule {
 public:
  explicit BlendSchedule(std::vector<double> weights);
  struct Source {
    int part;
    int64_t index;  // how many samples of the part come before this one
  };
  Source source_of(int64_t k) const;

 private:
  Source advance() const;  // assigns sample cursor_ and moves on by one

  std::vector<double> weights_;                  // [parts], sum 1
  mutable int64_t cursor_ = 0;                   // samples assigned so far
  mutable std::vector<int64_t> taken_;           // [parts] samples of each part among the first cursor_
  mutable std::vector<std::vector<int64_t>> marks_;  // taken_ at every kMarkStride-th sample, for going back
  static constexpr int64_t kMarkStride = 4096;
};

}  // namespace mambalm
