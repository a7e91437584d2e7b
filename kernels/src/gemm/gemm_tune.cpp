// axle::tuning::tune_gemm: the GEMM parameter search behind `axle tune gemm`.
//
// Every candidate is first checked against a host reference (check_params: a small
// GEMM crossing every tile edge, with beta, a bias and a transposed operand); only
// candidates that pass are timed. Timing takes the best of several runs of the full
// call (packing included) at each requested size, over interleaved rounds of all
// candidates (robust on a shared machine); the winner per shape bucket (small /
// skinny / large) has the best geometric-mean GFLOP/s over the sizes in that bucket.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>

#include "axle/blas.hpp"
#include "axle/tuning.hpp"
#include "common/tuning_file.hpp"
#include "gemm_dispatch.hpp"
#include "gemm_tuning.hpp"

namespace axle::tuning {
namespace {

namespace bd = axle::blas::detail;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::vector<bd::GemmParams> candidates(const DeviceInfo& info, bd::ElemType dtype, bool quick) {
  std::vector<bd::GemmParams> out;
  if (info.type == DeviceType::CPU && dtype != bd::ElemType::F64) {
    const int vw = info.preferred_vector_width_float >= 16 ? 16 : 8;
    const int regs = vw == 16 ? 32 : 16;  // vector registers (AVX-512 / AVX2)
    for (int nv : {1, 2, 3, 4})
      for (int mr : {4, 6, 8, 12, 14}) {
        if (mr * nv + nv + 1 > regs) continue;  // accumulators + B vectors + broadcast
        for (int mb : {1, 4})
          for (int kc : {0, 256})
            for (int pack_a : {0, 1})
              for (int nfirst : {0, 1}) {
                const bool common = kc == 0 && nfirst == 0;
                if (quick && !(common && ((mr == 6 && nv == 4) || (mr == 8 && nv == 3) || (mr == 12 && nv == 2) ||
                                          (mr == 6 && nv == 2))))
                  continue;
                if (!quick && !common && !(mr == 6 && nv == (vw == 16 ? 4 : 2))) continue;
                bd::GemmParams p;
                p.family = bd::KernelFamily::Packed;
                p.mr = mr;
                p.vw = vw;
                p.nv = nv;
                p.mb = mb;
                p.kc = kc;
                p.pack_a = pack_a;
                p.nfirst = nfirst;
                p.origin = "axle tune";
                out.push_back(p);
              }
      }
    return out;
  }
  for (int bm : {32, 64, 128})
    for (int bn : {32, 64, 128})
      for (int bk : {8, 16})
        for (int tm : {4, 8})
          for (int tn : {4, 8}) {
            if (quick && (bm != bn || tm != tn)) continue;
            bd::GemmParams p;
            p.family = bd::KernelFamily::Tiled;
            p.bm = bm;
            p.bn = bn;
            p.bk = bk;
            p.tm = tm;
            p.tn = tn;
            p.origin = "axle tune";
            if (p.invalid_reason(info).empty()) out.push_back(p);
          }
  return out;
}

}  // namespace

TuneReport tune_gemm(const Device& dev, const GemmTuneRequest& req, const std::string& output_in,
                     const Progress& progress) {
  bd::ElemType dtype;
  if (req.dtype == "f32") dtype = bd::ElemType::F32;
  else if (req.dtype == "f16") dtype = bd::ElemType::F16;
  else if (req.dtype == "bf16") dtype = bd::ElemType::BF16;
  else if (req.dtype == "f64") dtype = bd::ElemType::F64;
  else throw InvalidArgument("tune_gemm: unknown dtype '" + req.dtype + "' (f32, f16, bf16, f64)");
  if (req.sizes.empty()) throw InvalidArgument("tune_gemm: no sizes to time");
  for (const auto& s : req.sizes)
    if (s[0] == 0 || s[1] == 0 || s[2] == 0) throw InvalidArgument("tune_gemm: a size of 0 in the request");
  const std::string output = output_in.empty() ? tuning_file() : output_in;
  if (output.empty())
    throw InvalidArgument("tune_gemm: no user tuning file location (" + no_cache_dir_reason() + "); name an output");
  const DeviceInfo& info = dev.info();
  if (dtype == bd::ElemType::F64 && !info.fp64)
    throw Unsupported("tune_gemm: " + info.name + " has no double precision");
  TuneReport report;
  Stream stream = dev.create_stream();

  // Operands for every size (row-major, no transposes: the common case).
  const std::size_t es = bd::elem_size(dtype);
  struct Operands {
    std::array<std::size_t, 3> s;
    Buffer a, b, c;
  };
  std::vector<Operands> ops;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const auto& s : req.sizes) {
    const std::size_t m = s[0], n = s[1], k = s[2];
    Operands o{s, dev.alloc_bytes(m * k * es), dev.alloc_bytes(k * n * es), dev.alloc_bytes(m * n * es)};
    std::vector<unsigned char> host(std::max(m * k, k * n) * es);
    for (std::size_t i = 0; i < host.size() / es; ++i) {
      const float v = dist(rng);
      if (dtype == bd::ElemType::F32) {
        std::memcpy(&host[i * 4], &v, 4);
      } else if (dtype == bd::ElemType::F64) {
        const double d = v;
        std::memcpy(&host[i * 8], &d, 8);
      } else if (dtype == bd::ElemType::F16) {
        const half_t h = to_half(v);
        std::memcpy(&host[i * 2], &h, 2);
      } else {
        const bfloat16_t h = to_bfloat16(v);
        std::memcpy(&host[i * 2], &h, 2);
      }
    }
    stream.copy_h2d_bytes(host.data(), o.a, 0, m * k * es);
    stream.copy_h2d_bytes(host.data(), o.b, 0, k * n * es);
    stream.synchronize();
    ops.push_back(std::move(o));
  }

