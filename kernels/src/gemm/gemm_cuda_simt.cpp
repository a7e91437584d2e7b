// The CUDA-only f32 GEMM path on the CUDA cores (FFMA, no tensor cores): choosing a
// tile configuration and a layout variant, building it once per device and launching it.
//
// Kernel source: src/cuda/sgemm_simt.cu (embedded at build time). Tile configurations
// (the table at the top of the kernel source; kTiles below mirrors it):
//   large   128 x 128 tiles, 128 threads, two CTAs per SM
//   medium   64 x  64 tiles, k split over 4 warp groups inside the CTA
//   small    32 x  64 or 64 x 32 tiles (the narrow side along the short matrix side),
//            k split over 8 warp groups inside the CTA
// auto (the default) takes large when its tiles (times the batch) at least fill every
// SM once without wasting much more padding than medium, else medium when its tiles
// fill the SMs, else small.
// AXLE_GEMM_SIMT=off|auto|large|medium|small pins the choice ("off": the portable path
// runs); it is read at every call, so a benchmark can compare configurations in one
// process.
//
// Served: f32 A and B (no TF32), C f32/f16/bf16, any m, n, k, transposes, leading
// dimensions, offsets, strided batch, alpha/beta (beta == 0 never reads C; alpha == 0
// only scales C), bias per row/column, ReLU/GELU. Not served (returns false): f64 C,
// dimensions above 2^30, strides above 2^59.
//
// Thread-safety: the per-device kernel cache is guarded by a mutex; launches on
// distinct streams may run concurrently.
#include "gemm_cuda_simt.hpp"
#include "common/env_choice.hpp"
#include "common/per_device.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

enum class SimtChoice { Auto, Off, Large, Medium, Small };

// Read at every call (tests pin it per case).
SimtChoice simt_choice() {
  using C = SimtChoice;
  return env_choice<C>("AXLE_GEMM_SIMT",
                       {{"auto", C::Auto}, {"off", C::Off}, {"0", C::Off}, {"none", C::Off}, {"large", C::Large},
                        {"medium", C::Medium}, {"small", C::Small}},
                       C::Auto, "off, auto, large, medium, small");
}

// One row of the tile table in sgemm_simt.cu (AXLE_SIMT_TILE = index).
struct TileConfig {
  int bm, bn;         // CTA tile
  int bk;             // k depth of a slice
  int threads;        // per CTA
  int warps_k;        // warp groups along k
  int rm;             // 4-row blocks per thread (epilogue passes)
  const char* name;
};
constexpr TileConfig kTiles[] = {
    {128, 128, 8, 128, 1, 2, "large"},
    {64, 64, 32, 256, 4, 2, "medium"},
    {32, 64, 64, 256, 8, 2, "small 32x64"},
    {64, 32, 64, 256, 8, 2, "small 64x32"},
};
constexpr int kTileLarge = 0, kTileMedium = 1, kTileSmallN = 2, kTileSmallM = 3;

// Dynamic shared memory of a configuration: the same formula as kSmemBytes in
// sgemm_simt.cu (two slices of A and B with 4 floats of row padding; the slice-K
// partial tiles; one epilogue pass of bm / rm rows).
constexpr std::size_t smem_bytes(const TileConfig& t) {
  const std::size_t pad = 4;
  const std::size_t stages = 2 * t.bk * ((t.bm + pad) + (t.bn + pad));
  const std::size_t red = static_cast<std::size_t>(t.warps_k / 2) * t.bm * t.bn;
  const std::size_t epi = static_cast<std::size_t>(t.bm / t.rm) * (t.bn + pad);
  std::size_t m = stages > red ? stages : red;
  m = m > epi ? m : epi;
  return m * 4;
}
static_assert(smem_bytes(kTiles[0]) == 33792 && smem_bytes(kTiles[1]) == 34816 && smem_bytes(kTiles[2]) == 53248 &&
                  smem_bytes(kTiles[3]) == 53248,
              "shared memory sizes out of step with sgemm_simt.cu");

struct Variant {
  int tile = kTileLarge;
  bool a_kmajor = true;
  bool b_kmajor = false;
  bool vec4 = true;
  int code() const { return tile * 8 + (a_kmajor ? 4 : 0) + (b_kmajor ? 2 : 0) + (vec4 ? 1 : 0); }
};

struct DeviceKernels {
  std::mutex mutex;
  std::map<int, Kernel> kernels;  // by Variant::code()
};

