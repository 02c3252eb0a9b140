// The web playground (web/playground.html), embedded in the binary when it is built, so that
// `mambalm serve` serves it at "/" from wherever the binary runs.
#pragma once
#include <string_view>

namespace mambalm::serve {

std::string_view playground_html();

}  // namespace mambalm::serve
