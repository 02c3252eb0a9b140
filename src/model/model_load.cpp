// Reading a model directory into a Model (model.h): Model::load for training and conversion
// (owned F32 parameters), Model::load_for_inference for running it (the matrices in the
// placement's dtype, read tensor by tensor from the memory-mapped file).
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "config/hf_config.h"
#include "core/error.h"
#include "core/huge_page_arena.h"
#include "io/weights.h"
#include "model/embedding_file.h"
#include "model/hf_names.h"
#include "model/model.h"
#include "model/weight_storage.h"

namespace mambalm {

namespace {

// Every parameter in `params`, read from `weights` after checking name, shape and dtype, is
// stored in the dtype `want(p)` names; then no tensor of the file may be left over. A tensor
// already in that dtype stays a view of the mapped file unless `copy` (training owns its
// parameters); any other is read, checked and converted in blocks of a few MiB, each block's
// file pages dropped once done, so that the process never holds a whole tensor of the file
// beside its conversion (the 8B model's bf16 embedding alone is 2.1 GB).
//
// `lookup_table` names a tensor only looked up by row (an untied embedding at inference; empty
// for none): left a view, its pages are dropped as checked and again at the end, for the caller
// to read by row from the file (embedding_file.h). Returns whether it was left a view.
template <class Want>
bool read_parameters(ParamList& params, const ModelConfig& cfg, const io::WeightSet& weights, const std::string& model_dir,
                     Want want, bool copy, const std::string& lookup_table = "") {
  // A tensor kept in its stored dtype stays a view of the mapping when it is large (model.h's
  // kSmallestMappedTensorBytes). A small one (a norm's gains, a conv's taps, A_log) is copied and
  // its pages dropped when some tensor of the file is converted: touching one of its pages maps
  // the whole page-cache folio around it, up to 2 MiB of the matrices beside it, and for bf16 /
  // q8 weights those matrices were converted and are no longer needed (mamba2-130m held 83 MB of
  // such file pages after loading as q8). When nothing is converted every page of the file is read
  // in place anyway, and reading the matrices maps the small tensors' folios back: a copy would be
  // held twice (mamba-130m at f32: 22 MiB of copies beside the whole file resident).
  std::vector<std::string> dropped;  // the tensors that now own their values, and a lookup table left a view
  std::set<std::string> used;
  bool lookup_view = false;
  bool any_converted = false;
  for (const ParamRef& p : params)
    any_converted = any_converted || (weights.contains(p.name) && weights.dtype_of(p.name) != want(p));
  // What is copied goes into one huge-page arena (core/huge_page_arena.h), counted first; a
  // tensor the file lacks counts nothing here and fails below.
  const auto copied = [&](const ParamRef& p, DType dtype) {
    const DType stored = weights.dtype_of(p.name);
    return copy || stored != dtype ||
           (any_converted && static_cast<int64_t>(storage_bytes(p.file_shape, stored)) < kSmallestMappedTensorBytes);
  };
  size_t arena_bytes = 0;
  for (const ParamRef& p : params) {
    if (weights.contains(p.name) && copied(p, want(p))) arena_bytes += HugePageArena::arena_bytes(p.file_shape, want(p));
  }
  HugePageArena arena(arena_bytes);
  for (ParamRef& p : params) {
    if (!weights.contains(p.name)) {
      fail(model_dir, "tensor '" + p.name + "' is missing from the weights", "config.json and the safetensors file disagree");
    }
    const DType dtype = want(p);
    const bool convert = copy || weights.dtype_of(p.name) != dtype;
    const bool lookup = !copy && p.name == lookup_table;
    const Tensor t = weights.tensor(p.name, /*drop_checked_pages=*/convert || lookup);  // a view of the mapped file
    if (t.shape() != p.file_shape) {
      fail(weights.file_of(p.name), "tensor '" + p.name + "' has shape " + shape_str(t.shape()) + " but config.json implies " +
                                        shape_str(p.file_shape));
    }
    check(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16 || t.dtype() == DType::F64,
          weights.file_of(p.name), "tensor '" + p.name + "' has dtype " + dtype_name(t.dtype()) + "; weights must be floating point");
    if (!copied(p, dtype)) {
      *p.tensor = t.reshape(p.shape);
      if (lookup) {
        lookup_view = true;
        dropped.push_back(p.name);
      }
    } else {
      Tensor owned = arena.take(t.shape(), dtype);  // in the file's shape
      if (convert) {
        convert_by_blocks(t, owned, [&](uint64_t first, uint64_t end) { weights.release(p.name, first, end); });
      } else {
        std::memcpy(owned.raw(), t.raw(), t.nbytes());
      }
      *p.tensor = owned.reshape(p.shape);
      // Dropped now, not only at the end: a model's small matrices add up (llama-134m's attention
      // projections are 113 MB of 2.4 MB tensors), and the file's pages and the copies side by
      // side were the load's peak, above any later one.
      if (!convert) weights.release(p.name);
      dropped.push_back(p.name);
    }
    used.insert(p.name);
  }
  // Once nothing more is read: a block's release can be undone by the next block's first read,
  // which maps the whole page-cache folio around it (up to 2 MiB on a file system with large
  // folios), so every copied tensor's pages are dropped again here.
  for (const std::string& name : dropped) weights.release(name);
  for (const std::string& name : weights.names()) {
    if (used.count(name)) continue;
    if (name == hf_head_name() && cfg.tie_embeddings) continue;  // a tied head saved anyway
    fail(weights.file_of(name), "unexpected tensor '" + name + "' for model_type " + cfg.model_type,
         "config.json and the weights disagree");
  }
  return lookup_view;
}

}  // namespace

Model Model::load(const std::string& model_dir) {
  Model m(load_model_config(model_dir));
  auto weights = io::WeightSet::open(model_dir);
  // Owned F32 copies: training updates them in place, and the mapping is read-only.
  read_parameters(m.params_, m.cfg_, *weights, model_dir, [](const ParamRef&) { return DType::F32; }, /*copy=*/true);
  return m;
}

Model Model::load_for_inference(const std::string& model_dir, DType matrix_dtype) {
  check(matrix_dtype == DType::F32 || matrix_dtype == DType::BF16 || matrix_dtype == DType::Q8, "load " + model_dir,
        "matrices are loaded as F32, BF16 or Q8 (" + dtype_name(matrix_dtype) + " requested)");
  Model m(load_model_config(model_dir));
  auto weights = io::WeightSet::open(model_dir);
  // A tensor already in its stored dtype stays a view of the mapping: no copy, and its pages are
  // the file's, which the kernel can drop and reread under pressure. An untied embedding table
  // keeps the file's dtype (inference_dtype) and, left a view, is read by row from the file.
  const std::string table = m.cfg_.tie_embeddings ? std::string() : hf_embedding_name(m.cfg_);
  const bool table_in_file = read_parameters(
      m.params_, m.cfg_, *weights, model_dir,
      [&](const ParamRef& p) { return inference_dtype(p, m.cfg_, matrix_dtype, weights->contains(p.name) ? weights->dtype_of(p.name) : DType::F32); },
      /*copy=*/false, table);
  if (table_in_file) {
    const Tensor& t = m.embedding_->value;  // [V, D], a view of the mapping no lookup touches
    m.embedding_file_ = std::make_shared<EmbeddingFile>(weights->file_of(table), weights->file_offset_of(table), t.dim(0), t.dim(1), t.dtype());
  }
  m.device_ = Device::CPU;
  m.matrix_dtype_ = matrix_dtype;
  return m;
}

}  // namespace mambalm
