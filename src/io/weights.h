// The weights of a Hugging Face model directory: either one `model.safetensors`, or shards
// listed by `model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}).
// All shards are opened and cross-checked up front, so a missing shard or a tensor in the
// wrong shard is reported when the model is opened, not halfway through loading it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace mambalm::io {

// Whether WeightSet::tensor() loads weights holding NaN or infinity (with a warning) instead of
// refusing them; the CLI's --allow-nonfinite sets it. Off by default: such weights turn every
// output into NaN (or "0 0 0 0" tokens) without a word.
void allow_nonfinite_weights(bool allow);

// Index of the first NaN or infinity of a floating-point CPU tensor, or -1 (and -1 for integers).
int64_t first_nonfinite(const Tensor& t);

class WeightSet {
 public:
  static std::shared_ptr<WeightSet> open(const std::string& model_dir);

  // Every tensor name: shard by shard (shards in file-name order), data-offset order within.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  // A CPU view in the file's dtype (see SafetensorsFile::tensor); an Error naming the
  // directory if absent. A floating-point tensor holding NaN or infinity is refused with an
  // Error naming the file, tensor and first bad element, unless allow_nonfinite_weights(true)
  // was called: then it loads with a warning on stderr.
  // With drop_checked_pages, the check reads the tensor in blocks and drops each block's pages
  // once read (for a caller that converts it block by block next: the whole tensor is then
  // never resident at once; the view stays valid, its pages fault back in from the file).
  Tensor tensor(const std::string& name, bool drop_checked_pages = false) const;
  // SafetensorsFile::release of the shard holding `name`: its mapped pages stop counting in the
  // process's memory once the tensor has been copied or converted; or only bytes [first, end).
  void release(const std::string& name) const;
  void release(const std::string& name, uint64_t first, uint64_t end) const;
  DType dtype_of(const std::string& name) const;
  const Shape& shape_of(const std::string& name) const;
  // The shard file holding `name`, for error messages ("<dir>/model-00001-of-00002.safetensors").
  std::string file_of(const std::string& name) const;
  uint64_t file_offset_of(const std::string& name) const;  // of its bytes in file_of(name)
  const std::string& dir() const { return dir_; }
  // Metadata of the first shard (shards written by transformers carry the same map).
  const std::map<std::string, std::string>& metadata() const;

 private:
  WeightSet() = default;
  const SafetensorsFile& shard(const std::string& name) const;

  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> shard_of_;  // tensor name -> index into shards_
};

}  // namespace mambalm::io
