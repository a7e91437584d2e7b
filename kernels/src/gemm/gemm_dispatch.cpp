// The GEMM dispatcher (see gemm_dispatch.hpp).
#include "gemm_dispatch.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <random>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gemm_cuda_simt.hpp"
#include "gemm_tensorcore.hpp"

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::blas::detail {

namespace {

constexpr std::size_t kAlignFloats = 64;  // scratch sub-regions start on 256-byte boundaries
constexpr std::size_t kMaxGridZ = 65535;  // CUDA's grid z limit; batches are launched in chunks
constexpr int kPackRows = 256;            // PACK_ROWS in gemm.cl
constexpr std::size_t kDeepK = 2048;      // k piece of a deep-k split (see run_packed)
constexpr std::size_t kNarrowN = 8;       // NARROW_N in gemm.cl: widest C of the narrow path
constexpr std::size_t kNarrowR = 3;       // NARROW_R in gemm.cl: rows per narrow work-item
constexpr std::size_t kShortKBytes = std::size_t{1} << 20;  // packed B that stays in L2 (see run_packed)

int type_code(ElemType t) {
  switch (t) {
    case ElemType::F32: return 0;
    case ElemType::F16: return 1;
    case ElemType::BF16: return 2;
    case ElemType::F64: return 3;
  }
  return 0;
}

// ---- built kernels ------------------------------------------------------------------
struct KernelKey {
  const void* device;
  std::uint64_t lo, hi;
  bool operator==(const KernelKey& o) const { return device == o.device && lo == o.lo && hi == o.hi; }
};
struct KeyHash {
  std::size_t operator()(const KernelKey& k) const {
    std::uint64_t h = reinterpret_cast<std::uintptr_t>(k.device) * 0x9E3779B97F4A7C15ull;
    h ^= k.lo + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h ^= k.hi + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h);
  }
};

struct GemmKernels {
  Device device;  // keeps the device (and so the key's address) alive
  Kernel pack_a, pack_b, packed, pack_bt, narrow, tiled, epilogue;
};

// Everything that selects a program variant, packed into two words.
// pack_a: the effective PACK_A of a packed variant (-1: from the parameters).
// Direct-B variants (PACK_B=0) carry their own MB and KC (see run_packed).
struct PackedVariant {
  int pack_a = -1;  // -1: from the parameters
  int pack_b = 1;
  int mb = 0, kc = -1;  // 0 / -1: from the parameters
  int nb = 1;           // adjacent column panels per work-item (KC slices over B in place)
  int nfirst = -1;      // -1: from the parameters
  int nv = 0;           // 0: from the parameters
};
KernelKey kernel_key(const Device& device, const GemmDesc& d, const GemmParams& p, PackedVariant v = {}) {
  int pack_a = v.pack_a;
  if (pack_a < 0) pack_a = p.pack_a || d.a_type != ElemType::F32 ? 1 : 0;
  std::uint64_t lo = static_cast<std::uint64_t>(p.family == KernelFamily::Packed ? 0 : 1);
  lo |= static_cast<std::uint64_t>(type_code(d.a_type)) << 1;
  lo |= static_cast<std::uint64_t>(type_code(d.b_type)) << 3;
  lo |= static_cast<std::uint64_t>(type_code(d.c_type)) << 5;
  lo |= static_cast<std::uint64_t>(v.nb) << 16;
  std::uint64_t hi = 0;
  if (p.family == KernelFamily::Packed) {
    hi = static_cast<std::uint64_t>(p.mr) | static_cast<std::uint64_t>(p.vw) << 8 |
         static_cast<std::uint64_t>(v.nv ? v.nv : p.nv) << 16 | static_cast<std::uint64_t>(v.mb ? v.mb : p.mb) << 24 |
         static_cast<std::uint64_t>(pack_a) << 40 | static_cast<std::uint64_t>(v.kc >= 0 ? v.kc : p.kc) << 41 |
         static_cast<std::uint64_t>(v.pack_b) << 59 |
         static_cast<std::uint64_t>(v.nfirst >= 0 ? v.nfirst : p.nfirst) << 58;
  } else {
    lo |= static_cast<std::uint64_t>(d.trans_a) << 7 | static_cast<std::uint64_t>(d.trans_b) << 8;
    hi = static_cast<std::uint64_t>(p.bm) | static_cast<std::uint64_t>(p.bn) << 12 |
         static_cast<std::uint64_t>(p.bk) << 24 | static_cast<std::uint64_t>(p.tm) << 36 |
         static_cast<std::uint64_t>(p.tn) << 48;
  }
  return KernelKey{device.shared_impl().get(), lo, hi};
}

struct PlanKey {
  const void* device;
  int dtype;
  int bucket;
  bool operator==(const PlanKey& o) const { return device == o.device && dtype == o.dtype && bucket == o.bucket; }
};
struct PlanHash {
  std::size_t operator()(const PlanKey& k) const {
    return std::hash<const void*>()(k.device) ^ (static_cast<std::size_t>(k.dtype) << 4) ^
           (static_cast<std::size_t>(k.bucket) << 8);
  }
};

struct State {
  std::mutex mutex;
  std::unordered_map<KernelKey, GemmKernels, KeyHash> kernels;
  std::unordered_map<PlanKey, GemmParams, PlanHash> plans;
  std::unordered_map<KernelKey, std::string, KeyHash> checked;  // "" = passed
  std::unordered_map<const void*, Device> plan_devices;         // keeps plan keys' devices alive
};
State& state() {
  static State* s = new State();  // never destroyed: kernels may outlive static destruction order
  return *s;
}

// By value: reset_dispatch_caches() may clear the map while another thread launches.
GemmKernels get_kernels(const Device& device, const GemmDesc& d, const GemmParams& p, PackedVariant v = {}) {
  State& st = state();
  if (v.pack_a < 0) v.pack_a = p.pack_a || d.a_type != ElemType::F32 ? 1 : 0;
  const KernelKey key = kernel_key(device, d, p, v);
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    auto it = st.kernels.find(key);
    if (it != st.kernels.end()) return it->second;
  }
  BuildOptions opt;
  opt.define("A_T", type_code(d.a_type)).define("B_T", type_code(d.b_type)).define("C_T", type_code(d.c_type));
  if (p.family == KernelFamily::Packed) {
    opt.define("MR", p.mr).define("VW", p.vw).define("NV", v.nv ? v.nv : p.nv).define("MB", v.mb ? v.mb : p.mb);
    opt.define("KC", v.kc >= 0 ? v.kc : p.kc).define("NFIRST", v.nfirst >= 0 ? v.nfirst : p.nfirst).define("PACK_A", v.pack_a);
    opt.define("PACK_B", v.pack_b).define("NB", v.nb);
  } else {
    opt.define("BM", p.bm).define("BN", p.bn).define("BK", p.bk).define("TM", p.tm).define("TN", p.tn);
    opt.define("TRANS_A", d.trans_a ? 1 : 0).define("TRANS_B", d.trans_b ? 1 : 0);
  }
  if (device.backend() == "opencl") opt.flags = "-cl-mad-enable";
  const std::string_view text = embedded::kernel_resource("src/cl/gemm.cl");
  if (text.empty()) throw Error("gemm: the kernel source src/cl/gemm.cl is not embedded in this build");
  Program prog = device.build(Source::portable(std::string(text), "gemm.cl"), opt);
  GemmKernels k;
  k.device = device;
  k.epilogue = prog.kernel("axle_gemm_epilogue");
  if (p.family == KernelFamily::Packed) {
    k.pack_a = prog.kernel("axle_gemm_pack_a");
    k.pack_b = prog.kernel("axle_gemm_pack_b");
    k.packed = prog.kernel("axle_gemm_packed");
    if (d.a_type == ElemType::F32) {  // the narrow kernels exist for f32 A only
      k.pack_bt = prog.kernel("axle_gemm_pack_bt");
      k.narrow = prog.kernel("axle_gemm_narrow");
    }
  } else {
    k.tiled = prog.kernel("axle_gemm_tiled");
  }
  std::lock_guard<std::mutex> lock(st.mutex);
  return st.kernels.emplace(key, std::move(k)).first->second;  // a racing build is harmless
}

