// Builds a small Mamba-2-Hybrid from the library's preset helper, saves it as a model directory,
// loads it back and checks that both give the same logits: the installed headers, the static
// libraries and their dependencies are complete enough for a program of one's own.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "config/presets.h"
#include "core/tensor.h"
#include "model/model.h"

int main(int argc, char** argv) {
  using namespace mambalm;
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer MODEL_DIR\n");
    return 2;
  }
  try {
    ModelConfig cfg = default_config(Arch::Hybrid, 64, 8, 256);
    Model model(cfg);
    model.init_random(1);
    model.save(argv[1]);
    Model loaded = Model::load(argv[1]);

    Tensor ids = Tensor::zeros({1, 5}, DType::I32);
    for (int i = 0; i < 5; ++i) ids.data<int32_t>()[i] = 3 * i + 1;
    Tensor a = model.forward(ids);
    Tensor b = loaded.forward(ids);
    if (a.shape() != Shape{1, 5, 256} || b.shape() != a.shape()) {
      std::fprintf(stderr, "consumer: logits of shape %s, expected [1, 5, 256]\n", shape_str(a.shape()).c_str());
      return 1;
    }
    double max_diff = 0;
    bool finite = true;
    for (int64_t i = 0; i < a.numel(); ++i) {
      finite = finite && std::isfinite(a.f32()[i]);
      max_diff = std::fmax(max_diff, std::fabs(double(a.f32()[i]) - double(b.f32()[i])));
    }
    std::printf("consumer: %s pattern %s, %lld parameters, logits %s, reloaded max |diff| %g\n",
                cfg.model_type.c_str(), cfg.pattern.c_str(), static_cast<long long>(model.parameter_count()),
                shape_str(a.shape()).c_str(), max_diff);
    return finite && max_diff == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
