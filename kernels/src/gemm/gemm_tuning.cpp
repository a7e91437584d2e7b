// GEMM tuning database: parsing, matching, defaults (see gemm_tuning.hpp).
#include "gemm_tuning.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>

#include "axle/config.hpp"
#include "axle/error.hpp"
#include "common/tuning_file.hpp"

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::blas::detail {

bool GemmParams::same_kernel(const GemmParams& o) const {
  if (family != o.family) return false;
  if (family == KernelFamily::Packed) return mr == o.mr && vw == o.vw && nv == o.nv && mb == o.mb && kc == o.kc && pack_a == o.pack_a &&
           nfirst == o.nfirst;
  return bm == o.bm && bn == o.bn && bk == o.bk && tm == o.tm && tn == o.tn;
}

std::string GemmParams::str() const {
  std::ostringstream s;
  if (family == KernelFamily::Packed)
    s << "packed MR=" << mr << " VW=" << vw << " NV=" << nv << " MB=" << mb << " KC=" << kc << " PACK_A=" << pack_a
      << " NFIRST=" << nfirst;
  else
    s << "tiled BM=" << bm << " BN=" << bn << " BK=" << bk << " TM=" << tm << " TN=" << tn;
  return s.str();
}

std::string GemmParams::invalid_reason(const DeviceInfo& info) const {
  if (family == KernelFamily::Packed) {
    if (mr < 1 || mr > 32) return "MR must be in 1..32";
    if (vw != 2 && vw != 4 && vw != 8 && vw != 16) return "VW must be 2, 4, 8 or 16";
    if (nv < 1 || nv > 8) return "NV must be in 1..8";
    if (mb < 1 || mb > 1024) return "MB must be in 1..1024";
    if (pack_a != 0 && pack_a != 1) return "PACK_A must be 0 or 1";
    if (kc < 0 || kc > 65536) return "KC must be in 0..65536";
    if (nfirst != 0 && nfirst != 1) return "NFIRST must be 0 or 1";
    if (kc > 0 && static_cast<long>(mb) * mr * vw * nv > 65536) return "MB * MR * NR partial sums exceed 256 KiB";
    return "";
  }
  if (bm < 1 || bn < 1 || bk < 1 || tm < 1 || tn < 1) return "tile sizes must be positive";
  if (bm % tm || bn % tn) return "BM must be a multiple of TM and BN of TN";
  const std::size_t threads = static_cast<std::size_t>(bm / tm) * static_cast<std::size_t>(bn / tn);
  if (info.max_work_group_size && threads > info.max_work_group_size)
    return "work-group of " + std::to_string(threads) + " exceeds the device's " +
           std::to_string(info.max_work_group_size);
  const std::size_t local = static_cast<std::size_t>(bk) * (static_cast<std::size_t>(bm) + bn + 8) * 8;
  if (info.local_mem_bytes && local > info.local_mem_bytes) return "local memory tiles exceed the device's";
  return "";
}

const char* dtype_name(ElemType t) {
  switch (t) {
    case ElemType::F32: return "f32";
    case ElemType::F16: return "f16";
    case ElemType::BF16: return "bf16";
    case ElemType::F64: return "f64";
  }
  return "f32";
}

const char* shape_bucket(std::size_t m, std::size_t n, std::size_t k) {
  if (static_cast<double>(m) * n * k <= 400.0 * 400 * 400) return "small";
  if (std::min(m, n) < 128) return "skinny";
  return "large";
}

namespace {

// A kernel parameter: an integer within int's range (1e30 or 2.5 are errors, not a
// value converted out of range).
int param_int(const nlohmann::json& params, const char* key, int fallback, const std::string& origin) {
  auto it = params.find(key);
  if (it == params.end() || !it->is_number()) return fallback;
  constexpr double kMin = std::numeric_limits<int>::min(), kMax = std::numeric_limits<int>::max();
  if (it->is_number_unsigned()) {
    if (it->get<std::uint64_t>() <= static_cast<std::uint64_t>(kMax)) return static_cast<int>(it->get<std::uint64_t>());
  } else if (it->is_number_integer()) {
    const std::int64_t v = it->get<std::int64_t>();
    if (v >= kMin && v <= kMax) return static_cast<int>(v);
  } else {
    const double v = it->get<double>();
    if (v >= kMin && v <= kMax && v == std::floor(v)) return static_cast<int>(v);
  }
  throw ConfigError("tuning file " + origin + ": parameter " + key + " = " + it->dump() + " is not an integer",
                    origin, 0, key);
}

TuningEntry entry_from_json(const nlohmann::json& e, const std::string& origin) {
  using kernels_detail::entry_string;
  TuningEntry t;
  t.vendor = entry_string(e, "vendor", "*");
  t.architecture = entry_string(e, "architecture", "*");
  t.device = entry_string(e, "device", "*");
  t.type = entry_string(e, "type", "*");
  t.dtype = entry_string(e, "dtype", "*");
  t.bucket = entry_string(e, "bucket", "any");
  t.gflops = e.contains("gflops") && e["gflops"].is_number() ? e["gflops"].get<double>() : 0.0;
  if (!(t.gflops >= 0 && t.gflops < 1e15)) t.gflops = 0;  // a note for people, never a huge or negative rate
  t.note = entry_string(e, "note", "");
  const std::string kernel = entry_string(e, "kernel", "packed");
  if (kernel != "packed" && kernel != "tiled")
    throw ConfigError("tuning file " + origin + ": unknown kernel \"" + kernel + "\" (packed or tiled)", origin, 0,
                      "kernel");
  const nlohmann::json params = e.contains("params") && e["params"].is_object() ? e["params"] : nlohmann::json::object();
  GemmParams g;
  g.family = kernel == "packed" ? KernelFamily::Packed : KernelFamily::Tiled;
  g.mr = param_int(params, "MR", g.mr, origin);
  g.vw = param_int(params, "VW", g.vw, origin);
  g.nv = param_int(params, "NV", g.nv, origin);
  g.mb = param_int(params, "MB", g.mb, origin);
  g.pack_a = param_int(params, "PACK_A", g.pack_a, origin);
  g.kc = param_int(params, "KC", g.kc, origin);
  g.nfirst = param_int(params, "NFIRST", g.nfirst, origin);
  g.bm = param_int(params, "BM", g.bm, origin);
  g.bn = param_int(params, "BN", g.bn, origin);
  g.bk = param_int(params, "BK", g.bk, origin);
  g.tm = param_int(params, "TM", g.tm, origin);
  g.tn = param_int(params, "TN", g.tn, origin);
  g.origin = origin + " (vendor=" + t.vendor + ", architecture=" + t.architecture + ", device=" + t.device +
             ", dtype=" + t.dtype + ", bucket=" + t.bucket + ")";
  t.params = g;
  return t;
}

}  // namespace

nlohmann::json entry_to_json(const TuningEntry& t) {
  const GemmParams& g = t.params;
  nlohmann::json params = nlohmann::json::object();
  if (g.family == KernelFamily::Packed) {
    params = {{"MR", g.mr}, {"VW", g.vw}, {"NV", g.nv}, {"MB", g.mb}, {"KC", g.kc}, {"PACK_A", g.pack_a},
              {"NFIRST", g.nfirst}};
  } else {
    params = {{"BM", g.bm}, {"BN", g.bn}, {"BK", g.bk}, {"TM", g.tm}, {"TN", g.tn}};
  }
  return nlohmann::json{{"vendor", t.vendor},
                        {"architecture", t.architecture},
                        {"device", t.device},
                        {"type", t.type},
                        {"dtype", t.dtype},
                        {"bucket", t.bucket},
                        {"kernel", g.family == KernelFamily::Packed ? "packed" : "tiled"},
                        {"params", params},
                        {"gflops", static_cast<long long>(t.gflops)},
                        {"note", t.note}};
}

std::vector<TuningEntry> parse_tuning(const std::string& text, const std::string& origin) {
  const nlohmann::json doc = kernels_detail::parse_tuning_document(text, origin);
  std::vector<TuningEntry> out;
  if (!doc.contains("gemm")) return out;
  for (const auto& e : doc["gemm"]) out.push_back(entry_from_json(e, origin));
  return out;
}

std::string write_tuning(const std::vector<TuningEntry>& entries) {
  nlohmann::json doc{{"format", "axle-tuning-1"}, {"gemm", nlohmann::json::array()}};
  for (const TuningEntry& t : entries) doc["gemm"].push_back(entry_to_json(t));
  return doc.dump(2) + "\n";
}

GemmParams default_params(const DeviceInfo& info, ElemType dtype, const char* bucket) {
  GemmParams g;
  if (info.type == DeviceType::CPU && dtype != ElemType::F64) {
    g.family = KernelFamily::Packed;
    // From the vector width (registers: 32 with 16-wide vectors, AVX-512; 16 with
    // 8-wide, AVX2) and the shape bucket, never from a CPU's name:
    //  * large: 6 x 4 vectors (24 accumulators + 4 B vectors + 1 broadcast), A packed,
    //    4 row panels per work-item;
    //  * skinny (min(m, n) < 128): the same block, A read in place, one panel per item
    //    (the dispatcher's narrow and short-C paths take the extremes);
    //  * small (m n k <= 400^3): 8 x 3 vectors (less edge waste), A read in place (one
    //    launch less).
    // These are what `axle tune gemm` chose on an AVX-512 PoCL device for each bucket.
    const std::string b(bucket);
    g.vw = info.preferred_vector_width_float >= 16 ? 16 : 8;
    const bool wide = g.vw == 16;
    if (b == "small") {
      g.mr = wide ? 8 : 6;
      g.nv = wide ? 3 : 2;
      g.mb = 1;
      g.pack_a = 0;
    } else if (b == "skinny") {
      g.mr = 6;
      g.nv = wide ? 4 : 2;
      g.mb = 1;
      g.pack_a = 0;
    } else {
      g.mr = 6;
      g.nv = wide ? 4 : 2;
      g.mb = 4;
      g.pack_a = 1;
    }
  } else if (info.type == DeviceType::CPU) {
    g.family = KernelFamily::Tiled;
    g.bm = g.bn = 32;
    g.bk = 8;
    g.tm = g.tn = 4;
  } else {
    g.family = KernelFamily::Tiled;
    g.bm = g.bn = 64;
    g.bk = 16;
    g.tm = g.tn = 4;
  }
  g.origin = "built-in default";
  return g;
}

namespace {

// -1 when it does not match, else a score: higher is more specific.
int match_score(const TuningEntry& e, const nlohmann::json& raw, const DeviceInfo& info, const char* dtype,
                const char* bucket) {
  int score = kernels_detail::device_match_score(raw, info);
  if (score < 0) return -1;
  if (!(e.dtype == "*" || e.dtype.empty())) {
    if (e.dtype != dtype) return -1;
    score += 4;
  }
  if (!(e.bucket == "any" || e.bucket == "*" || e.bucket.empty())) {
    if (e.bucket != bucket) return -1;
    score += 2;
  }
  return score;
}

void append_matches(const kernels_detail::TuningSource& src, const DeviceInfo& info, ElemType dtype,
                    const char* bucket, std::vector<GemmParams>& out) {
  std::vector<TuningEntry> entries;
  for (const auto& e : src.entries) entries.push_back(entry_from_json(e, src.origin));
  std::vector<std::pair<int, std::size_t>> hits;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const int s = match_score(entries[i], src.entries[i], info, dtype_name(dtype), bucket);
    if (s < 0) continue;
    const GemmParams& p = entries[i].params;
    // An entry for the wrong family cannot run this dtype (the packed family is f32-accumulating).
    if (dtype == ElemType::F64 && p.family == KernelFamily::Packed) continue;
    hits.emplace_back(s, i);
  }
  // Highest score first; among equals, later entries first (a later line overrides).
  std::stable_sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  });
  for (const auto& h : hits) out.push_back(entries[h.second].params);
}

}  // namespace

std::vector<GemmParams> candidate_params(const DeviceInfo& info, ElemType dtype, const char* bucket) {
  std::vector<GemmParams> out;
  for (const auto& src : kernels_detail::tuning_sources("gemm")) append_matches(src, info, dtype, bucket, out);
  out.push_back(default_params(info, dtype, bucket));
  return out;
}

void reset_tuning_cache() { kernels_detail::reset_tuning_files(); }

}  // namespace axle::blas::detail
