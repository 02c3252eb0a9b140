// Megatron .idx + .bin (split at "\n----\n"): open, then every document's tokens.
#include "fuzz_input.h"
#include "io/indexed_dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [idx, bin] = mambalm::fuzz::split_two(data, size);
  mambalm::fuzz::write_input("d.idx", reinterpret_cast<const uint8_t*>(idx.data()), idx.size());
  mambalm::fuzz::write_input("d.bin", reinterpret_cast<const uint8_t*>(bin.data()), bin.size());
  return mambalm::fuzz::expect_error_or_success([&] {
    mambalm::io::IndexedDataset ds(mambalm::fuzz::work_dir() + "/d");
    int64_t n = 0;
    for (int64_t d = 0; d < ds.document_count(); ++d) n += static_cast<int64_t>(ds.document_tokens(d).size());
    (void)n;
  });
}
