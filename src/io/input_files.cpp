#include "io/input_files.h"

#include <glob.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/host_memory.h"
#include "io/atomic_file.h"

namespace mambalm::io {

namespace fs = std::filesystem;

namespace {

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// A decompressed text larger than the machine's memory cannot be held: said before it is tried
// (a small hostile file may expand a thousandfold).
void check_output_size(const std::string& path, size_t bytes) {
  if (static_cast<int64_t>(bytes) > host_memory_bytes() / 2)
    fail(path, "decompresses to more than half of this machine's memory (" + gigabytes(static_cast<double>(bytes)) + " so far)",
         "split the input into smaller files");
}

std::string gunzip(const std::string& path, const std::string& in) {
  std::string out;
  z_stream z{};
  // 15 + 32: a zlib or gzip header, detected; each member of a multi-member file in turn.
  if (inflateInit2(&z, 15 + 32) != Z_OK) fail(path, "cannot start the gzip decoder");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
  const auto truncated = [&] {
    fail(path, "truncated gzip file (the stream ends after " + std::to_string(in.size()) + " bytes)",
         "the file is incomplete; download or compress it again");
  };
  size_t fed = 0;  // bytes of `in` handed to zlib so far
  char buf[1 << 16];
  for (;;) {
    if (z.avail_in == 0 && fed < in.size()) {
      const size_t n = std::min<size_t>(in.size() - fed, size_t{1} << 30);  // avail_in is 32-bit
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + fed));
      z.avail_in = static_cast<uInt>(n);
      fed += n;
    }
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    check_output_size(path, out.size());
    const bool input_done = z.avail_in == 0 && fed == in.size();
    if (rc == Z_STREAM_END) {
      // Another member may follow (cat a.gz b.gz); zero padding after the last one is allowed.
      const size_t next = fed - z.avail_in;
      if (next == in.size() || in.find_first_not_of('\0', next) == std::string::npos) break;
      if (detect_compression(std::string_view(in).substr(next)) != Compression::Gzip)
        fail(path, "unexpected bytes after a gzip member at offset " + std::to_string(next), "the file is damaged");
      if (inflateReset(&z) != Z_OK) fail(path, "cannot restart the gzip decoder");
      continue;
    }
    if (rc == Z_BUF_ERROR) {  // no progress: only possible for want of input
      if (input_done) truncated();
      continue;
    }
    if (rc != Z_OK) fail(path, std::string("corrupt gzip data: ") + (z.msg ? z.msg : "inflate failed"), "the file is damaged; compress it again");
    if (input_done && z.avail_out != 0) truncated();  // all input taken, output not full, no end
  }
  return out;
}

std::string unzstd(const std::string& path, const std::string& in) {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) fail(path, "cannot start the zstd decoder");
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  size_t last = 0;
  while (input.pos < input.size) {
    ZSTD_outBuffer output{buf.data(), buf.size(), 0};
    last = ZSTD_decompressStream(ctx.get(), &output, &input);
    if (ZSTD_isError(last)) fail(path, std::string("corrupt zstd data: ") + ZSTD_getErrorName(last), "the file is damaged; compress it again");
    out.append(buf.data(), output.pos);
    check_output_size(path, out.size());
  }
  // Input used up: flush what the decoder still holds; a frame left open means a cut file.
  while (last != 0) {
    ZSTD_outBuffer output{buf.data(), buf.size(), 0};
    last = ZSTD_decompressStream(ctx.get(), &output, &input);
    if (ZSTD_isError(last)) fail(path, std::string("corrupt zstd data: ") + ZSTD_getErrorName(last), "the file is damaged; compress it again");
    out.append(buf.data(), output.pos);
    check_output_size(path, out.size());
    if (output.pos == 0 && last != 0)
      fail(path, "truncated zstd file (the last frame is incomplete after " + std::to_string(in.size()) + " bytes)",
           "the file is incomplete; download or compress it again");
  }
  return out;
}

}  // namespace

Compression detect_compression(std::string_view head) {
  const auto* b = reinterpret_cast<const unsigned char*>(head.data());
  if (head.size() >= 2 && b[0] == 0x1F && b[1] == 0x8B) return Compression::Gzip;
  if (head.size() >= 4 && b[0] == 0x28 && b[1] == 0xB5 && b[2] == 0x2F && b[3] == 0xFD) return Compression::Zstd;
  return Compression::None;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::Gzip: return "gzip";
    case Compression::Zstd: return "zstd";
    case Compression::None: break;
  }
  return "plain";
}

std::string strip_compression_suffix(const std::string& path) {
  for (const char* suffix : {".gz", ".zst", ".zstd"})
    if (path.ends_with(suffix)) return path.substr(0, path.size() - std::string(suffix).size());
  return path;
}

std::string read_input_file(const std::string& path, Compression* found) {
  std::string bytes = read_text_file(path);
  const Compression c = detect_compression(bytes);
  if (found) *found = c;
  const Compression named = path.ends_with(".gz") ? Compression::Gzip
                            : (path.ends_with(".zst") || path.ends_with(".zstd")) ? Compression::Zstd
                                                                                    : Compression::None;
  if (named != Compression::None && c != named)
    fail(path, std::string("the name says ") + compression_name(named) + " but the file does not start like one (" +
                   (bytes.empty() ? std::string("it is empty") : std::string(compression_name(c)) + " bytes") + ")",
         "a damaged or renamed file");
  if (c == Compression::Gzip) return gunzip(path, bytes);
  if (c == Compression::Zstd) return unzstd(path, bytes);
  return bytes;
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns, const std::string& option) {
  std::vector<std::string> files;
  for (const std::string& p : patterns) {
    check(!p.empty(), option, "empty path");
    std::vector<std::string> matched;
    if (has_glob_chars(p)) {
      glob_t g{};
      int rc = ::glob(p.c_str(), GLOB_ERR, nullptr, &g);
      if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) matched.emplace_back(g.gl_pathv[i]);
      ::globfree(&g);
      check(rc != GLOB_ABORTED, p, "a directory could not be read while expanding the pattern");
      check(!matched.empty(), p, "pattern matches no file");
    } else {
      matched.push_back(p);
    }
    for (const std::string& m : matched) {
      std::error_code ec;
      fs::file_status st = fs::status(m, ec);
      check(!ec || ec == std::errc::no_such_file_or_directory, m, "cannot access: " + ec.message());
      check(fs::exists(st), m, "no such file or directory");
      if (fs::is_directory(st)) {
        std::vector<std::string> inside;
        fs::recursive_directory_iterator it(m, ec), end;
        check(!ec, m, "cannot read directory: " + ec.message());
        for (; it != end; it.increment(ec)) {
          check(!ec, m, "cannot read directory: " + ec.message());
          const std::string name = it->path().filename().string();
          if (!name.empty() && name[0] == '.') {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
          }
          if (it->is_regular_file()) inside.push_back(it->path().string());
        }
        check(!inside.empty(), m, "directory holds no file");
        files.insert(files.end(), inside.begin(), inside.end());
      } else {
        check(fs::is_regular_file(st), m, "not a regular file");
        files.push_back(m);
      }
    }
  }
  check(!files.empty(), option, "no input files");
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

}  // namespace mambalm::io
