// Reading a model directory into a Model (model.h): Model::load for training and conversion
// (owned F32 parameters), Model::load_for_inference for running it (the matrices in the
// placement's dtype, read tensor by tensor from the memory-mapped file).
#include <set>

#include "config/hf_config.h"
#include "core/error.h"
#include "io/weights.h"
#include "model/hf_names.h"
#include "model/model.h"
#include "model/weight_storage.h"

namespace mambalm {

namespace {

// Every parameter in `params`, read from `weights` after checking name, shape and dtype, is handed to
// `store` (file tensor -> what the parameter holds); then no tensor of the file may be left over.
template <class Store>
void read_parameters(ParamList& params, const ModelConfig& cfg, const io::WeightSet& weights, const std::string& model_dir,
                     Store store) {
  std::set<std::string> used;
  for (ParamRef& p : params) {
    if (!weights.contains(p.name)) {
      fail(model_dir, "tensor '" + p.name + "' is missing from the weights", "config.json and the safetensors file disagree");
    }
    const Tensor t = weights.tensor(p.name);  // a view of the mapped file
    if (t.shape() != p.file_shape) {
      fail(weights.file_of(p.name), "tensor '" + p.name + "' has shape " + shape_str(t.shape()) + " but config.json implies " +
                                        shape_str(p.file_shape));
    }
    check(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16 || t.dtype() == DType::F64,
          weights.file_of(p.name), "tensor '" + p.name + "' has dtype " + dtype_name(t.dtype()) + "; weights must be floating point");
    *p.tensor = store(p, t).reshape(p.shape);
    // A copy or a conversion no longer needs the file's pages: without this they stay resident
    // (counted in the process's memory) until the model is gone.
    if (p.tensor->raw() != t.raw()) weights.release(p.name);
    used.insert(p.name);
  }
  for (const std::string& name : weights.names()) {
    if (used.count(name)) continue;
    if (name == hf_head_name() && cfg.tie_embeddings) continue;  // a tied head saved anyway
    fail(weights.file_of(name), "unexpected tensor '" + name + "' for model_type " + cfg.model_type,
         "config.json and the weights disagree");
  }
}

}  // namespace

Model Model::load(const std::string& model_dir) {
  Model m(load_model_config(model_dir));
  auto weights = io::WeightSet::open(model_dir);
  // Owned F32 copies: training updates them in place, and the mapping is read-only.
  read_parameters(m.params_, m.cfg_, *weights, model_dir, [](const ParamRef&, const Tensor& t) { return t.to(DType::F32); });
  return m;
}

Model Model::load_for_inference(const std::string& model_dir, DType matrix_dtype) {
  check(matrix_dtype == DType::F32 || matrix_dtype == DType::BF16 || matrix_dtype == DType::Q8, "load " + model_dir,
        "matrices are loaded as F32, BF16 or Q8 (" + dtype_name(matrix_dtype) + " requested)");
  Model m(load_model_config(model_dir));
  auto weights = io::WeightSet::open(model_dir);
  // A tensor already in its stored dtype stays a view of the mapping (stored_as returns it): no
  // copy, and its pages are the file's, which the kernel can drop and reread under pressure.
  read_parameters(m.params_, m.cfg_, *weights, model_dir, [matrix_dtype](const ParamRef& p, const Tensor& t) {
    return stored_as(t, is_matrix(p) ? matrix_dtype : DType::F32);
  });
  m.device_ = Device::CPU;
  m.matrix_dtype_ = matrix_dtype;
  return m;
}

}  // namespace mambalm
