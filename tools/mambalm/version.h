// `mambalm --version` (version.cpp).
#pragma once

namespace mambalm::cli {

void print_version();

}  // namespace mambalm::cli