DeviceKernels& device_kernels(const Device& device) { return per_device<DeviceKernels>(device); }

Kernel get_kernel(const Device& device, const Variant& v) {
  DeviceKernels& dk = device_kernels(device);
  std::lock_guard<std::mutex> lock(dk.mutex);
  auto it = dk.kernels.find(v.code());
  if (it != dk.kernels.end()) return it->second;
  const char* file = "src/cuda/sgemm_simt.cu";
  const std::string_view text = axle::embedded::kernel_resource(file);
  if (text.empty()) throw Error(std::string("f32 SIMT GEMM: embedded kernel source ") + file + " is missing");
  BuildOptions opts;
  opts.header("gemm_epilogue.cuh", std::string(axle::embedded::kernel_resource("src/cuda/gemm_epilogue.cuh")));
  opts.define("AXLE_SIMT_TILE", v.tile)
      .define("AXLE_SIMT_A_KMAJOR", v.a_kmajor ? 1 : 0)
      .define("AXLE_SIMT_B_KMAJOR", v.b_kmajor ? 1 : 0)
      .define("AXLE_SIMT_VEC4", v.vec4 ? 1 : 0);
  Program p = device.build(Source::cuda(std::string(text), "sgemm_simt"), opts);
  Kernel k = p.kernel("axle_sgemm_simt");
  dk.kernels.emplace(v.code(), k);
  return k;
}

bool aligned16(const Buffer& b, std::size_t off_elems, std::size_t es) {
  const auto base = reinterpret_cast<std::uintptr_t>(b.native_handle());
  return (base % 16) == 0 && (off_elems * es) % 16 == 0;
}

// 16-byte rows: base + offset aligned, leading dimension and batch stride multiples of 4.
bool rows_aligned16(const Buffer& b, std::size_t off, std::size_t ld, std::size_t stride, std::size_t batch,
                    std::size_t es) {
  const std::size_t per16 = 16 / es;
  return aligned16(b, off, es) && ld % per16 == 0 && (batch == 1 || stride % per16 == 0);
}

int c_type_code(ElemType t) { return t == ElemType::F32 ? 0 : (t == ElemType::F16 ? 1 : 2); }

int act_code(Act a) {
  switch (a) {
    case Act::ReLU: return 1;
    case Act::GELU: return 2;  // exact (erf) form
    default: return 0;
  }
}

std::size_t tile_count(const GemmDesc& d, const TileConfig& t) {
  return div_up(d.m, static_cast<std::size_t>(t.bm)) * div_up(d.n, static_cast<std::size_t>(t.bn)) * d.batch;
}

// Padded output area over the real one (>= 1).
double padding_waste(const GemmDesc& d, const TileConfig& t) {
  const double pm = static_cast<double>(div_up(d.m, static_cast<std::size_t>(t.bm)) * t.bm);
  const double pn = static_cast<double>(div_up(d.n, static_cast<std::size_t>(t.bn)) * t.bn);
  return pm * pn / (static_cast<double>(d.m) * static_cast<double>(d.n));
}

int small_tile(const GemmDesc& d) {
  const std::size_t tn = tile_count(d, kTiles[kTileSmallN]), tm = tile_count(d, kTiles[kTileSmallM]);
  if (tn != tm) return tn > tm ? kTileSmallN : kTileSmallM;
  return d.n <= d.m ? kTileSmallN : kTileSmallM;
}

int pick_tile(const GemmDesc& d, unsigned sms, SimtChoice choice) {
  switch (choice) {
    case SimtChoice::Large: return kTileLarge;
    case SimtChoice::Medium: return kTileMedium;
    case SimtChoice::Small: return small_tile(d);
    default: break;
  }
  const std::size_t fill = sms ? sms : 132;
  const std::size_t t_large = tile_count(d, kTiles[kTileLarge]);
  const std::size_t t_medium = tile_count(d, kTiles[kTileMedium]);
  if (t_large >= fill && padding_waste(d, kTiles[kTileLarge]) <= 1.25 * padding_waste(d, kTiles[kTileMedium]))
    return kTileLarge;
  if (t_medium >= fill) return kTileMedium;
  if (t_large >= fill) return kTileLarge;
  return small_tile(d);
}

constexpr std::size_t kDimMax = std::size_t(1) << 30;
constexpr std::size_t kIntMax = static_cast<std::size_t>(std::numeric_limits<int>::max());
constexpr std::size_t kStrideMax = std::size_t(1) << 59;
constexpr std::size_t kMaxGridZ = 65535;

}  // namespace

