// mambalm forward: logits of every position, the tool the parity tests compare with.
#include <cstdio>
#include <cstring>

#include "args.h"
#include "commands.h"
#include "config/hf_config.h"
#include "device_options.h"
#include "core/error.h"
#include "infer/generate.h"
#include "io/npy.h"
#include "io/token_list.h"
#include "model/model.h"

namespace mambalm::cli {

int cmd_forward(int argc, char** argv) {
  Args args("forward", "--model DIR --tokens FILE --logits OUT.npy [--device cpu|cuda] [--dtype f32|bf16|q8]",
            {{"model", "DIR", "model directory (config.json + model.safetensors)"},
             {"tokens", "FILE", "whitespace-separated token ids"},
             {"logits", "OUT.npy", "float32 logits [T, vocab] as a NumPy array"}},
            placement_options());
  if (!args.parse(argc, argv)) return 0;
  std::string tokens_path = args.required("tokens"), out = args.required("logits");
  const Placement placement = parse_placement(args);
  const std::string model_dir = args.required("model");
  load_model_config(model_dir);  // a missing or broken model directory is the first error named
  std::vector<int32_t> ids = io::read_token_ids(tokens_path);  // read before the weights: its length sizes the memory check
  const int64_t T = static_cast<int64_t>(ids.size());
  // One sequence of T tokens, no state kept; the logits [T, V] and their host copy.
  Model model = load_placed(model_dir, placement, InferenceWork{1, T, 0, 2 * T}, "mambalm forward");
  check_token_ids(ids, model.config().vocab_size, tokens_path);
  Tensor batch = Tensor::empty({1, T}, DType::I32);  // one sequence
  std::memcpy(batch.raw(), ids.data(), ids.size() * 4);
  std::vector<float> logits;  // [T, V] on the host
  copy_to_host(model.forward(batch), logits);
  io::write_npy(out, Tensor::view_of(logits.data(), {T, model.config().vocab_size}, DType::F32, nullptr));
  std::fprintf(stderr, "wrote %s: [%lld, %lld] float32\n", out.c_str(), static_cast<long long>(T),
               static_cast<long long>(model.config().vocab_size));
  return 0;
}

}  // namespace mambalm::cli
