// Opens the HTTP module (http_front.h) for `mambalm serve`.
#include "serve/http_front.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"

namespace mambalm::serve {

namespace {

constexpr const char* kModuleFile = "mambalm-http.so";

// Where the module may be, in order (see open_http_front).
std::vector<std::string> module_places() {
  if (const char* env = std::getenv("MAMBALM_HTTP_MODULE"); env && *env) return {env};  // the user's choice only
  std::vector<std::string> places;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    places.push_back((exe.parent_path() / kModuleFile).string());
    places.push_back((exe.parent_path().parent_path() / "lib" / "mambalm" / kModuleFile).string());
  }
#ifdef MAMBALM_HTTP_MODULE_INSTALLED
  places.emplace_back(MAMBALM_HTTP_MODULE_INSTALLED);  // the install prefix's (other programs)
#endif
#ifdef MAMBALM_HTTP_MODULE_BUILT
  places.emplace_back(MAMBALM_HTTP_MODULE_BUILT);  // this build tree's (the tests)
#endif
  return places;
}

using CreateFront = HttpFront* (*)();

CreateFront load_module() {
  static std::once_flag once;
  static CreateFront create = nullptr;
  static std::string tried;
  std::call_once(once, [] {
    for (const std::string& place : module_places()) {
      // Never closed: the transport's code must outlive every server made from it.
      void* handle = dlopen(place.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        const char* why = dlerror();
        tried += (tried.empty() ? "" : "; ") + (why ? std::string(why) : place);
        continue;
      }
      create = reinterpret_cast<CreateFront>(dlsym(handle, "mambalm_http_front_create"));
      if (create) return;
      tried += (tried.empty() ? "" : "; ") + place + ": no mambalm_http_front_create";
    }
  });
  check(create != nullptr, "serve", "cannot load the HTTP module " + std::string(kModuleFile) + " (" + tried + ")",
        "it is built beside the mambalm binary and installed in lib/mambalm/; MAMBALM_HTTP_MODULE=PATH names another");
  return create;
}

}  // namespace

std::unique_ptr<HttpFront> open_http_front() { return std::unique_ptr<HttpFront>(load_module()()); }

}  // namespace mambalm::serve