// Scratch regions live in the stream's workspace (freed with the stream), one
// allocation each, so that each only has to fit the device's largest allocation.
constexpr const char* kSlotPackA = "axle.gemm.pack_a";
constexpr const char* kSlotPackB = "axle.gemm.pack_b";
constexpr const char* kSlotPartials = "axle.gemm.partials";

std::atomic<std::size_t> g_scratch_limit_override{0};
std::atomic<std::size_t> g_scratch_high_water{0};

// The largest scratch region one call may use, in bytes.
std::size_t scratch_limit(const Device& device) {
  std::size_t cap = static_cast<std::size_t>(device.info().max_alloc_bytes);
  if (!cap) cap = std::numeric_limits<std::size_t>::max();
  const std::size_t over = g_scratch_limit_override.load();
  return over ? std::min(cap, over) : cap;
}

// The stream's scratch region `slot`, at least `floats` floats long (the caller has
// checked it against scratch_limit).
const Buffer& scratch_for(Stream& stream, const char* slot, std::size_t floats) {
  const std::size_t bytes = std::max<std::size_t>(floats, 64) * sizeof(float);
  std::size_t seen = g_scratch_high_water.load();
  while (bytes > seen && !g_scratch_high_water.compare_exchange_weak(seen, bytes)) {
  }
  return stream.workspace(slot, bytes);
}

