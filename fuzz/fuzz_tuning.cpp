// The tuning-database loader (kernels/src/common/tuning_file.cpp and the GEMM entries):
// a document loads or is refused with a ConfigError, the same way whether parsed
// directly or read as the user's tuning file; entries written back read the same.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "fuzz_util.hpp"
#include "gemm/gemm_tuning.hpp"

namespace bd = axle::blas::detail;

namespace {
std::string g_file;

bool same(const bd::TuningEntry& a, const bd::TuningEntry& b) {
  const auto &p = a.params, &q = b.params;
  const bool params =
      p.family == q.family && (p.family == bd::KernelFamily::Packed
                                   ? p.mr == q.mr && p.vw == q.vw && p.nv == q.nv && p.mb == q.mb && p.kc == q.kc &&
                                         p.pack_a == q.pack_a && p.nfirst == q.nfirst
                                   : p.bm == q.bm && p.bn == q.bn && p.bk == q.bk && p.tm == q.tm && p.tn == q.tn);
  return params && a.vendor == b.vendor && a.architecture == b.architecture && a.device == b.device &&
         a.type == b.type && a.dtype == b.dtype && a.bucket == b.bucket && a.note == b.note;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/axle-fuzz-tuning-XXXXXX";
  if (!::mkdtemp(dir)) axle_fuzz::fail("mkdtemp");
  g_file = std::string(dir) + "/tuning.json";
  ::setenv("AXLE_TUNING_FILE", g_file.c_str(), 1);
  ::setenv("AXLE_TUNING_SHIPPED", "0", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<bd::TuningEntry> entries;
  const bool parsed = axle_fuzz::returns_or_throws<axle::ConfigError>(
      [&] { entries = bd::parse_tuning(text, "fuzz.json"); }, "parse_tuning");

  axle::DeviceInfo info;
  info.vendor = "Acme";
  info.name = "Acme X1";
  info.type = axle::DeviceType::CPU;
  info.max_work_group_size = 1024;
  info.local_mem_bytes = 65536;
  if (parsed) {
    for (const auto& e : entries) (void)e.params.invalid_reason(info);
    std::vector<bd::TuningEntry> again;
    const std::string written = bd::write_tuning(entries);
    axle_fuzz::returns_or_throws<axle::ConfigError>([&] { again = bd::parse_tuning(written, "round.json"); },
                                                    "parse_tuning of write_tuning");
    AXLE_FUZZ_CHECK(again.size() == entries.size(), written);
    for (std::size_t i = 0; i < entries.size(); ++i) AXLE_FUZZ_CHECK(same(entries[i], again[i]), written);
  }

  // The same document as the user's tuning file.
  {
    std::ofstream f(g_file, std::ios::binary | std::ios::trunc);
    f << text;
  }
  bd::reset_tuning_cache();
  std::vector<bd::GemmParams> candidates;
  const bool loaded = axle_fuzz::returns_or_throws<axle::ConfigError>(
      [&] { candidates = bd::candidate_params(info, bd::ElemType::F32, "small"); }, "candidate_params");
  AXLE_FUZZ_CHECK(loaded == parsed, "the file loads exactly when the document parses");
  if (loaded) {
    AXLE_FUZZ_CHECK(!candidates.empty() && candidates.back().origin == "built-in default", "the default comes last");
    AXLE_FUZZ_CHECK(candidates.size() <= entries.size() + 1, "more candidates than entries");
    for (std::size_t i = 0; i + 1 < candidates.size(); ++i)
      AXLE_FUZZ_CHECK(candidates[i].origin.find(g_file) == 0, candidates[i].origin);
  }
  return 0;
}
