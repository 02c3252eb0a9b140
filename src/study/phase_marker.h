// Done-markers of the study's phases. A phase writes its outputs first, atomically, then
// DIR/<phase>/done.json holding a fingerprint of everything it depended on (its settings and
// the fingerprints of the phases it read). A rerun skips a phase whose marker matches, redoes
// one that has no marker, and refuses one whose marker records other inputs, naming the phase.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace mambalm::study {

// 16 hex digits: FNV-1a over the JSON text of `inputs` (deterministic: nlohmann sorts keys).
std::string fingerprint_of(const nlohmann::json& inputs);

// The marker's path: DIR/<phase>/done.json.
std::string marker_path(const std::string& out_dir, const std::string& phase);

// True when the phase is done with this fingerprint; false when it has no marker. Throws when
// its marker records another fingerprint (the study directory was made with other options).
bool phase_done(const std::string& out_dir, const std::string& phase, const std::string& fingerprint);

// True when the phase is done with this fingerprint; false when it has no marker, an unreadable
// one or one with another fingerprint. For the families a `--families` run leaves alone: their
// markers decide only whether the phase's own marker can be written, never fail the run.
bool marker_matches(const std::string& out_dir, const std::string& phase, const std::string& fingerprint);

// The fingerprint of a finished phase, for the phases after it; throws when it is not done.
std::string done_fingerprint(const std::string& out_dir, const std::string& phase);

// Writes the marker atomically; `summary` is kept in it for the report.
void mark_done(const std::string& out_dir, const std::string& phase, const std::string& fingerprint, const nlohmann::json& summary);

// The summary a finished phase stored in its marker.
nlohmann::json done_summary(const std::string& out_dir, const std::string& phase);

}  // namespace mambalm::study
