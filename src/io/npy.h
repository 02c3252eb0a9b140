// NumPy .npy files, for exchanging reference tensors with Python (golden outputs, activations).
// Written as format 1.0 exactly as numpy.save writes them; read back from 1.0 and 2.0.
// Dtypes: F32 '<f4', F64 '<f8', I32 '<i4', I64 '<i8'; C order only.
#pragma once
#include <string>

#include "core/tensor.h"

namespace mambalm::io {

// Writes atomically (tmp + fsync + rename). BF16/F16 have no NumPy spelling: convert first.
void write_npy(const std::string& path, const Tensor& t);

// A new CPU tensor owning the file's data. Errors name the path and the header field at fault.
Tensor read_npy(const std::string& path);

// The bytes write_npy would write (exposed for tests and in-memory use).
std::string encode_npy(const Tensor& t);

}  // namespace mambalm::io
