// `axle tune gemm`: search GEMM kernel parameters on the device in use and write the
// best ones to the user tuning file (axle::tuning_file()).
//
// Every candidate is first checked against a host reference (check_params: a small
// GEMM crossing every tile edge, with beta, a bias and a transposed operand); only
// candidates that pass are timed. Timing takes the best of several runs of the full
// call (packing included) at each requested size, over interleaved rounds of all
// candidates (robust on a shared machine); the winner per shape bucket (small /
// skinny / large) is the one with the best geometric-mean GFLOP/s over the sizes in
// that bucket.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <cstring>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/src/gemm/gemm_dispatch.hpp"
#include "../kernels/src/gemm/gemm_tuning.hpp"
#include "axle/axle.hpp"
#include "axle/blas.hpp"

namespace {

namespace bd = axle::blas::detail;

struct Shape {
  std::size_t m, n, k;
};

int usage(int rc) {
  std::printf(
      "usage: axle tune gemm [--dtype f32|f16|bf16|f64] [--sizes S[,S...]] [--device SPEC]\n"
      "                      [--output PATH] [--quick] [--print]\n"
      "  S is N (square) or MxNxK. Default sizes: 256,1000,2048,4096x64x4096,64x4096x4096.\n"
      "  Results go to the user tuning file (%s) unless --output names another;\n"
      "  entries for the same device, dtype and shape bucket are replaced.\n"
      "  --print also writes the new entries to stdout (for the shipped database).\n",
      axle::tuning_file().c_str());
  return rc;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<bd::GemmParams> candidates(const axle::DeviceInfo& info, bd::ElemType dtype, bool quick) {
  std::vector<bd::GemmParams> out;
  if (info.type == axle::DeviceType::CPU && dtype != bd::ElemType::F64) {
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

std::vector<Shape> parse_sizes(const std::string& s) {
  std::vector<Shape> out;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ',')) {
    Shape sh{};
    if (std::sscanf(t.c_str(), "%zux%zux%zu", &sh.m, &sh.n, &sh.k) != 3) sh.m = sh.n = sh.k = std::stoul(t);
    out.push_back(sh);
  }
  return out;
}

}  // namespace

int axle_tune_main(int argc, char** argv) {
  // argv[0] is "tune"; argv[1] the kernel family.
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") return usage(argc < 2 ? 2 : 0);
  if (std::string(argv[1]) != "gemm") {
    std::fprintf(stderr, "axle tune: unknown kernel family '%s' (known: gemm)\n", argv[1]);
    return 2;
  }
  std::string dtype_s = "f32", device_spec, output, sizes_s = "256,1000,2048,4096x64x4096,64x4096x4096";
  bool quick = false, print = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "axle tune: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dtype") dtype_s = next();
    else if (a == "--sizes") sizes_s = next();
    else if (a == "--device") device_spec = next();
    else if (a == "--output") output = next();
    else if (a == "--quick") quick = true;
    else if (a == "--print") print = true;
    else if (a == "--help" || a == "-h") return usage(0);
    else {
      std::fprintf(stderr, "axle tune: unknown option %s\n", a.c_str());
      return usage(2);
    }
  }
  bd::ElemType dtype;
  if (dtype_s == "f32") dtype = bd::ElemType::F32;
  else if (dtype_s == "f16") dtype = bd::ElemType::F16;
  else if (dtype_s == "bf16") dtype = bd::ElemType::BF16;
  else if (dtype_s == "f64") dtype = bd::ElemType::F64;
  else {
    std::fprintf(stderr, "axle tune: unknown dtype %s (f32, f16, bf16, f64)\n", dtype_s.c_str());
    return 2;
  }
  if (output.empty()) output = axle::tuning_file();
  if (output.empty()) {
    std::fprintf(stderr, "axle tune: no user tuning file location (%s); pass --output PATH\n",
                 axle::no_cache_dir_reason().c_str());
    return 2;
  }
  std::vector<Shape> sizes;
  try {
    sizes = parse_sizes(sizes_s);
  } catch (const std::exception&) {
    std::fprintf(stderr, "axle tune: cannot parse --sizes %s\n", sizes_s.c_str());
    return 2;
  }

  axle::Device dev = axle::default_device(device_spec);
  const axle::DeviceInfo& info = dev.info();
  if (dtype == bd::ElemType::F64 && !info.fp64) {
    std::fprintf(stderr, "axle tune: %s has no double precision\n", info.name.c_str());
    return 1;
  }
  axle::Stream stream = dev.create_stream();
  std::printf("tuning gemm %s on %s (%s)\n", dtype_s.c_str(), info.name.c_str(), dev.id().c_str());

  // Operands for every size (row-major, no transposes: the common case).
  const std::size_t es = bd::elem_size(dtype);
  struct Operands {
    Shape s;
    axle::Buffer a, b, c;
  };
  std::vector<Operands> ops;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Shape& s : sizes) {
    Operands o{s, dev.alloc_bytes(s.m * s.k * es), dev.alloc_bytes(s.k * s.n * es), dev.alloc_bytes(s.m * s.n * es)};
    std::vector<unsigned char> host(std::max(s.m * s.k, s.k * s.n) * es);
    for (std::size_t i = 0; i < host.size() / es; ++i) {
      const float v = dist(rng);
      if (dtype == bd::ElemType::F32) std::memcpy(&host[i * 4], &v, 4);
      else if (dtype == bd::ElemType::F64) {
        const double d = v;
        std::memcpy(&host[i * 8], &d, 8);
      } else if (dtype == bd::ElemType::F16) {
        const axle::half_t h = axle::to_half(v);
        std::memcpy(&host[i * 2], &h, 2);
      } else {
        const axle::bfloat16_t h = axle::to_bfloat16(v);
        std::memcpy(&host[i * 2], &h, 2);
      }
    }
    stream.copy_h2d_bytes(host.data(), o.a, 0, s.m * s.k * es);
    stream.copy_h2d_bytes(host.data(), o.b, 0, s.k * s.n * es);
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
  const auto cands = candidates(info, dtype, quick);
  std::printf("%zu candidates, %zu sizes\n", cands.size(), sizes.size());
  for (const bd::GemmParams& p : cands) {
    const std::string verdict = bd::check_params(dev, p, dtype);
    if (!verdict.empty()) {
      std::printf("  %-50s rejected: %s\n", p.str().c_str(), verdict.c_str());
      continue;
    }
    results.push_back(Result{p, std::vector<double>(sizes.size(), 1e30), {}, false});
  }
  // Rounds over all candidates (interleaved), keeping each one's best time: on a
  // shared machine interference only ever slows a run down.
  const int rounds = quick ? 2 : 3;
  for (int round = 0; round < rounds; ++round) {
    for (Result& r : results) {
      if (r.failed) continue;
      for (std::size_t si = 0; si < ops.size(); ++si) {
        Operands& o = ops[si];
        bd::GemmDesc d;
        d.m = o.s.m;
        d.n = o.s.n;
        d.k = o.s.k;
        d.a_type = d.b_type = d.c_type = dtype;
        d.a = &o.a;
        d.b = &o.b;
        d.c = &o.c;
        d.lda = o.s.k;
        d.ldb = o.s.n;
        d.ldc = o.s.n;
        try {
          if (round == 0) {
            bd::run_gemm_with(stream, d, r.p);  // warm-up (builds the kernels)
            stream.synchronize();
          }
          const double start = now_s();
          int runs = 0;
          while ((now_s() - start < (quick ? 0.15 : 0.3) && runs < 8) || runs < 2) {
            const double a = now_s();
            bd::run_gemm_with(stream, d, r.p);
            stream.synchronize();
            r.best_s[si] = std::min(r.best_s[si], now_s() - a);
            ++runs;
          }
        } catch (const axle::Error& e) {
          std::printf("  %-50s failed: %s\n", r.p.str().c_str(), e.what());
          r.failed = true;
          break;
        }
      }
    }
  }
  for (Result& r : results) {
    if (r.failed) continue;
    std::printf("  %-50s", r.p.str().c_str());
    for (std::size_t si = 0; si < ops.size(); ++si) {
      const Shape& s = ops[si].s;
      const double g = 2.0 * s.m * s.n * s.k / r.best_s[si] * 1e-9;
      r.gflops[bd::shape_bucket(s.m, s.n, s.k)].push_back(g);
      std::printf(" %8.1f", g);
    }
    std::printf("\n");
  }
  results.erase(std::remove_if(results.begin(), results.end(), [](const Result& r) { return r.failed; }),
                results.end());
  if (results.empty()) {
    std::fprintf(stderr, "axle tune: no candidate passed its correctness check\n");
    return 1;
  }

  std::vector<bd::TuningEntry> fresh;
  std::map<std::string, bool> buckets;
  for (const Shape& s : sizes) buckets[bd::shape_bucket(s.m, s.n, s.k)] = true;
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
    e.type = info.type == axle::DeviceType::CPU ? "cpu" : info.type == axle::DeviceType::GPU ? "gpu" : "other";
    e.dtype = dtype_s;
    e.bucket = bkt.first;
    e.params = win->p;
    e.gflops = best;
    e.note = "axle tune gemm --sizes " + sizes_s;
    std::printf("best for %s shapes: %s (%.1f GFLOP/s geometric mean)\n", bkt.first.c_str(), win->p.str().c_str(),
                best);
    fresh.push_back(e);
  }

  // Merge into the output file: replace entries for the same device/dtype/bucket.
  std::vector<bd::TuningEntry> all;
  {
    std::ifstream f(output);
    if (f) {
      std::stringstream ss;
      ss << f.rdbuf();
      all = bd::parse_tuning(ss.str(), output);
    }
  }
  all.erase(std::remove_if(all.begin(), all.end(),
                           [&](const bd::TuningEntry& e) {
                             for (const auto& n : fresh)
                               if (e.device == n.device && e.vendor == n.vendor && e.dtype == n.dtype &&
                                   e.bucket == n.bucket)
                                 return true;
                             return false;
                           }),
            all.end());
  all.insert(all.end(), fresh.begin(), fresh.end());
  const std::string text = bd::write_tuning(all);
  const std::size_t slash = output.find_last_of('/');
  if (slash != std::string::npos) {
    const std::string dir = output.substr(0, slash);
    std::string cmd_dir;
    for (std::size_t i = 1; i <= dir.size(); ++i)
      if (i == dir.size() || dir[i] == '/') {
        cmd_dir = dir.substr(0, i);
        (void)::mkdir(cmd_dir.c_str(), 0755);
      }
  }
  const std::string tmp = output + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream f(tmp);
    f << text;
    if (!f) {
      std::fprintf(stderr, "axle tune: cannot write %s\n", tmp.c_str());
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), output.c_str()) != 0) {
    std::fprintf(stderr, "axle tune: cannot rename %s to %s\n", tmp.c_str(), output.c_str());
    return 1;
  }
  std::printf("wrote %zu entries to %s\n", fresh.size(), output.c_str());
  if (print) std::printf("%s", bd::write_tuning(fresh).c_str());
  axle::blas::reset_gemm_caches();
  return 0;
}
