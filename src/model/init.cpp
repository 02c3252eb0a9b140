#include "model/init.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "config/hf_config.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace mambalm {

namespace {

constexpr double kInitStd = 0.02;

// dt ~ exp(U[ln dt_min, ln dt_max]), floored; stored as its inverse softplus so that
// softplus(bias) == dt at initialisation.
double draw_dt_bias(Rng& rng, double dt_min, double dt_max, double floor) {
  double dt = std::exp(rng.uniform(std::log(dt_min), std::log(dt_max)));
  dt = std::max(dt, floor);
  return dt + std::log(-std::expm1(-dt));
}

// Below this many values a tensor is drawn on one thread (a parallel region costs more).
constexpr int64_t kParallelValues = int64_t{1} << 16;

// `n` floats as bf16 (round to nearest even), split among the threads: at 8B parameters the
// conversion is as long as the draw itself.
void to_bf16_threaded(const float* src, uint16_t* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelValues)
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

}  // namespace

uint64_t draws_per_value(Init init) {
  switch (init) {
    case Init::Normal:
    case Init::NormalOutput:
    case Init::NormalMixerOutput: return 2;  // Rng::normal: Box-Muller on two uniforms
    case Init::FanInUniform:
    case Init::ConvUniform:
    case Init::Mamba2ALog:
    case Init::DtBias:
    case Init::Mamba1DtWeight: return 1;
    case Init::Ones:
    case Init::Zeros:
    case Init::Mamba1ALog: return 0;  // no randomness
  }
  return 0;
}

void init_parameter_threaded(const ParamRef& p, const ModelConfig& cfg, Rng& rng) {
  Tensor& t = *p.tensor;
  (void)t.f32();  // the dtype check, here rather than inside the parallel region
  const int64_t n = t.numel();
  const uint64_t per_value = draws_per_value(p.init);
  // Threads take whole rows of the last dimension (Mamba1ALog counts along it).
  const int64_t row = t.rank() > 0 ? std::max<int64_t>(1, t.dim(-1)) : 1;
  const int64_t rows = n / row;
  const int threads = omp_get_max_threads();
  if (n < kParallelValues || per_value == 0 || rows < 2 || threads < 2) {
    init_parameter(p, cfg, rng);
    return;
  }
  const Tensor flat = t.reshape({rows, row});  // [rows, row]
  const int64_t rows_per_thread = (rows + threads - 1) / threads;
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < threads; ++c) {
    const int64_t r0 = std::min(rows, c * rows_per_thread), r1 = std::min(rows, r0 + rows_per_thread);
    if (r0 == r1) continue;
    Tensor rows_t = flat.slice0(r0, r1);  // [r1 - r0, row], sharing t's memory
    ParamRef part = p;
    part.tensor = &rows_t;
    Rng local = rng;  // where the one-thread draw stands at value r0 * row
    local.skip(static_cast<uint64_t>(r0 * row) * per_value);
    init_parameter(part, cfg, local);
  }
  rng.skip(static_cast<uint64_t>(n) * per_value);  // past every value, as the serial draw leaves it
}

void init_parameter(const ParamRef& p, const ModelConfig& cfg, Rng& rng) {
  float* w = p.tensor->f32();
  const int64_t n = p.tensor->numel();
  const bool mamba1 = cfg.mamba_version == 1;
  const double dt_min = mamba1 ? cfg.mamba1.dt_min : cfg.mamba2.dt_min;
  const double dt_max = mamba1 ? cfg.mamba1.dt_max : cfg.mamba2.dt_max;
  const double dt_floor = mamba1 ? cfg.mamba1.dt_init_floor : cfg.mamba2.dt_init_floor;
  switch (p.init) {
    case Init::Normal:
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(kInitStd * rng.normal());
      break;
    case Init::NormalOutput:
    case Init::NormalMixerOutput: {
      const double std = init_std(p, cfg);
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(std * rng.normal());
      break;
    }
    case Init::FanInUniform: {
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.shape.back()));  // [out, in]: fan_in = in
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(rng.uniform(-bound, bound));
      break;
    }
    case Init::Ones: std::fill(w, w + n, 1.0f); break;
    case Init::Zeros: std::fill(w, w + n, 0.0f); break;
    case Init::ConvUniform: {
      int64_t k = mamba1 ? cfg.mamba1.d_conv : cfg.mamba2.d_conv;
      double bound = 1.0 / std::sqrt(static_cast<double>(k));
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(rng.uniform(-bound, bound));
      break;
    }
    case Init::Mamba2ALog:
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(std::log(rng.uniform(1.0, 16.0)));
      break;
    case Init::DtBias:
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(draw_dt_bias(rng, dt_min, dt_max, dt_floor));
      break;
    case Init::Mamba1ALog: {
      int64_t N = p.shape.back();
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(std::log(static_cast<double>(i % N + 1)));
      break;
    }
    case Init::Mamba1DtWeight: {
      const double bound = std::pow(static_cast<double>(cfg.mamba1.dt_rank), -0.5) * cfg.mamba1.dt_scale;
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(rng.uniform(-bound, bound));
      break;
    }
  }
  p.tensor->mark_written();  // new values in place (Tensor::version)
}