std::size_t align_up(std::size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

// Argument list builder (buffers are always passed whole, offsets as scalars).
struct Args {
  std::vector<KernelArg> v;
  Args& buf(const Buffer& b) {
    v.push_back(KernelArg::buffer_arg(b, 0));
    return *this;
  }
  Args& u64(std::uint64_t x) {
    v.push_back(KernelArg::scalar(x));
    return *this;
  }
  Args& i32(std::size_t x) {
    v.push_back(KernelArg::scalar(static_cast<std::int32_t>(x)));
    return *this;
  }
  Args& i32s(int x) {
    v.push_back(KernelArg::scalar(static_cast<std::int32_t>(x)));
    return *this;
  }
  Args& real(double x, bool f64) {
    if (f64)
      v.push_back(KernelArg::scalar(x));
    else
      v.push_back(KernelArg::scalar(static_cast<float>(x)));
    return *this;
  }
};

bool is_gpu(const Device& d) { return d.info().type != DeviceType::CPU; }

std::atomic<std::size_t> g_units_override{0};

std::size_t compute_units(const Device& d) {
  const std::size_t forced = g_units_override.load();
  return forced ? forced : std::max(1u, d.info().compute_units);
}

// k depth of each of `splits` pieces (a multiple of 16); `splits` becomes the number
// of pieces that depth really gives.
std::size_t split_depth(std::size_t k, int& splits) {
  if (splits <= 1) return k;
  const std::size_t kps = round_up(div_up(k, static_cast<std::size_t>(splits)), 16);
  splits = static_cast<int>(div_up(k, kps));
  return kps;
}

int bias_code(BiasKind b) { return b == BiasKind::None ? 0 : b == BiasKind::PerRow ? 1 : 2; }
int act_code(Act a) { return a == Act::None ? 0 : a == Act::ReLU ? 1 : 2; }

// Rows of C per launch on GPUs: grid dimension y is at most 65535 groups on CUDA.
std::atomic<std::size_t> g_max_groups_y{kMaxGridZ};

// C = act(alpha * sum(partials) + beta * C + bias), in pieces of rows and batches.
void launch_epilogue(Stream& stream, const GemmKernels& k, const GemmDesc& d, const Buffer* w, std::size_t w_off,
                     int splits, bool trans_c = false) {
  const bool f64 = d.c_type == ElemType::F64;
  const bool gpu = is_gpu(stream.device());
  const Buffer& bias = d.bias ? *d.bias : *d.c;
  const std::size_t rows = gpu ? g_max_groups_y.load() * 16 : d.m;
  for (std::size_t b0 = 0; b0 < d.batch; b0 += kMaxGridZ) {
    const std::size_t nb = std::min(kMaxGridZ, d.batch - b0);
    for (std::size_t i0 = 0; i0 < d.m; i0 += rows) {
      const std::size_t mi = std::min(rows, d.m - i0);
      Args a;
      a.buf(w ? *w : *d.c).u64(w ? w_off + b0 * splits * d.m * d.n : 0).i32s(splits);
      a.buf(*d.c).u64(d.c_off + b0 * d.stride_c).u64(d.stride_c).i32(d.ldc);
      a.buf(bias).u64(d.bias ? d.bias_off : 0).i32s(bias_code(d.bias_kind)).i32s(act_code(d.act));
      a.i32(d.m).i32(d.n).real(d.alpha, f64).real(d.beta, f64).i32s(trans_c ? 1 : 0).i32(i0);
      if (gpu)
        stream.launch_args(k.epilogue, Range(round_up(d.n, 16), round_up(mi, 16), nb), Range(16, 16, 1), a.v);
      else
        stream.launch_args(k.epilogue, Range(d.n, mi, nb), Range(), a.v);
    }
  }
}

// Narrow C (n <= kNarrowN; GEMV-like), f32 A not transposed: rows of A against the n
// rows of op(B)^T (B itself when f32 and stored n x k, else packed), vectorised along
// k; k split when there are too few row groups for the compute units.
// Returns false, before enqueuing anything, when a scratch region would exceed the
// per-allocation limit (the caller then splits the product).
bool run_narrow(Stream& stream, const GemmKernels& k, const GemmDesc& d, bool trans_c) {
  const std::size_t units = compute_units(stream.device());
  const std::size_t groups = div_up(d.m, kNarrowR) * d.batch;
  int splits = 1;
  if (groups < 4 * units && d.k >= 4096)
    splits = static_cast<int>(std::min(div_up(4 * units, groups), div_up(d.k, std::size_t{2048})));
  const std::size_t kps = split_depth(d.k, splits);
  const bool b_rows = d.b_type == ElemType::F32 && d.trans_b;  // B already holds op(B)^T's rows
  const std::size_t ldbt = b_rows ? d.ldb : round_up(d.k, 16);
  const std::size_t batch_b = d.stride_b == 0 ? 1 : d.batch;
  const std::size_t bt_one = d.n * ldbt;
  const std::size_t bt_size = b_rows ? 0 : align_up(bt_one * batch_b);
  const std::size_t w_size = splits > 1 ? align_up(static_cast<std::size_t>(splits) * d.batch * d.m * d.n) : 0;
  const std::size_t limit = scratch_limit(stream.device()) / sizeof(float);
  if (bt_size > limit || w_size > limit) return false;
  const Buffer& packed_bt = scratch_for(stream, kSlotPackB, bt_size);
  const Buffer& partials = scratch_for(stream, kSlotPartials, w_size);
  const std::size_t w_off = 0;
  const Range one(1, 1, 1);
  for (std::size_t b0 = 0; b0 < batch_b && !b_rows; b0 += kMaxGridZ) {
    const std::size_t nb = std::min(kMaxGridZ, batch_b - b0);
    Args a;
    a.buf(*d.b).u64(d.b_off + b0 * d.stride_b).u64(d.stride_b).i32(d.ldb).i32s(d.trans_b ? 1 : 0);
    a.buf(packed_bt).u64(b0 * bt_one).u64(bt_one).i32(ldbt).i32(d.n).i32(d.k);
    stream.launch_args(k.pack_bt, Range(d.n, div_up(d.k, kPackRows), nb), one, a.v);
  }
  const Buffer& bias = d.bias ? *d.bias : *d.c;
  const std::size_t per_launch = std::max<std::size_t>(1, kMaxGridZ / splits);
  for (std::size_t b0 = 0; b0 < d.batch; b0 += per_launch) {
    const std::size_t nb = std::min(per_launch, d.batch - b0);
    Args a;
    a.buf(*d.a).u64(d.a_off + b0 * d.stride_a).u64(d.stride_a).i32(d.lda);
    if (b_rows)
      a.buf(*d.b).u64(d.b_off + b0 * d.stride_b).u64(d.stride_b).i32(ldbt);
    else
      a.buf(packed_bt).u64(batch_b == 1 ? 0 : b0 * bt_one).u64(batch_b == 1 ? 0 : bt_one).i32(ldbt);
    a.buf(*d.c).u64(d.c_off + b0 * d.stride_c).u64(d.stride_c).i32(d.ldc);
    a.buf(bias).u64(d.bias ? d.bias_off : 0).i32s(bias_code(d.bias_kind)).i32s(act_code(d.act));
    a.i32(d.m).i32(d.n).i32(d.k).i32(kps).i32s(splits).real(d.alpha, false).real(d.beta, false);
    a.buf(partials).u64(w_off + b0 * splits * d.m * d.n).i32s(trans_c ? 1 : 0);
    stream.launch_args(k.narrow, Range(div_up(d.m, kNarrowR), 1, nb * splits), one, a.v);
  }
  if (splits > 1) launch_epilogue(stream, k, d, &partials, w_off, splits, trans_c);
  return true;
}

// The packed CPU path. Short, wide products (m small, n large) run transposed,
// C^T = op(B)^T op(A)^T with a transposing store, so that the small dimension is the
// column-panel one; A is read in place (no packing) when only one or two column
// panels would reuse its packed copy.
// Returns false, before enqueuing anything, when a scratch region would exceed the
// per-allocation limit (the caller then splits the product).
bool run_packed(Stream& stream, const GemmDesc& in, const GemmParams& p) {
  const std::size_t nr0 = p.nr();
  // Transposing pays when op(B)^T can then be read in place (B stored n x k).
  const bool swap = in.m < in.n && in.m <= 2 * nr0 && in.trans_b;
  GemmDesc d = in;
  if (swap) {
    d.m = in.n;
    d.n = in.m;
    d.a = in.b;
    d.b = in.a;
    d.a_off = in.b_off;
    d.b_off = in.a_off;
    d.lda = in.ldb;
    d.ldb = in.lda;
    d.a_type = in.b_type;
    d.b_type = in.a_type;
    d.trans_a = !in.trans_b;
    d.trans_b = !in.trans_a;
    d.stride_a = in.stride_b;
    d.stride_b = in.stride_a;
    d.bias_kind = in.bias_kind == BiasKind::PerRow ? BiasKind::PerCol
                  : in.bias_kind == BiasKind::PerCol ? BiasKind::PerRow : BiasKind::None;
  }
  // (k at least a few vectors deep: for tiny products the packed path is faster.)
  if (d.n <= kNarrowN && d.k >= 64 && d.a_type == ElemType::F32 && !d.trans_a) {
    return run_narrow(stream, get_kernels(stream.device(), d, p), d, swap);
  }
  const std::size_t units = compute_units(stream.device());
  PackedVariant var;
  // C narrower than the tuned column panel: fewer vectors per panel, so that neither
  // FMAs nor packing go to padding columns (a batch of 16x16 products: ~2x).
  var.nv = static_cast<int>(std::min<std::size_t>(p.nv, div_up(d.n, p.vw)));
  const std::size_t nr = p.vw * static_cast<std::size_t>(var.nv);  // column panel width
  // A read in place when it is not transposed and one or two column panels would use
  // its packed copy.
  const bool few_panels = div_up(d.n, nr) <= 2;
  var.pack_a = d.a_type != ElemType::F32 || (p.pack_a && !(few_panels && !d.trans_a)) ? 1 : 0;
  // B read in place (f32, not transposed, at least one whole column panel wide):
  //  * short C (a few row panels) over a long, wide B: each work-item takes every row
  //    panel of its (up to 4 adjacent) column panels, in KC-deep slices (L2-sized);
  //  * small products, where a packing launch costs as much as the product (PoCL wakes
  //    its worker threads for every launch): with A read in place too (the small
  //    bucket's entries have PACK_A=0), the product is a single launch.
  const std::size_t mp_all = div_up(d.m, static_cast<std::size_t>(p.mr));
  const bool b_direct_ok = d.b_type == ElemType::F32 && !d.trans_b && d.n >= nr;
  const bool short_c = b_direct_ok && mp_all <= 16 && d.k >= 256 && div_up(d.n, nr) >= 8;
  const bool small = b_direct_ok && !short_c && std::string_view(shape_bucket(d.m, d.n, d.k)) == "small";
  const bool direct_b = short_c || small;
  if (short_c) {
    var.pack_b = 0;
    var.mb = static_cast<int>(mp_all);
    var.kc = 128;
    // Up to 4 adjacent column panels per work-item (B rows read 4 * NR floats at a
    // time), keeping at least 4 work-items per compute unit.
    var.nb = static_cast<int>(std::clamp<std::size_t>(div_up(d.n, nr) / (4 * units), 1, 4));
  } else if (small) {
    var.pack_b = 0;
  }
  // Work-item order: with a short k the whole packed B fits in L2, and consecutive
  // work-items taking consecutive column panels of the same rows (NFIRST) read A once
  // and write C in row-major sweeps: 4096x4096x16 ~3x faster. Otherwise the tuned order.
  var.nfirst = !direct_b && d.k * round_up(d.n, nr) * sizeof(float) <= kShortKBytes ? 1 : p.nfirst;
  // Fewer row panels per work-item when there would be too few work-items to balance.
  std::size_t mb = var.mb ? var.mb : p.mb;
  if (!var.mb && mb > 1) {
    const std::size_t items = mp_all * div_up(d.n, nr) * d.batch;
    mb = std::max<std::size_t>(1, std::min(mb, items / (256 * units)));
    var.mb = static_cast<int>(mb);
  }
  const GemmKernels& k = get_kernels(stream.device(), d, p, var);
  const int pack_a = var.pack_a;
  const std::size_t mr = p.mr;
  const std::size_t mp = div_up(d.m, mr), np = div_up(d.n, nr);
  const std::size_t batch_a = d.stride_a == 0 ? 1 : d.batch;  // a stride of 0: pack once
  const std::size_t batch_b = d.stride_b == 0 ? 1 : d.batch;
  const std::size_t ap_one = mp * mr * d.k, bp_one = direct_b ? 0 : np * nr * d.k;

  // Split K when there are too few blocks of C to keep every compute unit busy.
  const std::size_t blocks = div_up(mp, mb) * np * d.batch;
  int splits = 1;
  if (blocks < 2 * units && d.k >= 1024) {
    const std::size_t want = div_up(4 * units, blocks);
    splits = static_cast<int>(std::max<std::size_t>(1, std::min(want, d.k / 512)));
  }
  // Deep k: every row panel streams its column panel of packed B (k * NR floats), and
  // past about 2048 rows that panel no longer stays in L2. Cutting k into ~2048-deep
  // pieces, partial sums in a workspace (at most 256 MiB and a quarter of the largest
  // allocation), keeps each piece's panels cached: 4096^3 ~1.1x, k = 16384 ~2x faster.
  if (splits == 1 && !direct_b && d.k > kDeepK + kDeepK / 2) {
    const std::size_t cap_bytes = std::min<std::size_t>(std::size_t{256} << 20, scratch_limit(stream.device()) / 4);
    const std::size_t fit = cap_bytes / sizeof(float) / (d.batch * d.m * d.n);
    const std::size_t want = std::min(div_up(d.k, kDeepK), fit);
    if (want >= 2) splits = static_cast<int>(want);
  }
  const std::size_t kps = split_depth(d.k, splits);

  const std::size_t ap_size = pack_a ? align_up(ap_one * batch_a) : 0;
  const std::size_t bp_size = align_up(bp_one * batch_b);
  const std::size_t w_size = splits > 1 ? align_up(static_cast<std::size_t>(splits) * d.batch * d.m * d.n) : 0;
  const std::size_t limit = scratch_limit(stream.device()) / sizeof(float);
  if (ap_size > limit || bp_size > limit || w_size > limit) return false;
  const Buffer& packed_a = scratch_for(stream, kSlotPackA, ap_size);
  const Buffer& packed_b = scratch_for(stream, kSlotPackB, bp_size);
  const Buffer& partials = scratch_for(stream, kSlotPartials, w_size);
  const std::size_t ap_off = 0, bp_off = 0, w_off = 0;
  const Range one(1, 1, 1);

  if (pack_a) {
    for (std::size_t b0 = 0; b0 < batch_a; b0 += kMaxGridZ) {
      const std::size_t nb = std::min(kMaxGridZ, batch_a - b0);
      Args a;
      a.buf(*d.a).u64(d.a_off + b0 * d.stride_a).u64(d.stride_a).i32(d.lda).i32s(d.trans_a ? 1 : 0);
      a.buf(packed_a).u64(ap_off + b0 * ap_one).u64(ap_one).i32(d.m).i32(d.k);
      stream.launch_args(k.pack_a, Range(mp, div_up(d.k, kPackRows), nb), one, a.v);
    }
  }
  for (std::size_t b0 = 0; b0 < batch_b && !direct_b; b0 += kMaxGridZ) {
    const std::size_t nb = std::min(kMaxGridZ, batch_b - b0);
    Args a;
    a.buf(*d.b).u64(d.b_off + b0 * d.stride_b).u64(d.stride_b).i32(d.ldb).i32s(d.trans_b ? 1 : 0);
    a.buf(packed_b).u64(bp_off + b0 * bp_one).u64(bp_one).i32(d.n).i32(d.k);
    stream.launch_args(k.pack_b, Range(np, div_up(d.k, kPackRows), nb), one, a.v);
  }
  const Buffer& bias = d.bias ? *d.bias : *d.c;
  const std::size_t per_launch = std::max<std::size_t>(1, kMaxGridZ / splits);
  for (std::size_t b0 = 0; b0 < d.batch; b0 += per_launch) {
    const std::size_t nb = std::min(per_launch, d.batch - b0);
    Args a;
    if (pack_a)
      a.buf(packed_a).u64(ap_off + (batch_a == 1 ? 0 : b0 * ap_one)).u64(batch_a == 1 ? 0 : ap_one).i32(d.lda);
    else
      a.buf(*d.a).u64(d.a_off + b0 * d.stride_a).u64(d.stride_a).i32(d.lda);
    a.i32s(d.trans_a ? 1 : 0);
    a.buf(packed_b).u64(bp_off + (batch_b == 1 ? 0 : b0 * bp_one)).u64(batch_b == 1 ? 0 : bp_one);
    a.buf(*d.c).u64(d.c_off + b0 * d.stride_c).u64(d.stride_c).i32(d.ldc);
    a.buf(bias).u64(d.bias ? d.bias_off : 0).i32s(bias_code(d.bias_kind)).i32s(act_code(d.act));
    a.i32(d.m).i32(d.n).i32(d.k).i32(kps).i32s(splits).real(d.alpha, false).real(d.beta, false);
    a.buf(partials).u64(w_off + b0 * splits * d.m * d.n).i32s(swap ? 1 : 0);
    a.buf(*d.b).u64(d.b_off + b0 * d.stride_b).u64(d.stride_b).i32(d.ldb);
    const std::size_t ng = div_up(np, static_cast<std::size_t>(var.nb));  // column-panel groups
    const Range grid = var.nfirst ? Range(ng, div_up(mp, mb), nb * splits) : Range(div_up(mp, mb), ng, nb * splits);
    stream.launch_args(k.packed, grid, one, a.v);
  }
  if (splits > 1) launch_epilogue(stream, k, d, &partials, w_off, splits, swap);
  return true;
}

// The packed path for a product whose scratch does not fit one allocation: split it
// (batch, then the largest of m, n and k) until every piece's scratch fits. A k split
// runs the first part without bias or activation and the second with beta = 1; C holds
// the first part's sum in between, so a 16-bit C is split along k only as a last resort.
void run_packed_fitting(Stream& stream, const GemmDesc& d, const GemmParams& p) {
  if (run_packed(stream, d, p)) return;
  GemmDesc lo = d, hi = d;
  const bool wide_c = d.c_type == ElemType::F32 || d.c_type == ElemType::F64;
  const bool split_k = d.k >= 32 && (wide_c ? d.k >= std::max(d.m, d.n) : d.m <= 1 && d.n <= 1);
  if (d.batch > 1) {
    const std::size_t h = d.batch / 2;
    lo.batch = h;
    hi.batch = d.batch - h;
    hi.a_off += h * d.stride_a;
    hi.b_off += h * d.stride_b;
    hi.c_off += h * d.stride_c;
  } else if (split_k) {
    const std::size_t h = round_up(d.k / 2, 16);
    lo.k = h;
    hi.k = d.k - h;
    hi.a_off += d.trans_a ? h * d.lda : h;
    hi.b_off += d.trans_b ? h : h * d.ldb;
    lo.bias_kind = BiasKind::None;
    lo.act = Act::None;
    hi.beta = 1.0;
  } else if (d.m >= d.n && d.m > 1) {
    const std::size_t h = d.m / 2;
    lo.m = h;
    hi.m = d.m - h;
    hi.a_off += d.trans_a ? h : h * d.lda;
    hi.c_off += h * d.ldc;
    if (d.bias_kind == BiasKind::PerRow) hi.bias_off += h;
  } else if (d.n > 1) {
    const std::size_t h = d.n / 2;
    lo.n = h;
    hi.n = d.n - h;
    hi.b_off += d.trans_b ? h * d.ldb : h;
    hi.c_off += h;
    if (d.bias_kind == BiasKind::PerCol) hi.bias_off += h;
  } else {
    throw Error("gemm: the scratch memory of a " + std::to_string(d.m) + "x" + std::to_string(d.n) + "x" +
                std::to_string(d.k) + " product does not fit in one allocation of " + stream.device().id());
  }
  run_packed_fitting(stream, lo, p);
  run_packed_fitting(stream, hi, p);
}

// Tall C runs in pieces of rows (A, C and a per-row bias offset to each piece's first
// row): grid dimension y is at most 65535 groups on CUDA.
void run_tiled(Stream& stream, const GemmDesc& d, const GemmParams& p, const GemmKernels& k) {
  const bool f64 = d.c_type == ElemType::F64 || d.a_type == ElemType::F64;
  const std::size_t lx = p.bn / p.tn, ly = p.bm / p.tm;
  const Buffer& bias = d.bias ? *d.bias : *d.c;
  const std::size_t rows = g_max_groups_y.load() * p.bm;
  for (std::size_t b0 = 0; b0 < d.batch; b0 += kMaxGridZ) {
    const std::size_t nb = std::min(kMaxGridZ, d.batch - b0);
    for (std::size_t i0 = 0; i0 < d.m; i0 += rows) {
      const std::size_t mi = std::min(rows, d.m - i0);
      const std::size_t bias_row = d.bias_kind == BiasKind::PerRow ? i0 : 0;
      Args a;
      a.buf(*d.a).u64(d.a_off + b0 * d.stride_a + (d.trans_a ? i0 : i0 * d.lda)).u64(d.stride_a).i32(d.lda);
      a.buf(*d.b).u64(d.b_off + b0 * d.stride_b).u64(d.stride_b).i32(d.ldb);
      a.buf(*d.c).u64(d.c_off + b0 * d.stride_c + i0 * d.ldc).u64(d.stride_c).i32(d.ldc);
      a.buf(bias).u64(d.bias ? d.bias_off + bias_row : 0).i32s(bias_code(d.bias_kind)).i32s(act_code(d.act));
      a.i32(mi).i32(d.n).i32(d.k).real(d.alpha, f64).real(d.beta, f64);
      stream.launch_args(k.tiled, Range(div_up(d.n, p.bn) * lx, div_up(mi, p.bm) * ly, nb), Range(lx, ly, 1), a.v);
    }
  }
}

ElemType plan_dtype(const GemmDesc& d) {
  if (d.a_type == ElemType::F64 || d.c_type == ElemType::F64) return ElemType::F64;
  return d.a_type;
}

int bucket_index(const char* b) { return b[0] == 's' ? (b[1] == 'm' ? 0 : 1) : 2; }

}  // namespace

