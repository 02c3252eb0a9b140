// The restricted unpickler of PyTorch checkpoints (io/torch/unpickler.h) on raw pickle bytes:
// any input must end in a parsed tree or a mambalm::Error, never run code, crash or hang.
#include <string_view>

#include "fuzz_input.h"
#include "io/torch/unpickler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  return mambalm::fuzz::expect_error_or_success([&] { (void)mambalm::io::torch::unpickle(bytes); });
}
