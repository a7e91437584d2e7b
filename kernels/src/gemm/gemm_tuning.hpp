// Internal: GEMM kernel parameters and the tuning database.
//
// Parameters come from, in order: the user tuning file (axle::tuning_file(), written
// by `axle tune gemm`), the shipped database (kernels/tuning/gemm.json, embedded), the
// built-in defaults below. Within a file an entry is chosen by specificity: device
// name > architecture > vendor > default ("*"), then an exact dtype over "*", then an
// exact shape bucket over "any". A chosen entry is checked for correctness on its
// first use in the process (the dispatcher runs a small GEMM with it against a host
// reference); an entry that fails is rejected and the next candidate is used, down to
// the built-in default, which the test suite covers on every device.
//
// File format: {"format": "axle-tuning-1", "gemm": [entry, ...]} with
//   entry = {"vendor": "*", "architecture": "*", "device": "*", "type": "cpu"|"gpu"|"*",
//            "dtype": "f32"|"f16"|"bf16"|"f64"|"*", "bucket": "any"|"small"|"skinny"|"large",
//            "kernel": "packed"|"tiled", "params": {"MR": 6, ...}, "gflops": 0, "note": ""}
//
// Thread-safety: the loaded database is immutable after loading, guarded by a mutex.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "axle/device.hpp"
#include "gemm_desc.hpp"

namespace axle::blas::detail {

enum class KernelFamily { Packed, Tiled };

struct GemmParams {
  KernelFamily family = KernelFamily::Packed;
  // packed (CPU): MR rows x (VW * NV) columns per block, MB row panels per
  // work-item, KC: k slice depth (0 = whole k), PACK_A: pack f32 A too (other types
  // are always packed).
  // NFIRST: work-item order, column panels fastest.
  int mr = 6, vw = 16, nv = 2, mb = 1, kc = 0, pack_a = 0, nfirst = 0;
  // tiled (GPU): BM x BN tile per work-group, BK deep, TM x TN per work-item.
  int bm = 64, bn = 64, bk = 16, tm = 4, tn = 4;
  std::string origin = "built-in default";

  int nr() const { return vw * nv; }
  bool same_kernel(const GemmParams& o) const;
  std::string str() const;  // "packed MR=6 VW=16 NV=2 MB=1 PACK_A=0"
  /// Structural sanity (positive, divisible, within work-group limits); "" when fine.
  std::string invalid_reason(const DeviceInfo& info) const;
};

struct TuningEntry {
  std::string vendor = "*", architecture = "*", device = "*", type = "*", dtype = "*", bucket = "any";
  GemmParams params;
  double gflops = 0;
  std::string note;
};

const char* dtype_name(ElemType t);
/// "small" (m n k <= 400^3), "skinny" (min(m, n) < 128) or "large".
const char* shape_bucket(std::size_t m, std::size_t n, std::size_t k);

/// Parse a tuning file's text. Throws ConfigError naming `origin` and the line.
std::vector<TuningEntry> parse_tuning(const std::string& text, const std::string& origin);
/// One entry as a JSON object of the file format.
nlohmann::json entry_to_json(const TuningEntry& entry);
/// Serialise entries in the file format above (a document holding only "gemm").
std::string write_tuning(const std::vector<TuningEntry>& entries);

/// Built-in default for a device, dtype and shape bucket.
GemmParams default_params(const DeviceInfo& info, ElemType dtype, const char* bucket = "large");

/// Every candidate for (device, dtype, bucket), best first: user file entries, then
/// database entries, then the built-in default (always last).
std::vector<GemmParams> candidate_params(const DeviceInfo& info, ElemType dtype, const char* bucket);

/// Drop the loaded files (they are read again on next use).
void reset_tuning_cache();

}  // namespace axle::blas::detail