bool try_gemm_cuda_simt(Stream& stream, const GemmDesc& d) {
  const SimtChoice choice = simt_choice();
  if (choice == SimtChoice::Off) return false;
  const Device& device = stream.device();
  if (!device.valid() || device.backend() != "cuda") return false;
  if (d.a_type != ElemType::F32 || d.b_type != ElemType::F32 || d.allow_tf32) return false;
  if (d.c_type == ElemType::F64) return false;
  if (!d.a || !d.b || !d.c) return false;
  if (d.bias_kind != BiasKind::None && !d.bias) return false;
  if (d.m == 0 || d.n == 0 || d.batch == 0) return true;  // nothing to compute
  if (d.m > kDimMax || d.n > kDimMax || d.k > kDimMax || d.batch > kIntMax) return false;
  for (std::size_t x : {d.lda, d.ldb, d.ldc, d.stride_a, d.stride_b, d.stride_c})
    if (x > kStrideMax) return false;

  Variant v;
  v.tile = pick_tile(d, device.info().compute_units, choice);
  const TileConfig& t = kTiles[v.tile];
  if (div_up(d.m, static_cast<std::size_t>(t.bm)) * div_up(d.n, static_cast<std::size_t>(t.bn)) > kIntMax)
    return false;
  // Operand storage: A k-major unless transposed; B k-major when transposed.
  v.a_kmajor = !d.trans_a;
  v.b_kmajor = d.trans_b;
  v.vec4 = rows_aligned16(*d.a, d.a_off, d.lda, d.stride_a, d.batch, 4) &&
           rows_aligned16(*d.b, d.b_off, d.ldb, d.stride_b, d.batch, 4);
  const std::size_t ces = elem_size(d.c_type);
  const bool c_vec = d.c_type == ElemType::F32 && rows_aligned16(*d.c, d.c_off, d.ldc, d.stride_c, d.batch, 4);

  const Kernel kernel = get_kernel(device, v);
  // alpha == 0: the product is not computed (C is only scaled), as documented.
  const int k_eff = d.alpha == 0.0 ? 0 : static_cast<int>(d.k);
  const std::size_t tiles = div_up(d.m, static_cast<std::size_t>(t.bm)) * div_up(d.n, static_cast<std::size_t>(t.bn));
  const std::size_t gz = std::min(d.batch, kMaxGridZ);
  const bool has_bias = d.bias_kind != BiasKind::None;
  const Buffer& bias_buf = has_bias ? *d.bias : *d.c;
  const std::size_t bias_off = has_bias ? d.bias_off * sizeof(float) : 0;
  const int bias_kind = d.bias_kind == BiasKind::PerRow ? 1 : (d.bias_kind == BiasKind::PerCol ? 2 : 0);
  const std::vector<KernelArg> args = {
      KernelArg::buffer_arg(*d.a, d.a_off * 4),
      KernelArg::buffer_arg(*d.b, d.b_off * 4),
      KernelArg::buffer_arg(*d.c, d.c_off * ces),
      KernelArg::buffer_arg(bias_buf, bias_off),
      KernelArg::scalar(static_cast<int>(d.m)),
      KernelArg::scalar(static_cast<int>(d.n)),
      KernelArg::scalar(k_eff),
      KernelArg::scalar(static_cast<long long>(d.lda)),
      KernelArg::scalar(static_cast<long long>(d.ldb)),
      KernelArg::scalar(static_cast<long long>(d.ldc)),
      KernelArg::scalar(static_cast<long long>(d.stride_a)),
      KernelArg::scalar(static_cast<long long>(d.stride_b)),
      KernelArg::scalar(static_cast<long long>(d.stride_c)),
      KernelArg::scalar(static_cast<int>(d.batch)),
      KernelArg::scalar(static_cast<float>(d.alpha)),
      KernelArg::scalar(static_cast<float>(d.beta)),
      KernelArg::scalar(c_type_code(d.c_type)),
      KernelArg::scalar(bias_kind),
      KernelArg::scalar(act_code(d.act)),
      KernelArg::scalar(c_vec ? 1 : 0),
      KernelArg::local_arg(smem_bytes(t)),
  };
  const std::size_t threads = static_cast<std::size_t>(t.threads);
  stream.launch_args(kernel, Range(tiles * threads, 1, gz), Range(threads, 1, 1), args);
  return true;
}

}  // namespace axle::blas::detail
