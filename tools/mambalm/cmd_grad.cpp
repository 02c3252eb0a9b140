// mambalm grad: d(mean next-token cross-entropy)/d(parameter) for one token sequence, under the
// HF tensor names — the debugging tool the gradient parity tests use.
#include <cstdio>
#include <cstring>

#include "args.h"
#include "commands.h"
#include "device_options.h"
#include "core/device.h"
#include "core/error.h"
#include "infer/generate.h"
#include "io/safetensors.h"
#include "io/token_list.h"
#include "model/model.h"

namespace mambalm::cli {

int cmd_grad(int argc, char** argv) {
  Args args("grad", "--model DIR --tokens FILE --out GRADS.safetensors [--device cuda [--dtype bf16|f32]]",
            {{"model", "DIR", "model directory"},
             {"tokens", "FILE", "whitespace-separated token ids (at least 2)"},
             {"out", "FILE", "gradients as F32 safetensors, HF tensor names and shapes"}},
            placement_options());
  if (!args.parse(argc, argv)) return 0;
  const Placement placement = parse_placement(args);
  std::string tokens_path = args.required("tokens"), out = args.required("out");
  Model model = Model::load(args.required("model"));
  std::vector<int32_t> ids = io::read_token_ids(tokens_path);
  check_token_ids(ids, model.config().vocab_size, tokens_path);
  check(ids.size() >= 2, tokens_path, "need at least 2 tokens to predict one");
  const int64_t T = static_cast<int64_t>(ids.size());
  Tensor input = Tensor::empty({1, T}, DType::I32);    // tokens 0..T-1
  Tensor targets = Tensor::empty({1, T}, DType::I32);  // token t+1 for position t; the last is ignored
  std::memcpy(input.raw(), ids.data(), ids.size() * 4);
  for (int64_t t = 0; t < T; ++t) targets.data<int32_t>()[t] = t + 1 < T ? ids[static_cast<size_t>(t + 1)] : -1;
  model.prepare_training(placement.device, placement.dtype);
  ops::CrossEntropyResult loss = model.train_step(input, targets, nullptr);
  std::vector<std::pair<std::string, Tensor>> grads;
  for (const ParamRef& p : model.params()) grads.emplace_back(p.name, to_host(*p.grad).reshape(p.file_shape));
  io::write_safetensors(out, grads, {{"loss", std::to_string(loss.mean_loss)}});
  std::printf("loss %.9g over %lld predictions; wrote %zu gradients to %s\n", loss.mean_loss, static_cast<long long>(loss.n_valid),
              grads.size(), out.c_str());
  return 0;
}

}  // namespace mambalm::cli