void run_gemm_with(Stream& stream, const GemmDesc& d, const GemmParams& p) {
  const std::string why = p.invalid_reason(stream.device().info());
  if (!why.empty()) throw InvalidArgument("gemm parameters " + p.str() + ": " + why);
  if (p.family == KernelFamily::Packed && plan_dtype(d) == ElemType::F64)
    throw InvalidArgument("gemm parameters " + p.str() + ": the packed kernels do not run f64");
  if (d.alpha == 0.0 || d.k == 0) {
    launch_epilogue(stream, get_kernels(stream.device(), d, p), d, nullptr, 0, 0);
    return;
  }
  if (p.family == KernelFamily::Packed)
    run_packed_fitting(stream, d, p);
  else
    run_tiled(stream, d, p, get_kernels(stream.device(), d, p));
}

std::string check_params(const Device& device, const GemmParams& p, ElemType dtype) {
  try {
    const std::string why = p.invalid_reason(device.info());
    if (!why.empty()) return why;
    const bool f64 = dtype == ElemType::F64;
    // A shape that crosses every tile edge, with beta, a bias and a transposed B.
    const std::size_t m = p.family == KernelFamily::Packed ? 2 * p.mr * p.mb + 3 : p.bm + 5;
    const std::size_t n = p.family == KernelFamily::Packed ? 2 * p.nr() + 5 : p.bn + 3;
    const std::size_t k = (p.family == KernelFamily::Packed ? 37 : 2 * p.bk + 3);
    std::mt19937 rng(1234);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    std::vector<double> ha(m * k), hb(n * k), hc(m * n), hbias(n);
    for (auto* v : {&ha, &hb, &hc, &hbias})
      for (double& x : *v) x = dist(rng);
    const double alpha = 1.25, beta = -0.5;
    Stream s = device.create_stream();
    auto upload = [&](const std::vector<double>& h) {
      Buffer buf = device.alloc_bytes(h.size() * (f64 ? 8 : 4));
      if (f64) {
        s.copy(h.data(), h.size(), buf.view<double>());
      } else {
        std::vector<float> f(h.begin(), h.end());
        s.copy(f.data(), f.size(), buf.view<float>());
        s.synchronize();
      }
      s.synchronize();
      return buf;
    };
    Buffer da = upload(ha), db = upload(hb), dc = upload(hc), dbias = upload(hbias);
    GemmDesc d;
    d.m = m;
    d.n = n;
    d.k = k;
    d.trans_b = true;
    d.a_type = d.b_type = d.c_type = f64 ? ElemType::F64 : ElemType::F32;
    d.alpha = alpha;
    d.beta = beta;
    d.a = &da;
    d.b = &db;
    d.c = &dc;
    d.lda = k;
    d.ldb = k;
    d.ldc = n;
    d.bias_kind = BiasKind::PerCol;
    d.bias = &dbias;
    run_gemm_with(s, d, p);
    std::vector<double> out(m * n);
    if (f64) {
      s.copy(dc.view<double>(), out.data(), out.size());
      s.synchronize();
    } else {
      std::vector<float> f(m * n);
      s.copy(dc.view<float>(), f.data(), f.size());
      s.synchronize();
      out.assign(f.begin(), f.end());
    }
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::size_t q = 0; q < k; ++q) acc += ha[i * k + q] * hb[j * k + q];
        const double want = alpha * acc + beta * hc[i * n + j] + hbias[j];
        if (!(std::fabs(out[i * n + j] - want) <= 1e-4 * (1 + std::fabs(want))))
          return "element (" + std::to_string(i) + ", " + std::to_string(j) + ") is " +
                 std::to_string(out[i * n + j]) + ", expected " + std::to_string(want);
      }
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

