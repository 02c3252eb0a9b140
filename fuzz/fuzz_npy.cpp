// NumPy .npy (format 1.0 and 2.0 headers).
#include "fuzz_input.h"
#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mambalm::fuzz::write_input("t.npy", data, size);
  return mambalm::fuzz::expect_error_or_success([&] { (void)mambalm::io::read_npy(path).numel(); });
}