  struct Result {
    bd::GemmParams p;
    std::vector<double> best_s;                         // best time per size over rounds
    std::map<std::string, std::vector<double>> gflops;  // by bucket
    bool failed = false;
  };
  std::vector<Result> results;
  auto cands = candidates(info, dtype, req.quick);
  if (req.max_candidates && cands.size() > req.max_candidates) cands.resize(req.max_candidates);
  const int rounds = req.quick ? 2 : 3;
  const std::size_t total = cands.size() * (1 + rounds);
  std::size_t done = 0;
  auto step = [&](const std::string& what) {
    ++done;
    if (progress) progress(done, total, what);
  };
  report.lines.push_back(std::to_string(cands.size()) + " candidates, " + std::to_string(ops.size()) + " sizes");
  for (const bd::GemmParams& p : cands) {
    const std::string verdict = bd::check_params(dev, p, dtype);
    step("checking " + p.str());
    if (!verdict.empty()) {
      report.lines.push_back("  " + p.str() + " rejected: " + verdict);
      done += rounds;
      continue;
    }
    results.push_back(Result{p, std::vector<double>(ops.size(), 1e30), {}, false});
  }
  // Rounds over all candidates (interleaved), keeping each one's best time: on a
  // shared machine interference only ever slows a run down.
  for (int round = 0; round < rounds; ++round) {
    for (Result& r : results) {
      step("timing " + r.p.str() + " (round " + std::to_string(round + 1) + ")");
      if (r.failed) continue;
      for (std::size_t si = 0; si < ops.size(); ++si) {
        Operands& o = ops[si];
        bd::GemmDesc d;
        d.m = o.s[0];
        d.n = o.s[1];
        d.k = o.s[2];
        d.a_type = d.b_type = d.c_type = dtype;
        d.a = &o.a;
        d.b = &o.b;
        d.c = &o.c;
        d.lda = d.k;
        d.ldb = d.n;
        d.ldc = d.n;
        try {
          if (round == 0) {
            bd::run_gemm_with(stream, d, r.p);  // warm-up (builds the kernels)
            stream.synchronize();
          }
          const double start = now_s();
          int runs = 0;
          while ((now_s() - start < (req.quick ? 0.15 : 0.3) && runs < 8) || runs < 2) {
            const double a = now_s();
            bd::run_gemm_with(stream, d, r.p);
            stream.synchronize();
            r.best_s[si] = std::min(r.best_s[si], now_s() - a);
            ++runs;
          }
        } catch (const Error& e) {
          report.lines.push_back("  " + r.p.str() + " failed: " + e.what());
          r.failed = true;
          break;
        }
      }
    }
  }
  for (Result& r : results) {
    if (r.failed) continue;
    std::string line = "  " + r.p.str() + ":";
    for (std::size_t si = 0; si < ops.size(); ++si) {
      const auto& s = ops[si].s;
      const double g = 2.0 * s[0] * s[1] * s[2] / r.best_s[si] * 1e-9;
      r.gflops[bd::shape_bucket(s[0], s[1], s[2])].push_back(g);
      line += fmt(" %.1f", g);
    }
    report.lines.push_back(line + " GFLOP/s");
  }
  results.erase(std::remove_if(results.begin(), results.end(), [](const Result& r) { return r.failed; }),
                results.end());
  if (results.empty()) throw Error("tune_gemm: no candidate passed its correctness check on " + dev.id());

  std::string sizes_text;
  for (const auto& s : req.sizes)
    sizes_text += (sizes_text.empty() ? "" : ",") + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
                  std::to_string(s[2]);
  std::vector<bd::TuningEntry> fresh;
  std::map<std::string, bool> buckets;
  for (const auto& s : req.sizes) buckets[bd::shape_bucket(s[0], s[1], s[2])] = true;
  for (const auto& bkt : buckets) {
    double best = -1;
    const Result* win = nullptr;
    for (const Result& r : results) {
      auto it = r.gflops.find(bkt.first);
      if (it == r.gflops.end() || it->second.empty()) continue;
      double lg = 0;
      for (double g : it->second) lg += std::log(std::max(g, 1e-9));
      const double gm = std::exp(lg / it->second.size());
      if (gm > best) {
        best = gm;
        win = &r;
      }
    }
    if (!win) continue;
    bd::TuningEntry e;
    e.vendor = info.vendor;
    e.architecture = info.architecture;
    e.device = info.name;
    e.type = kernels_detail::device_type_name(info);
    e.dtype = req.dtype;
    e.bucket = bkt.first;
    e.params = win->p;
    e.gflops = best;
    e.note = "axle tune gemm --sizes " + sizes_text;
    report.lines.push_back("best for " + bkt.first + " shapes: " + win->p.str() + fmt(" (%.1f GFLOP/s geometric mean)", best));
    fresh.push_back(e);
  }
  nlohmann::json fresh_json = nlohmann::json::array();
  for (const auto& e : fresh) fresh_json.push_back(bd::entry_to_json(e));
  kernels_detail::update_tuning_file(
      output, "gemm",
      [&](const nlohmann::json& e) {
        for (const auto& n : fresh)
          if (kernels_detail::entry_string(e, "device", "*") == n.device &&
              kernels_detail::entry_string(e, "vendor", "*") == n.vendor &&
              kernels_detail::entry_string(e, "dtype", "*") == n.dtype &&
              kernels_detail::entry_string(e, "bucket", "any") == n.bucket)
            return true;
        return false;
      },
      fresh_json);
  report.entries_json = fresh_json.dump(2);
  blas::reset_gemm_caches();
  return report;
}

}  // namespace axle::tuning
