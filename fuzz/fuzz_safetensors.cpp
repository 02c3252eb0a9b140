// safetensors header and data offsets: io::SafetensorsFile::open, then every tensor read.
#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mambalm::fuzz::write_input("model.safetensors", data, size);
  return mambalm::fuzz::expect_error_or_success([&] {
    auto file = mambalm::io::SafetensorsFile::open(path);
    double sum = 0;
    for (const std::string& name : file->names()) {
      mambalm::Tensor t = file->tensor(name);
      if (t.numel() > 0 && t.dtype() != mambalm::DType::I32 && t.dtype() != mambalm::DType::I64) sum += t.to(mambalm::DType::F32).f32()[0];
    }
    (void)sum;
  });
}
