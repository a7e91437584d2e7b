// Internal: the tuning database files shared by every operation.
//
// One JSON document per file, {"format": "axle-tuning-1", "gemm": [...], "conv": [...]},
// one array per operation. Files, highest precedence first: the user file
// (axle::tuning_file(), written by `axle tune`), the shipped database
// (kernels/tuning/*.json, embedded; ignored when AXLE_TUNING_SHIPPED=0), then each
// operation's built-in defaults. Every entry names the devices it is for:
// "vendor", "architecture", "device" (name) and "type" ("cpu", "gpu", "other"), each
// "*" for any; match_score ranks a matching entry by how specific it is.
//
// Thread-safety: the loaded documents are immutable after loading, guarded by a mutex.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "axle/device.hpp"

namespace axle::kernels_detail {

/// A loaded file: its entries for one operation, and where they came from.
struct TuningSource {
  std::string origin;  ///< path, or "kernels/tuning/gemm.json (built in)"
  nlohmann::json entries = nlohmann::json::array();
};

/// The sources for `operation` ("gemm", "conv"), user file first. Loaded once per
/// process (reset_tuning_files() forgets them). Throws ConfigError for a malformed file.
std::vector<TuningSource> tuning_sources(const std::string& operation);
void reset_tuning_files();

/// Whether the shipped database is used (AXLE_TUNING_SHIPPED, default on).
bool shipped_tuning_enabled();

/// Parse a tuning document; ConfigError names `origin` and the line.
nlohmann::json parse_tuning_document(const std::string& text, const std::string& origin);
/// Read `path` (an empty document when it does not exist).
nlohmann::json read_tuning_document(const std::string& path);
/// Replace the entries of `operation` in the file at `path` for which `replaced`
/// returns true with `fresh` (other operations' entries are kept), writing through a
/// temporary file and a rename. Throws Error when it cannot write.
void update_tuning_file(const std::string& path, const std::string& operation,
                        const std::function<bool(const nlohmann::json&)>& replaced, const nlohmann::json& fresh);

/// -1 when `entry` does not match the device, else a score: device name 64,
/// architecture 32, vendor 16, type 8 (case-insensitive; "*" matches anything).
int device_match_score(const nlohmann::json& entry, const DeviceInfo& info);
/// "cpu", "gpu" or "other".
const char* device_type_name(const DeviceInfo& info);
/// The string field `key` of `entry`, or `fallback`.
std::string entry_string(const nlohmann::json& entry, const char* key, const char* fallback);

}  // namespace axle::kernels_detail
