// Run files: a command's options in a TOML file (`mambalm train --config run.toml`), read with
// Debian's toml++ (libtomlplusplus; run_file_toml.cpp). A build without toml++ (CMake's
// MAMBALM_TOML) refuses to read one with a one-line error (run_file_no_toml.cpp) but still writes
// them (run_file_text, run_file.cpp). Each key is an option's flag name (`seq-len = 1024`,
// underscores accepted for dashes: `seq_len`); a flag is `resume = true` (false leaves it off).
// The file becomes argv tokens placed before the command line's, so that the command line
// overrides the file, and every other check stays the option parser's (args.h). What the
// parser cannot see is checked here, each a one-line error naming FILE:LINE: malformed TOML,
// unknown keys, and values of the wrong TOML type (a table, an array where no list is
// allowed, true/false for an option that takes a value, a number for a flag).
#pragma once
#include <set>
#include <string>
#include <vector>

#include "args.h"

namespace mambalm::cli {

// The options a command accepts whose value may also be a TOML array; its items (strings and
// numbers) are joined with single spaces into the one value the command parses.
using ListOptions = std::set<std::string>;

// The argv tokens ("--seq-len", "1024", "--resume", ...) of the run file at `path`, for a
// command whose options `args` declares. `origins` (if given) receives, per option, where its
// value was written ("run.toml:3"), for errors about the value.
std::vector<std::string> run_file_tokens(const std::string& path, const Args& args, const ListOptions& lists = {},
                                         std::vector<std::pair<std::string, std::string>>* origins = nullptr);

// argv after the command name with `--config FILE` (or `--config=FILE`) expanded: the file's
// tokens, then the command line's without --config. Options given on the command line keep no
// file origin. Without --config, the command line as it is. `args` receives the origins.
std::vector<std::string> expand_run_file(int argc, char** argv, Args& args, const ListOptions& lists = {});

// A run file holding the options `args` parsed (file and command line together), in the order
// the command declares them, leaving out `leave_out` (e.g. "config", or options that describe
// this invocation rather than the run). Values that read as TOML numbers are written as
// numbers, the rest as strings, flags as `name = true`. A value of several words of an option
// in `lists` is written as an array of its words (data = [0.7, "A", 0.3, "B"]), which reads
// back as the same value.
std::string run_file_text(const Args& args, const std::set<std::string>& leave_out = {}, const ListOptions& lists = {});

}  // namespace mambalm::cli
