// A shared library opened on first use instead of linked (dist/nccl_loader.cpp,
// io/torch/zip_loader.cpp): the binary starts without it, and only the runs that call into it
// load it. Failures are one-line Errors that name the library and say what needs it.
#pragma once
#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace mambalm {

// dlopen(soname), or an Error "<soname>: cannot load ... (<needed_for>)".
inline void* open_shared_library(const char* soname, const char* needed_for) {
  void* handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    fail(soname, std::string("cannot load it: ") + (why ? why : "unknown error"), needed_for);
  }
  return handle;
}

// The symbol `name` of an opened library as a function pointer F, or an Error naming it.
template <class F>
F shared_library_symbol(void* handle, const char* soname, const char* name, const char* version_hint) {
  void* p = dlsym(handle, name);
  if (!p) fail(soname, std::string("has no symbol ") + name, version_hint);
  return reinterpret_cast<F>(p);
}

}  // namespace mambalm
