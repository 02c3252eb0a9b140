#include "core/project_module.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"

namespace mambalm {

namespace {

std::vector<std::string> module_places(const ProjectModule& m) {
  if (const char* env = std::getenv(m.env); env && *env) return {env};  // the user's choice only
  std::vector<std::string> places;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    places.push_back((exe.parent_path() / m.file).string());
    places.push_back((exe.parent_path().parent_path() / "lib" / "mambalm" / m.file).string());
  }
  if (m.installed) places.emplace_back(m.installed);
  if (m.built) places.emplace_back(m.built);
  return places;
}

}  // namespace

void* open_project_module(const ProjectModule& m) {
  std::string tried;
  for (const std::string& place : module_places(m)) {
    void* handle = dlopen(place.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      tried += (tried.empty() ? "" : "; ") + (why ? std::string(why) : place);
      continue;
    }
    if (void* symbol = dlsym(handle, m.symbol)) return symbol;
    tried += (tried.empty() ? "" : "; ") + place + ": no " + m.symbol;
  }
  fail(m.who, "cannot load the module " + std::string(m.file) + " (" + tried + ")",
       std::string("it is built beside the mambalm binary and installed in lib/mambalm/; ") + m.env +
           "=PATH names another");
}

}  // namespace mambalm
