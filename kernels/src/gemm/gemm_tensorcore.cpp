// The CUDA tensor-core GEMM paths: choosing a kernel variant, building it once per
// device and launching it.
//
// Paths (kernel sources in src/cuda/, embedded at build time):
//   wgmma2 gemm_wgmma_ws.cu, sm_90a only (compute capability 9.0): warp-specialised,
//          persistent, mbarrier-pipelined wgmma (one cp.async producer warpgroup, two
//          consumer warpgroups, 128 x 256 tiles); f16/bf16, and f32 as tf32 when
//          allowed; 16-byte aligned operand rows; large problems.
//   wgmma1 gemm_wgmma.cu, sm_90a only: the first wgmma kernel (no warp
//          specialisation, one CTA per tile); f16/bf16 only. Kept as a fallback.
//   mma    gemm_mma.cu, sm_80 and newer: f16/bf16, and f32 as tf32 when allowed; any
//          shape, leading dimension and offset.
// Before its first use on a device each wgmma variant (kernel, element type, operand
// layout) is checked once against the mma.sync path on a small problem with exact
// data (edges in m, n and k, two batch entries, and for wgmma2 fewer CTAs than tiles
// so that CTAs run several tiles and the pipeline phases wrap); a variant that fails
// the check or cannot launch is not used again on that device (logged to stderr).
// Auto order: wgmma2, then wgmma1 (16-bit only), then mma.
// AXLE_GEMM_TC=off|mma|wgmma1|wgmma2|wgmma|auto (default auto) restricts the choice:
// "wgmma1" / "wgmma2" use that kernel wherever it applies (sm_90, aligned rows; any
// size) and skip the check; "wgmma" means "wgmma2" (for tests and benchmarks).
//
// Thread-safety: the per-device kernel cache is guarded by a mutex; launches on
// distinct streams may run concurrently.
#include "gemm_tensorcore.hpp"
#include "common/env_choice.hpp"
#include "common/per_device.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relpath);
}

namespace axle::blas::detail {
namespace {

enum class PathChoice { Auto, Off, Mma, Wgmma1, Wgmma2 };

// Read once per process.
PathChoice path_choice() {
  using C = PathChoice;
  static const C choice = env_choice<C>("AXLE_GEMM_TC",
                                        {{"auto", C::Auto}, {"off", C::Off}, {"0", C::Off}, {"none", C::Off},
                                         {"mma", C::Mma}, {"wgmma1", C::Wgmma1}, {"wgmma2", C::Wgmma2},
                                         {"wgmma", C::Wgmma2}},
                                        C::Auto, "off, mma, wgmma1, wgmma2, wgmma, auto");
  return choice;
}

// Kernel variant: which source and which compile-time switches.
enum Kind { kMma = 0, kWgmma1 = 1, kWgmma2 = 2 };

struct Variant {
  int kind = kMma;
  int elem = 0;  // 0 f16, 1 bf16, 2 f32 as tf32
  bool a_kmajor = true;
  bool b_kmajor = false;
  bool vec16 = true;

