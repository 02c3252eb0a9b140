// .npy read/write: round trips, byte-exact agreement with what numpy.save writes, files from
// older numpy versions and format 2.0, and malformed files (each a mambalm::Error).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "test_util.h"

namespace mambalm::io {
namespace {

namespace fs = std::filesystem;
using mambalm::testing::random_tensor;

using mambalm::testing::expect_error;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// "\x93NUMPY" + version + little-endian header length + header text + data.
std::string npy_file(int major, const std::string& header, const std::string& data) {
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  size_t n = header.size();
  for (int b = 0; b < (major == 1 ? 2 : 4); ++b) out += static_cast<char>((n >> (8 * b)) & 0xff);
  return out + header + data;
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.raw()), t.nbytes()); }

class Npy : public ::testing::Test {
 protected:
  void SetUp() override { dir = mambalm::testing::temp_dir("npy"); }
  void TearDown() override { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  std::string dir;
};

TEST_F(Npy, RoundTrip) {
  const Shape shapes[] = {{2, 3}, {7}, {}, {0, 4}, {2, 1, 3, 2}};
  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::I64}) {
    for (const Shape& s : shapes) {
      Tensor t = random_tensor(s, -1000.0f, 1000.0f).to(dtype);
      const std::string p = file("t.npy");
      write_npy(p, t);
      std::string raw = read_text_file(p);
      ASSERT_GE(raw.size(), 10u);
      EXPECT_EQ((raw.size() - t.nbytes()) % 64, 0u) << "data must start 64-byte aligned";
      Tensor back = read_npy(p);
      EXPECT_EQ(back.dtype(), dtype);
      EXPECT_EQ(back.shape(), s);
      EXPECT_EQ(bytes_of(back), bytes_of(t)) << dtype_name(dtype) << " " << shape_str(s);
    }
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1) << "tmp file left behind";
}

TEST_F(Npy, WritesExactlyWhatNumpySaveWrites) {
  // numpy.save(np.arange(6, dtype=np.float32).reshape(2, 3)): header length 118 ('v'), padded
  // with spaces (room to grow the first axis) and a final newline so data starts at 128.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + std::string(118 - dict.size() - 1, ' ') + "\n";
  ASSERT_EQ(expected.size(), 128u);
  Tensor t = Tensor::empty({2, 3});
  for (int i = 0; i < 6; ++i) t.f32()[i] = static_cast<float>(i);
  expected += bytes_of(t);
  EXPECT_EQ(encode_npy(t), expected);

  write_bytes(file("numpy.npy"), expected);
  Tensor back = read_npy(file("numpy.npy"));
  ASSERT_EQ(back.shape(), Shape({2, 3}));
  ASSERT_EQ(back.dtype(), DType::F32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back.f32()[i], static_cast<float>(i));

  // 1-D and 0-D shapes are spelled (5,) and ().
  EXPECT_NE(encode_npy(Tensor::zeros({5}, DType::I64)).find("'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"),
            std::string::npos);
  EXPECT_NE(encode_npy(Tensor::zeros({}, DType::F64)).find("'shape': (), }"), std::string::npos);
}

TEST_F(Npy, ReadsOlderNumpyAndVersion2) {
  // numpy < 1.14 padded to 16 bytes and had no growth room; double quotes and no trailing
  // comma are also accepted.
  int32_t v[3] = {-1, 2, 300000};
  std::string data(reinterpret_cast<const char*>(v), sizeof v);
  write_bytes(file("old.npy"), npy_file(1, "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (3,)}     \n", data));
  Tensor a = read_npy(file("old.npy"));
  ASSERT_EQ(a.shape(), Shape({3}));
  EXPECT_EQ(a.data<int32_t>()[2], 300000);

  double d[2] = {0.25, -8.0};
  write_bytes(file("v2.npy"), npy_file(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }\n",
                                       std::string(reinterpret_cast<const char*>(d), sizeof d)));
  Tensor b = read_npy(file("v2.npy"));
  ASSERT_EQ(b.shape(), Shape({1, 2}));
  EXPECT_EQ(b.data<double>()[1], -8.0);
}

TEST_F(Npy, BadFiles) {
  const std::string p = file("bad.npy");
  auto bad = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    write_bytes(p, bytes);
    std::vector<std::string> all = parts;
    all.insert(all.begin(), "bad.npy");
    expect_error([&] { read_npy(p); }, all);
  };
  const std::string f4x2(8, '\0');
  bad("", {"bad magic"});
  bad("PK\x03\x04 this is a zip", {"bad magic"});
  bad(std::string("\x93NUMPZ\x01\x00", 8), {"bad magic"});
  bad(npy_file(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", f4x2), {"version 3.0"});
  {
    std::string b = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", f4x2);
    b[8] = '\xff';
    b[9] = '\x7f';
    bad(b, {"header length 32767", "past the end"});
  }
  bad(std::string("\x93NUMPY\x01\x00\x05", 9), {"inside the npy header length"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", f4x2), {"fortran_order"});
  bad(npy_file(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", f4x2), {"'>f4'", "not supported"});
  bad(npy_file(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }\n", f4x2), {"'|b1'"});
  bad(npy_file(1, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", f4x2), {"'descr'"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", f4x2), {"needs 12", "truncated"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n", f4x2), {"'shape'", "negative"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, }\n", f4x2), {"lacks 'shape'"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", f4x2), {"'x'"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}\n", f4x2), {"twice"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n", f4x2),
      {"too large"});
  bad(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", f4x2), {"npy header"});
  expect_error([&] { read_npy(file("absent.npy")); }, {"absent.npy", "cannot open"});
  expect_error([&] { write_npy(file("h.npy"), Tensor::zeros({2}, DType::BF16)); }, {"h.npy", "BF16"});
}

}  // namespace
}  // namespace mambalm::io
