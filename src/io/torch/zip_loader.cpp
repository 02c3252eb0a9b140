// libzip opened on first use (dlopen of libzip.so.4) instead of linked, as NCCL is
// (dist/nccl_loader.cpp): only reading and writing PyTorch checkpoints needs it, and linked it
// cost every start of the binary its load and libcrypto's behind it (~8 ms and ~1.2 MiB here;
// bench/NOTES.md). Each function keeps the prototype zip.h declares and forwards to the real
// symbol, resolved once.
#include <zip.h>

#include "core/shared_library.h"

namespace {

constexpr const char* kLibzip = "libzip.so.4";

void* libzip() {
  static void* const handle =
      mambalm::open_shared_library(kLibzip, "PyTorch checkpoints are zip files read through libzip 1.x (Debian: libzip4)");
  return handle;
}

template <class F>
F resolve(const char* name) {
  return mambalm::shared_library_symbol<F>(libzip(), kLibzip, name, "libzip 1.7 or newer is needed");
}

}  // namespace

#define MAMBALM_ZIP_FORWARD(name, ...)                      \
  static const auto real = resolve<decltype(&name)>(#name); \
  return real(__VA_ARGS__)

extern "C" {

zip_t* zip_open(const char* path, int flags, int* error) { MAMBALM_ZIP_FORWARD(zip_open, path, flags, error); }
int zip_close(zip_t* z) { MAMBALM_ZIP_FORWARD(zip_close, z); }
void zip_discard(zip_t* z) { MAMBALM_ZIP_FORWARD(zip_discard, z); }
const char* zip_strerror(zip_t* z) { MAMBALM_ZIP_FORWARD(zip_strerror, z); }
void zip_error_init_with_code(zip_error_t* e, int code) { MAMBALM_ZIP_FORWARD(zip_error_init_with_code, e, code); }
const char* zip_error_strerror(zip_error_t* e) { MAMBALM_ZIP_FORWARD(zip_error_strerror, e); }
void zip_error_fini(zip_error_t* e) { MAMBALM_ZIP_FORWARD(zip_error_fini, e); }
zip_int64_t zip_get_num_entries(zip_t* z, zip_flags_t flags) { MAMBALM_ZIP_FORWARD(zip_get_num_entries, z, flags); }
void zip_stat_init(zip_stat_t* st) { MAMBALM_ZIP_FORWARD(zip_stat_init, st); }
int zip_stat_index(zip_t* z, zip_uint64_t index, zip_flags_t flags, zip_stat_t* st) {
  MAMBALM_ZIP_FORWARD(zip_stat_index, z, index, flags, st);
}
zip_file_t* zip_fopen_index(zip_t* z, zip_uint64_t index, zip_flags_t flags) {
  MAMBALM_ZIP_FORWARD(zip_fopen_index, z, index, flags);
}
zip_int64_t zip_fread(zip_file_t* f, void* buf, zip_uint64_t n) { MAMBALM_ZIP_FORWARD(zip_fread, f, buf, n); }
zip_int8_t zip_fseek(zip_file_t* f, zip_int64_t offset, int whence) { MAMBALM_ZIP_FORWARD(zip_fseek, f, offset, whence); }
const char* zip_file_strerror(zip_file_t* f) { MAMBALM_ZIP_FORWARD(zip_file_strerror, f); }
int zip_fclose(zip_file_t* f) { MAMBALM_ZIP_FORWARD(zip_fclose, f); }
zip_source_t* zip_source_buffer(zip_t* z, const void* data, zip_uint64_t n, int freep) {
  MAMBALM_ZIP_FORWARD(zip_source_buffer, z, data, n, freep);
}
void zip_source_free(zip_source_t* s) { MAMBALM_ZIP_FORWARD(zip_source_free, s); }
zip_int64_t zip_file_add(zip_t* z, const char* name, zip_source_t* s, zip_flags_t flags) {
  MAMBALM_ZIP_FORWARD(zip_file_add, z, name, s, flags);
}
int zip_set_file_compression(zip_t* z, zip_uint64_t index, zip_int32_t method, zip_uint32_t level) {
  MAMBALM_ZIP_FORWARD(zip_set_file_compression, z, index, method, level);
}
int zip_file_extra_field_set(zip_t* z, zip_uint64_t index, zip_uint16_t id, zip_uint16_t id_index,
                             const zip_uint8_t* data, zip_uint16_t len, zip_flags_t flags) {
  MAMBALM_ZIP_FORWARD(zip_file_extra_field_set, z, index, id, id_index, data, len, flags);
}

}  // extern "C"
