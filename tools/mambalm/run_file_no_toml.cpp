// Run files (run_file.h) in a build without toml++ (Ubuntu 22.04 does not package it; CMake's
// MAMBALM_TOML): reading one is a one-line error that says so. Writing run.toml needs no
// library (run_file.cpp), so runs still record their options.
#include "core/error.h"
#include "run_file.h"

namespace mambalm::cli {

std::vector<std::string> run_file_tokens(const std::string& path, const Args& args, const ListOptions&,
                                         std::vector<std::pair<std::string, std::string>>*) {
  fail(path, "this mambalm was built without TOML support (toml++), so it cannot read run files",
       "give the options on the command line (mambalm " + args.command() +
           " --help), or rebuild with libtomlplusplus-dev installed (docs/building.md)");
}

}  // namespace mambalm::cli