int64_t megatron_num_layers(const ModelConfig& cfg) {
  // Megatron's GPT counts a TransformerLayer (attention + MLP) as one layer; its MambaStack counts
  // every symbol of the pattern (M, *, -) as one.
  return cfg.arch == Arch::Transformer ? cfg.n_layers() / 2 : cfg.n_layers();
}

double init_std(const ParamRef& p, const ModelConfig& cfg) {
  const double L = static_cast<double>(megatron_num_layers(cfg));
  switch (p.init) {
    case Init::Normal: return kInitStd;
    case Init::NormalOutput: return kInitStd / std::sqrt(2.0 * L);
    case Init::NormalMixerOutput: return kInitStd / std::sqrt(L);
    case Init::FanInUniform: return 1.0 / std::sqrt(3.0 * static_cast<double>(p.shape.back()));  // U(-b, b): b / sqrt(3)
    case Init::Mamba1DtWeight:  // U(-b, b) with b = dt_rank^-0.5 * dt_scale
      return std::pow(static_cast<double>(cfg.mamba1.dt_rank), -0.5) * cfg.mamba1.dt_scale / std::sqrt(3.0);
    default: return 0.0;
  }
}

void write_random_model(Model& model, uint64_t seed, DType dtype, const std::string& model_dir, bool progress) {
  check(dtype == DType::F32 || dtype == DType::BF16, "init", "weights are written as F32 or BF16");
  const ModelConfig& cfg = model.config();
  std::vector<io::SafetensorsEntry> entries;
  for (const ParamRef& p : model.params()) entries.push_back({p.name, dtype, p.file_shape});
  std::filesystem::create_directories(model_dir);
  io::SafetensorsStreamWriter out((std::filesystem::path(model_dir) / "model.safetensors").string(), entries, {{"format", "pt"}});
  std::optional<Progress> bar;
  if (progress) bar.emplace("init " + model_dir, static_cast<int64_t>(out.data_bytes()));
  // The same streams as Model::init_random: one fork of the root per parameter, in order; a
  // parameter's piece continues its stream, so the pieces concatenate to the whole draw.
  Rng root(seed);
  uint64_t index = 0;
  constexpr int64_t kPieceValues = int64_t{1} << 22;
  std::vector<uint16_t> bf16_piece(dtype == DType::BF16 ? static_cast<size_t>(kPieceValues) : 0);  // one piece as written
  for (const ParamRef& p : model.params()) {
    Rng rng = root.fork(++index);
    const int64_t n = shape_numel(p.shape);
    // Pieces are whole rows of the last dimension (Mamba1ALog counts along it).
    const int64_t row = p.shape.empty() ? 1 : std::max<int64_t>(1, p.shape.back());
    const int64_t rows_per_piece = std::max<int64_t>(1, kPieceValues / row);
    for (int64_t r0 = 0; r0 * row < n; r0 += rows_per_piece) {
      Tensor piece = Tensor::empty({std::min(rows_per_piece, n / row - r0), row});
      ParamRef part = p;
      part.tensor = &piece;
      init_parameter_threaded(part, cfg, rng);
      if (dtype == DType::F32) {
        out.write(piece.raw(), piece.nbytes());
      } else {
        if (bf16_piece.size() < static_cast<size_t>(piece.numel())) bf16_piece.resize(static_cast<size_t>(piece.numel()));  // a row past 4M
        to_bf16_threaded(piece.f32(), bf16_piece.data(), piece.numel());
        out.write(bf16_piece.data(), static_cast<size_t>(piece.numel()) * 2);
      }
      if (bar) bar->update(static_cast<int64_t>(out.data_written()));
    }
  }
  out.commit();
  if (bar) bar->finish();
  save_model_config(cfg, model_dir);
}

}  // namespace mambalm
