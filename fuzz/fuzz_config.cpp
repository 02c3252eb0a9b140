// config.json: parse (with Python's Infinity/NaN), import, and every size derived from it.
#include "config/hf_config.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return mambalm::fuzz::expect_error_or_success([&] {
    const mambalm::ModelConfig c = mambalm::config_from_hf(mambalm::parse_config_json(text, "config.json"), "config.json");
    (void)c.parameter_upper_bound();
    (void)c.state_bytes();
    (void)c.kv_bytes_per_token();
    (void)mambalm::config_to_hf(c).dump();
  });
}
