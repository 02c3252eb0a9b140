// How much memory this machine (or its container) gives the process, so that a model or a batch
// too large for it is refused with a message before anything is allocated, instead of the
// kernel's OOM killer ending the run with no word of why.
#pragma once
#include <cstdint>
#include <string>

namespace mambalm {

// Physical memory in bytes, lowered to the cgroup limit (memory.max) when one is set; read once.
int64_t host_memory_bytes();

// Memory a new allocation can have now: MemAvailable of /proc/meminfo (free memory plus the page
// cache the kernel can drop), lowered to a cgroup's limit minus its usage when one is set. The
// environment variable MAMBALM_AVAILABLE_MEMORY (bytes, or a number with KB, MB or GB: "2.5GB")
// replaces it: for tests, and to keep a share of a machine free. Read at each call (it changes).
int64_t available_memory_bytes();
// Where available_memory_bytes() came from, for messages: "MemAvailable" or "MAMBALM_AVAILABLE_MEMORY".
std::string available_memory_source();

// Throws naming `where` when `bytes` cannot fit in host_memory_bytes(): "<what> needs X GB but
// this machine has Y GB (<hint>)".
void check_fits_host_memory(int64_t bytes, const std::string& where, const std::string& what,
                            const std::string& hint = "");

// "1.23 GB"
std::string gigabytes(double bytes);

}  // namespace mambalm
