// --device cpu|cuda and --dtype f32|bf16|q8 (q8: CPU only), shared by the commands that run a model.
#pragma once
#include <vector>

#include "args.h"
#include "core/tensor.h"

namespace mambalm {
class Model;
}

namespace mambalm::cli {

struct Placement {
  Device device = Device::CPU;
  DType dtype = DType::F32;  // storage of the weight matrices (and of the KV cache on CUDA; F32 KV on the CPU)
};

// The two options' specs, to append to a command's list.
std::vector<OptionSpec> placement_options();
// Parses them (default cpu / f32; bf16 on CUDA by default); a clear error when CUDA is not
// built or no device is visible.
Placement parse_placement(const Args& args);
// Moves a loaded model where the options say, and says so on stderr when that is a GPU.
void place(Model& model, const Placement& p);

}  // namespace mambalm::cli
