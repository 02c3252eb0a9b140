// How much memory this machine (or its container) gives the process, so that a model or a batch
// too large for it is refused with a message before anything is allocated, instead of the
// kernel's OOM killer ending the run with no word of why.
#pragma once
#include <cstdint>
#include <string>

namespace mambalm {

// Physical memory in bytes, lowered to the cgroup limit (memory.max) when one is set; read once.
int64_t host_memory_bytes();

// Throws naming `where` when `bytes` cannot fit in host_memory_bytes(): "<what> needs X GB but
// this machine has Y GB (<hint>)".
void check_fits_host_memory(int64_t bytes, const std::string& where, const std::string& what,
                            const std::string& hint = "");

// "1.23 GB"
std::string gigabytes(double bytes);

}  // namespace mambalm
