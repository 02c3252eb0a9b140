// A module of this project opened at run time instead of linked: mambalm-http.so (serve's
// transport, serve/http_front.h) and mambalm-mpi.so (MPI's collectives, dist/mpi_calls.h). Each
// keeps a library that few runs use (cpp-httplib with OpenSSL; Open MPI with hwloc and libevent)
// out of every other run's start and resident memory. A module is built beside the binary and
// installed in lib/mambalm/; it exports one extern "C" function.
#pragma once

namespace mambalm {

struct ProjectModule {
  const char* file;       // "mambalm-mpi.so"
  const char* env;        // "MAMBALM_MPI_MODULE": when set, the only place tried
  const char* installed;  // the install prefix's copy (programs linking the installed libraries), or nullptr
  const char* built;      // this build tree's copy (the tests), or nullptr
  const char* symbol;     // the module's one export
  const char* who;        // the Error's subject: "serve", "MPI"
};

// The address of m.symbol in the first of these that loads: $env when set; else beside the
// running executable, ../lib/mambalm/ from it, `installed`, `built`. The module is never closed
// (what it made must outlive every caller). Throws a one-line Error naming each place tried.
// Callers keep the result: each call searches again.
void* open_project_module(const ProjectModule& m);

}  // namespace mambalm
