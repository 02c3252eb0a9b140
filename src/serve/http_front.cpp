// Opens the HTTP module (http_front.h) for `mambalm serve`.
#include "serve/http_front.h"

#include "core/project_module.h"

namespace mambalm::serve {

namespace {

using CreateFront = HttpFront* (*)();

CreateFront load_module() {
  // A static initialiser runs once across threads, and again on the next call if it threw.
  static const CreateFront create = [] {
    // Both places are always defined by the build (CMakeLists.txt, the serve layer).
    const ProjectModule module{"mambalm-http.so",          "MAMBALM_HTTP_MODULE",       MAMBALM_HTTP_MODULE_INSTALLED,
                               MAMBALM_HTTP_MODULE_BUILT, "mambalm_http_front_create", "serve"};
    return reinterpret_cast<CreateFront>(open_project_module(module));
  }();
  return create;
}

}  // namespace

std::unique_ptr<HttpFront> open_http_front() { return std::unique_ptr<HttpFront>(load_module()()); }

}  // namespace mambalm::serve