GemmParams chosen_params(const Device& device, ElemType dtype, std::size_t m, std::size_t n, std::size_t k) {
  const char* bucket = shape_bucket(m, n, k);
  State& st = state();
  const PlanKey key{device.shared_impl().get(), type_code(dtype), bucket_index(bucket)};
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    auto it = st.plans.find(key);
    if (it != st.plans.end()) return it->second;
  }
  const std::vector<GemmParams> cands = candidate_params(device.info(), dtype, bucket);
  GemmParams chosen = cands.back();
  for (std::size_t i = 0; i < cands.size(); ++i) {
    const GemmParams& c = cands[i];
    if (i + 1 == cands.size()) break;  // the built-in default is covered by the test suite
    GemmDesc probe;
    probe.a_type = probe.b_type = probe.c_type = dtype == ElemType::F64 ? ElemType::F64 : ElemType::F32;
    probe.trans_b = true;
    const KernelKey ck = kernel_key(device, probe, c);
    std::string verdict;
    bool known = false;
    {
      std::lock_guard<std::mutex> lock(st.mutex);
      auto it = st.checked.find(ck);
      if (it != st.checked.end()) {
        verdict = it->second;
        known = true;
      }
    }
    if (!known) {
      verdict = check_params(device, c, dtype);
      std::lock_guard<std::mutex> lock(st.mutex);
      st.checked[ck] = verdict;
    }
    if (verdict.empty()) {
      chosen = c;
      break;
    }
    axle::log("blas", LogLevel::Warn,
              "tuning entry " + c.str() + " from " + c.origin + " rejected on " + device.name() + ": " + verdict);
  }
  std::lock_guard<std::mutex> lock(st.mutex);
  st.plan_devices.emplace(key.device, device);
  return st.plans.emplace(key, chosen).first->second;
}

void run_gemm(Stream& stream, const GemmDesc& d) {
  // CUDA-only paths first (tensor cores; f32 SIMT kernels); each declines what it does not serve.
  if (stream.device().backend() == "cuda" && (try_gemm_tensorcore(stream, d) || try_gemm_cuda_simt(stream, d))) return;
  const GemmParams& p = chosen_params(stream.device(), plan_dtype(d), d.m, d.n, d.k);
  run_gemm_with(stream, d, p);
}

void set_limits_for_testing(std::size_t scratch_bytes, std::size_t max_groups_y) {
  g_scratch_limit_override = scratch_bytes;
  g_max_groups_y = max_groups_y ? max_groups_y : kMaxGridZ;
}

void set_compute_units_for_testing(std::size_t units) { g_units_override = units; }

std::size_t scratch_high_water_bytes(bool reset) {
  return reset ? g_scratch_high_water.exchange(0) : g_scratch_high_water.load();
}

void reset_dispatch_caches() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  st.kernels.clear();
  st.plans.clear();
  st.checked.clear();
  st.plan_devices.clear();
}

}  // namespace axle::blas::detail
