// Opens the HTTP module (http_front.h) for `mambalm serve`.
#include "serve/http_front.h"

#include <mutex>

#include "core/project_module.h"

namespace mambalm::serve {

namespace {

using CreateFront = HttpFront* (*)();

CreateFront load_module() {
  static std::once_flag once;
  static CreateFront create = nullptr;
  std::call_once(once, [] {
    const ProjectModule module{"mambalm-http.so", "MAMBALM_HTTP_MODULE",
#ifdef MAMBALM_HTTP_MODULE_INSTALLED
                               MAMBALM_HTTP_MODULE_INSTALLED,
#else
                               nullptr,
#endif
#ifdef MAMBALM_HTTP_MODULE_BUILT
                               MAMBALM_HTTP_MODULE_BUILT,
#else
                               nullptr,
#endif
                               "mambalm_http_front_create", "serve"};
    create = reinterpret_cast<CreateFront>(open_project_module(module));
  });
  return create;
}

}  // namespace

std::unique_ptr<HttpFront> open_http_front() { return std::unique_ptr<HttpFront>(load_module()()); }

}  // namespace mambalm::serve
