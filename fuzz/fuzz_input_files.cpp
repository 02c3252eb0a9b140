// Text inputs of prepare and tokenizer train (io/input_files.h): gzip and zstd streams,
// recognised by their bytes; the first input byte picks the file name's suffix (.gz, .zst or
// none), so that a name that disagrees with the bytes is exercised too. Cut, corrupt and
// concatenated streams must end in an error or the decompressed text, never a hang or a crash.
#include "fuzz_input.h"
#include "io/input_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* const kNames[] = {"input.txt", "input.txt.gz", "input.jsonl.zst"};
  const std::string path = mambalm::fuzz::write_input(kNames[data[0] % 3], data + 1, size - 1);
  return mambalm::fuzz::expect_error_or_success([&] { (void)mambalm::io::read_input_file(path).size(); });
}