  bool wgmma() const { return kind != kMma; }
  int code() const {
    return kind | (elem << 2) | (a_kmajor ? 16 : 0) | (b_kmajor ? 32 : 0) | (vec16 ? 64 : 0);
  }
};

const char* kind_name(int kind) { return kind == kWgmma2 ? "wgmma2" : (kind == kWgmma1 ? "wgmma1" : "mma"); }

constexpr int kMmaTileM = 128, kMmaTileN = 128;
constexpr int kWgTileM = 128, kWgTileN = 256;
constexpr std::size_t kThreadsPerCta = 256;    // mma, wgmma1
constexpr std::size_t kWsThreadsPerCta = 384;  // wgmma2: producer + two consumer warpgroups
constexpr std::size_t kWgmmaSmemBytes = 4 * (128 * 64 * 2 + 256 * 64 * 2) + 1024;  // gemm_wgmma.cu kSmemBytes
constexpr std::size_t kWsSmemBytes = 4 * (128 * 128 + 256 * 128) + 1024 + 128;    // gemm_wgmma_ws.cu kSmemBytes
constexpr std::size_t kMaxGridZ = 65535;

enum class Check { Unknown, Good, Bad };

struct DeviceKernels {
  std::mutex mutex;
  std::map<int, Kernel> kernels;
  std::map<int, Check> wgmma_checked;  // by Variant::code() of the wgmma1/wgmma2 variant
};

DeviceKernels& device_kernels(const Device& device) { return per_device<DeviceKernels>(device); }

Kernel get_kernel(const Device& device, const Variant& v) {
  DeviceKernels& dk = device_kernels(device);
  std::lock_guard<std::mutex> lock(dk.mutex);
  auto it = dk.kernels.find(v.code());
  if (it != dk.kernels.end()) return it->second;
  const char* file = v.kind == kWgmma2   ? "src/cuda/gemm_wgmma_ws.cu"
                     : v.kind == kWgmma1 ? "src/cuda/gemm_wgmma.cu"
                                         : "src/cuda/gemm_mma.cu";
  const std::string_view text = axle::embedded::kernel_resource(file);
  if (text.empty()) throw Error(std::string("tensor-core GEMM: embedded kernel source ") + file + " is missing");
  BuildOptions opts;
  opts.header("gemm_epilogue.cuh", std::string(axle::embedded::kernel_resource("src/cuda/gemm_epilogue.cuh")));
  opts.header("ptx_helpers.cuh", std::string(axle::embedded::kernel_resource("src/cuda/ptx_helpers.cuh")));
  opts.define("AXLE_TC_ELEM", v.elem)
      .define("AXLE_TC_A_KMAJOR", v.a_kmajor ? 1 : 0)
      .define("AXLE_TC_B_KMAJOR", v.b_kmajor ? 1 : 0);
  if (!v.wgmma()) opts.define("AXLE_TC_VEC16", v.vec16 ? 1 : 0);
  if (v.wgmma()) opts.cuda_arch = "sm_90a";
  const char* name = v.kind == kWgmma2 ? "gemm_wgmma_ws" : (v.kind == kWgmma1 ? "gemm_wgmma" : "gemm_mma");
  Program p = device.build(Source::cuda(std::string(text), name), opts);
  Kernel k = p.kernel(v.kind == kWgmma2 ? "axle_gemm_wgmma_ws" : (v.kind == kWgmma1 ? "axle_gemm_wgmma" : "axle_gemm_mma"));
  dk.kernels.emplace(v.code(), k);
  return k;
}

// "sm_86" -> 86; 0 when unknown.
int sm_version(const Device& device) {
  const std::string& a = device.info().architecture;
  if (a.rfind("sm_", 0) != 0) return 0;
  int v = 0;
  for (std::size_t i = 3; i < a.size() && a[i] >= '0' && a[i] <= '9'; ++i) v = v * 10 + (a[i] - '0');
  return v;
}

bool aligned16(const Buffer& b, std::size_t off_elems, std::size_t es) {
  const auto base = reinterpret_cast<std::uintptr_t>(b.native_handle());
  return (base % 16) == 0 && (off_elems * es) % 16 == 0;
}

int c_type_code(ElemType t) { return t == ElemType::F32 ? 0 : (t == ElemType::F16 ? 1 : 2); }

int act_code(Act a) {
  switch (a) {
    case Act::ReLU: return 1;
    case Act::GELU: return 2;  // exact (erf) form, as documented in axle/blas.hpp
    default: return 0;
  }
}

// Enqueue one GEMM with a given variant (shape already checked to fit in int).
// max_ctas caps the persistent grid of wgmma2 (0: one CTA per SM).
void launch(Stream& stream, const Kernel& kernel, const Variant& v, const GemmDesc& d, std::size_t max_ctas = 0) {
  const std::size_t es = v.elem == 2 ? 4 : 2;
  const std::size_t ces = elem_size(d.c_type);
  const int tile_m = v.wgmma() ? kWgTileM : kMmaTileM, tile_n = v.wgmma() ? kWgTileN : kMmaTileN;
  const std::size_t tiles = div_up(d.m, tile_m) * div_up(d.n, tile_n);
  const std::size_t gz = std::min(d.batch, kMaxGridZ);
  const Buffer& bias_buf = d.bias_kind != BiasKind::None && d.bias ? *d.bias : *d.c;
  const std::size_t bias_off = d.bias_kind != BiasKind::None && d.bias ? d.bias_off * sizeof(float) : 0;
  const int bias_kind = d.bias_kind == BiasKind::PerRow ? 1 : (d.bias_kind == BiasKind::PerCol ? 2 : 0);
  const long long lda = static_cast<long long>(d.lda), ldb = static_cast<long long>(d.ldb),
                  ldc = static_cast<long long>(d.ldc);
  const long long sa = static_cast<long long>(d.stride_a), sb = static_cast<long long>(d.stride_b),
                  sc = static_cast<long long>(d.stride_c);
  std::vector<KernelArg> args = {
      KernelArg::buffer_arg(*d.a, d.a_off * es),
      KernelArg::buffer_arg(*d.b, d.b_off * es),
      KernelArg::buffer_arg(*d.c, d.c_off * ces),
      KernelArg::buffer_arg(bias_buf, bias_off),
      KernelArg::scalar(static_cast<int>(d.m)),
      KernelArg::scalar(static_cast<int>(d.n)),
      KernelArg::scalar(static_cast<int>(d.k)),
      KernelArg::scalar(lda),
      KernelArg::scalar(ldb),
      KernelArg::scalar(ldc),
      KernelArg::scalar(sa),
      KernelArg::scalar(sb),
      KernelArg::scalar(sc),
      KernelArg::scalar(static_cast<int>(d.batch)),
      KernelArg::scalar(static_cast<float>(d.alpha)),
      KernelArg::scalar(static_cast<float>(d.beta)),
      KernelArg::scalar(c_type_code(d.c_type)),
      KernelArg::scalar(bias_kind),
      KernelArg::scalar(act_code(d.act)),
  };
  if (v.kind == kWgmma2) {
    // Persistent: at most one CTA per SM, each walking tiles blockIdx.x, + gridDim.x, ...
    // over all batch entries.
    args.push_back(KernelArg::local_arg(kWsSmemBytes));
    std::size_t ctas = max_ctas ? max_ctas : std::max<std::size_t>(stream.device().info().compute_units, 1);
    ctas = std::min(ctas, tiles * d.batch);
    stream.launch_args(kernel, Range(ctas * kWsThreadsPerCta, 1, 1), Range(kWsThreadsPerCta, 1, 1), args);
    return;
  }
  if (v.kind == kWgmma1) args.push_back(KernelArg::local_arg(kWgmmaSmemBytes));
  stream.launch_args(kernel, Range(tiles * kThreadsPerCta, 1, gz), Range(kThreadsPerCta, 1, 1), args);
}

// One-time check of a wgmma variant against the mma.sync variant of the same layout.
// Inputs are multiples of 1/64 in [-2, 2] (exact in f16, bf16 and tf32): every product
// and partial sum is exact in f32, so both paths must agree bit for bit. The shape has
// edges in m, n and k and two batch entries; wgmma2 runs on 3 CTAs for its 8 tiles, so
// CTAs walk several tiles, the pipeline's stage phases wrap, and both its epilogue
// paths (full tile: paired stores; edge tiles: element-wise) are exercised. Runs on a
// private stream.
bool check_wgmma(const Device& device, const Variant& wg) {
  const std::size_t m = 200, n = 296, k = 136, batch = 2;  // rows 16-byte aligned
  const std::size_t a_rows = wg.a_kmajor ? m : k, a_cols = wg.a_kmajor ? k : m;
  const std::size_t b_rows = wg.b_kmajor ? n : k, b_cols = wg.b_kmajor ? k : n;
  const bool f32 = wg.elem == 2, bf16 = wg.elem == 1;
  const std::size_t es = f32 ? 4 : 2;
  // Raw element bits (u16 or f32), as bytes.
  auto gen = [&](std::size_t count, std::uint32_t seed) {
    std::vector<unsigned char> out(count * es);
    std::uint32_t s = seed;
    for (std::size_t i = 0; i < count; ++i) {
      s = s * 1664525u + 1013904223u;
      const float f = static_cast<float>(static_cast<int>((s >> 16) % 257) - 128) / 64.0f;
      if (f32) {
        std::memcpy(&out[i * 4], &f, 4);
      } else {
        const std::uint16_t h = bf16 ? to_bfloat16(f).bits : to_half(f).bits;
        std::memcpy(&out[i * 2], &h, 2);
      }
    }
    return out;
  };
  const std::size_t a_elems = a_rows * a_cols, b_elems = b_rows * b_cols;
  const auto ha = gen(a_elems * batch, 12345u);
  const auto hb = gen(b_elems * batch, 67890u);
  Stream s = device.create_stream();
  Buffer a = device.alloc<unsigned char>(ha.size()), b = device.alloc<unsigned char>(hb.size());
  Buffer c1 = device.alloc<float>(m * n * batch), c2 = device.alloc<float>(m * n * batch);
  s.copy(ha, a.view<unsigned char>());
  s.copy(hb, b.view<unsigned char>());
  GemmDesc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.trans_a = !wg.a_kmajor;
  d.trans_b = wg.b_kmajor;
  d.a_type = d.b_type = f32 ? ElemType::F32 : (bf16 ? ElemType::BF16 : ElemType::F16);
  d.allow_tf32 = f32;
  d.c_type = ElemType::F32;
  d.a = &a;
  d.b = &b;
  d.lda = a_cols;
  d.ldb = b_cols;
  d.ldc = n;
  d.batch = batch;
  d.stride_a = a_elems;
  d.stride_b = b_elems;
  d.stride_c = m * n;
  d.c = &c1;
  Variant mma = wg;
  mma.kind = kMma;
  mma.vec16 = true;
  launch(s, get_kernel(device, mma), mma, d);
  d.c = &c2;
  launch(s, get_kernel(device, wg), wg, d, wg.kind == kWgmma2 ? 3 : 0);
  std::vector<float> r1(m * n * batch), r2(m * n * batch);
  s.copy(c1.view<float>(), r1);
  s.copy(c2.view<float>(), r2);
  s.synchronize();
  for (std::size_t i = 0; i < r1.size(); ++i)
    if (!(r1[i] == r2[i])) {
      axle::log("blas", LogLevel::Warn,
                std::string(kind_name(wg.kind)) + " GEMM variant " + std::to_string(wg.code()) +
                    " disagrees with mma.sync on " + device.name() + " at batch " + std::to_string(i / (m * n)) +
                    " element (" + std::to_string((i % (m * n)) / n) + ", " + std::to_string(i % n) +
                    "): " + std::to_string(r2[i]) + " vs " + std::to_string(r1[i]) + "; not using it");
      return false;
    }
  return true;
}

// Whether a wgmma variant may be used: forced (AXLE_GEMM_TC names it) or checked.
bool wgmma_usable(const Device& device, const Variant& wg, bool forced) {
  if (forced) return true;
  DeviceKernels& dk = device_kernels(device);
  {
    std::lock_guard<std::mutex> lock(dk.mutex);
    auto it = dk.wgmma_checked.find(wg.code());
    if (it != dk.wgmma_checked.end() && it->second != Check::Unknown) return it->second == Check::Good;
  }
  bool ok = false;
  try {
    ok = check_wgmma(device, wg);
  } catch (const Error& e) {
    axle::log("blas", LogLevel::Warn,
              std::string(kind_name(wg.kind)) + " GEMM variant " + std::to_string(wg.code()) + " unavailable on " +
                  device.name() + ": " + e.what() + "; not using it");
    ok = false;
  }
  std::lock_guard<std::mutex> lock(dk.mutex);
  dk.wgmma_checked[wg.code()] = ok ? Check::Good : Check::Bad;
  return ok;
}

thread_local const char* t_last_path = "none";

constexpr std::size_t kIntMax = static_cast<std::size_t>(std::numeric_limits<int>::max());
constexpr std::size_t kLLMax = static_cast<std::size_t>(std::numeric_limits<long long>::max());

}  // namespace

bool try_gemm_tensorcore(Stream& stream, const GemmDesc& d) {
  t_last_path = "none";
  const PathChoice choice = path_choice();
  if (choice == PathChoice::Off) return false;
  const Device& device = stream.device();
  if (!device.valid() || device.backend() != "cuda") return false;
  const int sm = sm_version(device);
  if (sm < 80) return false;

  // Element types.
  if (d.a_type != d.b_type) return false;
  Variant v;
  if (d.a_type == ElemType::F16)
    v.elem = 0;
  else if (d.a_type == ElemType::BF16)
    v.elem = 1;
  else if (d.a_type == ElemType::F32 && d.allow_tf32)
    v.elem = 2;
  else
    return false;
  if (d.c_type == ElemType::F64) return false;
  if (!d.a || !d.b || !d.c) return false;
  if (d.bias_kind != BiasKind::None && !d.bias) return false;

  // Sizes: dimensions and the tile count as int, strides as long long.
  if (d.m == 0 || d.n == 0 || d.batch == 0) return true;  // nothing to compute
  if (d.m > kIntMax || d.n > kIntMax || d.k > kIntMax || d.batch > kIntMax) return false;
  if (div_up(d.m, kMmaTileM) * div_up(d.n, kMmaTileN) > kIntMax) return false;
  for (std::size_t x : {d.lda, d.ldb, d.ldc, d.stride_a, d.stride_b, d.stride_c})
    if (x > kLLMax / 16) return false;

  // Operand storage: A K-major unless transposed; B K-major when transposed.
  v.a_kmajor = !d.trans_a;
  v.b_kmajor = d.trans_b;
  const std::size_t es = elem_size(d.a_type);
  const std::size_t chunk = 16 / es;
  v.vec16 = aligned16(*d.a, d.a_off, es) && aligned16(*d.b, d.b_off, es) && d.lda % chunk == 0 &&
            d.ldb % chunk == 0 && (d.batch == 1 || (d.stride_a % chunk == 0 && d.stride_b % chunk == 0));

  // wgmma: sm_90 (H100/H200 class), aligned rows, enough work to fill 128 x 256 tiles.
  // wgmma2 serves f16/bf16/tf32, wgmma1 f16/bf16.
  if (choice != PathChoice::Mma && sm == 90 && v.vec16) {
    const double work = static_cast<double>(d.m) * static_cast<double>(d.n) * static_cast<double>(d.k) *
                        static_cast<double>(d.batch);
    const bool big = d.m >= 256 && d.n >= 256 && d.k >= 128 && work >= 64.0 * 1024 * 1024;
    const bool forced = choice == PathChoice::Wgmma1 || choice == PathChoice::Wgmma2;
    if (big || forced) {
      for (int kind : {kWgmma2, kWgmma1}) {
        if (kind == kWgmma1 && v.elem == 2) continue;  // wgmma1 has no tf32
        if (choice == PathChoice::Wgmma1 && kind != kWgmma1) continue;
        if (choice == PathChoice::Wgmma2 && kind != kWgmma2) continue;
        Variant wg = v;
        wg.kind = kind;
        if (wgmma_usable(device, wg, forced)) {
          launch(stream, get_kernel(device, wg), wg, d);
          t_last_path = kind_name(kind);
          return true;
        }
      }
    }
  }
  launch(stream, get_kernel(device, v), v, d);
  t_last_path = "mma";
  return true;
}

const char* last_tensorcore_path() { return t_last_path; }

}  // namespace axle::blas::detail
