// Convolution algorithms: direct, implicit GEMM (packed register blocks on CPUs,
// local-memory tiles on GPUs) and 1x1 through blas::gemm. Each says which problems it
// serves (algo_unsupported_reason) and is built once per plan (make_algo).
#include <algorithm>
#include <array>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "axle/blas.hpp"
#include "conv_backward.hpp"
#include "conv_depthwise.hpp"
#include "conv_cuda.hpp"
#include "common/env_choice.hpp"
#include "conv_plan.hpp"
#include "conv_winograd.hpp"

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::dnn::detail {
namespace {

int act_code(Activation a) { return a == Activation::None ? 0 : a == Activation::ReLU ? 1 : 2; }
bool is_gpu(const Device& d) { return d.info().type != DeviceType::CPU; }

constexpr std::size_t kMaxGroupsY = 65535;  // CUDA's grid y and z limits

Program build_conv(const ConvProblem& pb, BuildOptions opt, const std::string& file = "conv.cl") {
  return build_conv_program(pb, file.c_str(), opt);
}

// Scalar arguments shared by the portable kernels (AXLE_CONV_GEOMETRY in conv.cl).
void geometry(std::vector<KernelArg>& a, const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  for (std::size_t v : {d.n, d.c, d.h, d.w, d.k, d.r, d.s, pb.p, pb.q, d.stride_h, d.stride_w, d.pad_top,
                        d.pad_left, d.dilation_h, d.dilation_w, d.groups})
    a.push_back(KernelArg::scalar(static_cast<std::int32_t>(v)));
}

// x, w, y, bias, z as (buffer, element offset) pairs; absent parts bind y's buffer.
void tensors(std::vector<KernelArg>& a, const Conv2dArgs& args) {
  auto add = [&](const Buffer& b, std::size_t off) {
    a.push_back(KernelArg::buffer_arg(b, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(off)));
  };
  add(*args.x.buffer, args.x.offset);
  add(*args.w.buffer, args.w.offset);
  add(*args.y.buffer, args.y.offset);
  if (args.bias.valid())
    add(args.bias.buffer(), args.bias.offset());
  else
    add(*args.y.buffer, 0);
  if (args.z.valid())
    add(*args.z.buffer, args.z.offset);
  else
    add(*args.y.buffer, 0);
}

void epilogue_args(std::vector<KernelArg>& a, const ConvProblem& pb, const Conv2dArgs& args) {
  a.push_back(KernelArg::scalar(args.alpha));
  a.push_back(KernelArg::scalar(args.beta));
  a.push_back(KernelArg::scalar(std::int32_t{pb.fusion.bias ? 1 : 0}));
  a.push_back(KernelArg::scalar(std::int32_t{pb.fusion.residual ? 1 : 0}));
  a.push_back(KernelArg::scalar(static_cast<std::int32_t>(act_code(pb.fusion.activation))));
}

// ---- direct ---------------------------------------------------------------------------

class DirectAlgo final : public ConvAlgo {
 public:
  explicit DirectAlgo(const ConvProblem& pb) : pb_(pb) {
    kernel_ = build_conv(pb, {}).kernel("axle_conv_direct_fwd");
    local_ = is_gpu(pb.device) ? std::min<std::size_t>(128, kernel_.max_work_group_size()) : 0;
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override { return local_ ? "work-group " + std::to_string(local_) : ""; }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    const std::size_t total = pb_.desc.y_elems();
    // One launch covers at most 2^30 outputs (well inside every grid limit).
    const std::size_t chunk = std::size_t{1} << 30;
    for (std::size_t base = 0; base < total; base += chunk) {
      const std::size_t count = std::min(chunk, total - base);
      std::vector<KernelArg> a;
      tensors(a, args);
      geometry(a, pb_);
      epilogue_args(a, pb_, args);
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(base)));
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(total)));
      if (local_)
        stream.launch_args(kernel_, Range(round_up(count, local_)), Range(local_), a);
      else
        stream.launch_args(kernel_, Range(count), Range(), a);
    }
  }

 private:
  ConvProblem pb_;
  Kernel kernel_;
  std::size_t local_ = 0;
};

// ---- implicit GEMM (portable, local-memory tiles) --------------------------------------

struct TileParams {
  int bm, bn, bk, tm, tn;
};

TileParams tile_params(const ConvProblem& pb) {
  const std::size_t kg = pb.desc.k / pb.desc.groups;
  if (!is_gpu(pb.device)) return kg <= 32 ? TileParams{64, 32, 16, 8, 4} : TileParams{64, 64, 16, 8, 8};
  return kg <= 32 ? TileParams{64, 32, 16, 4, 4} : TileParams{64, 64, 16, 4, 4};
}

class ImplicitGemmAlgo final : public ConvAlgo {
 public:
  explicit ImplicitGemmAlgo(const ConvProblem& pb) : pb_(pb), t_(tile_params(pb)) {
    BuildOptions opt;
    opt.define("BM", t_.bm).define("BN", t_.bn).define("BK", t_.bk).define("TM", t_.tm).define("TN", t_.tn);
    kernel_ = build_conv(pb, opt).kernel("axle_conv_igemm_fwd");
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override {
    return "tiled BM=" + std::to_string(t_.bm) + " BN=" + std::to_string(t_.bn) + " BK=" + std::to_string(t_.bk) +
           " TM=" + std::to_string(t_.tm) + " TN=" + std::to_string(t_.tn);
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    const Conv2dDesc& d = pb_.desc;
    const std::size_t m = d.n * pb_.p * pb_.q, kg = d.k / d.groups;
    const std::size_t lx = t_.bn / t_.tn, ly = t_.bm / t_.tm;
    const std::size_t rows = kMaxGroupsY * t_.bm;  // output pixels per launch
    for (std::size_t m0 = 0; m0 < m; m0 += rows) {
      const std::size_t mi = std::min(rows, m - m0);
      std::vector<KernelArg> a;
      tensors(a, args);
      geometry(a, pb_);
      epilogue_args(a, pb_, args);
      a.push_back(KernelArg::scalar(static_cast<std::int32_t>(m0)));
      stream.launch_args(kernel_, Range(div_up(kg, t_.bn) * lx, div_up(mi, t_.bm) * ly, d.groups),
                         Range(lx, ly, 1), a);
    }
  }

 private:
  ConvProblem pb_;
  TileParams t_;
  Kernel kernel_;
};

// ---- implicit GEMM (CPU: packed filters, register blocks) ------------------------------

// Which implicit-GEMM kernel serves a problem: AXLE_CONV_IGEMM=packed|inplace|tiled
// forces one (inplace serves NHWC; NCHW then takes packed), auto (the default) takes
// the tiles on GPUs and on CPU devices the packed kernel, or the in-place one where
// packing the filters on every run would cost more than it saves (inplace_pays).
enum class IgemmVariant { Auto, Packed, Inplace, Tiled };

bool inplace_pays(const ConvProblem& pb);

IgemmVariant igemm_variant(const ConvProblem& pb) {
  IgemmVariant v = blas::detail::env_choice("AXLE_CONV_IGEMM",
                                            {{"auto", IgemmVariant::Auto},
                                             {"packed", IgemmVariant::Packed},
                                             {"inplace", IgemmVariant::Inplace},
                                             {"tiled", IgemmVariant::Tiled}},
                                            IgemmVariant::Auto, "auto, packed, inplace, tiled");
  const bool nhwc = pb.desc.layout == TensorLayout::NHWC;
  if (v == IgemmVariant::Auto) {
    if (is_gpu(pb.device)) return IgemmVariant::Tiled;
    // The packed kernel reads a bwd_data's filters in place (no flip, no packing).
    // Packed once by the caller, the packed kernel is the faster (ResNet-50's 3x3 C256
    // at 14x14 and C512 at 7x7, batch 1, PoCL AVX2: 1.2-1.25x the in-place kernel).
    const bool packed_once = pb.options.packed_weights && pb.direction == Direction::Forward;
    return nhwc && !pb.w_transposed && !packed_once && inplace_pays(pb) ? IgemmVariant::Inplace
                                                                        : IgemmVariant::Packed;
  }
  if (v == IgemmVariant::Inplace && !nhwc) return IgemmVariant::Packed;
  return v;
}

bool use_packed(const ConvProblem& pb) { return igemm_variant(pb) == IgemmVariant::Packed; }

// Packing costs two passes over the filters per run, the in-place kernel's reduction an
// epilogue per block: in place wins where the filters are large next to the output
// pixels (many channels, a filter of several taps, few pixels: ResNet-50's 3x3 C512 at
// 7x7 ran 2x faster at batch 1, 1.15x at batch 8, on PoCL AVX-512) and loses on short
// reductions (1x1 layers, C < 256: 2-3x slower).
bool inplace_pays(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  const std::size_t cg = d.c / d.groups, taps = d.r * d.s, m = d.n * pb.p * pb.q;
  return cg >= 256 && taps >= 4 && m <= 4 * cg;
}

// Whether some filter tap of some output pixel falls in the padding (reads the zero row).
bool taps_reach_padding(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  return d.pad_top > 0 || d.pad_left > 0 || (pb.p - 1) * d.stride_h + (d.r - 1) * d.dilation_h >= d.h ||
         (pb.q - 1) * d.stride_w + (d.s - 1) * d.dilation_w >= d.w;
}

// Whether y is written with streaming stores (NTS in conv_packed.cl): an NHWC f32 output
// of at least a quarter of the device's cache would not stay there for its reader, and
// stores through the cache read every line first (ResNet-50's 1x1 C64->K256 at batch 8,
// 26 MB, PoCL AVX-512 with a 32 MiB cache: 1.2x; 1x1/2 C256->K512, 13 MB: 1.07x).
// AXLE_CONV_STREAM_STORES=on|off forces the choice.
bool streaming_stores(const ConvProblem& pb) {
  enum class Nts { Auto, On, Off };
  const Nts v = blas::detail::env_choice("AXLE_CONV_STREAM_STORES", {{"auto", Nts::Auto}, {"on", Nts::On}, {"off", Nts::Off}},
                                         Nts::Auto, "auto, on, off");
  if (pb.desc.layout != TensorLayout::NHWC || pb.types.y != DataType::F32 || pb.device.info().backend != "opencl")
    return false;
  if (v != Nts::Auto) return v == Nts::On;
  const std::uint64_t cache = pb.device.info().cache_bytes;
  const std::uint64_t y_bytes = static_cast<std::uint64_t>(pb.desc.n) * pb.p * pb.q * pb.desc.k * sizeof(float);
  return cache > 0 && y_bytes >= cache / 4;
}

// A whole number in [lo, hi] from `var` (unset or empty: nothing); any other value throws
// InvalidArgument "<var> = '<value>': want <want>".
std::optional<long> env_whole_number(const char* var, long lo, long hi, const char* want) {
  const char* e = std::getenv(var);
  if (!e || !*e) return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  if (*end != '\0' || v < lo || v > hi) throw InvalidArgument(std::string(var) + " = '" + e + "': want " + want);
  return v;
}

struct PackedParams {
  int mr, vw, nv, mb, kc, kpn = 1;
  bool nts = false;  // streaming stores of y
  std::size_t nr() const { return static_cast<std::size_t>(vw) * nv; }
};

// A work-item's filter panel (taps x C / G x NR floats) is read once per block, in order:
// the prefetchers stream it from the outer cache as fast as the FMAs consume it, so even
// a panel several times L2 (ResNet-50's 3x3 C512: 1.2 MB on 64-wide panels) runs faster
// whole than in KC-deep slices shared by several blocks (AMD EPYC AVX-512, 1 MiB L2:
// 3x3 C256 and C512 at batch 1 and 8, 1.09-1.19x). Only a panel past this size is sliced.
constexpr std::size_t kPanelStreamBytes = std::size_t{4} << 20;
constexpr std::size_t kPanelsL2Bytes = std::size_t{256} << 10;  // a work-item's panels (1x1) in L2

PackedParams packed_params(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, taps = d.r * d.s;
  PackedParams t{};
  // 6 x 64 blocks on 16-wide machines (24 accumulators + 4 filter vectors + 1
  // broadcast of 32 registers), 6 x 16 on 8-wide ones (16 registers); fewer vectors
  // when K / G is narrower than that.
  t.vw = pb.device.info().preferred_vector_width_float >= 16 ? 16 : 8;
  t.mr = 6;
  t.nv = static_cast<int>(std::min<std::size_t>(t.vw == 16 ? 4 : 2, div_up(kg, t.vw)));
  const std::size_t units = std::max<std::size_t>(1, pb.device.info().compute_units);
  const std::size_t blocks = div_up(d.n * pb.p * pb.q, static_cast<std::size_t>(t.mr));
  const std::size_t items = blocks * div_up(kg, t.nr()) * d.groups;
  const std::size_t panel = taps * cg * t.nr() * sizeof(float);
  // A panel too large to stream is walked in KC-deep channel slices shared by MB blocks;
  // else each block takes the whole reduction, MB only grouping blocks while ~16
  // work-items per compute unit remain. The blocks are spread evenly. AXLE_CONV_KC=N
  // forces N-deep slices (0: none).
  t.kc = panel > kPanelStreamBytes && cg >= 64 ? 64 : 0;
  if (const auto v = env_whole_number("AXLE_CONV_KC", 0, 4096, "a whole number of channels per slice, 0 (no slices) to 4096"))
    t.kc = static_cast<int>(*v);
  std::size_t mb;
  if (t.kc > 0) {
    // Each block group reads its whole panel once from outside L2: as few groups as
    // keep 4 work-items per compute unit.
    const std::size_t panels = items / blocks;
    mb = std::clamp<std::size_t>(blocks * panels / (4 * units), 1, 16);
  } else {
    mb = std::clamp<std::size_t>(items / (16 * units), 1, 4);
  }
  mb = div_up(blocks, div_up(blocks, mb));
  t.mb = static_cast<int>(mb);
  // 1x1 filters: a block's input rows are short (C / G floats each) and every panel
  // pass would stream all of x again; a work-item takes several panels for its blocks
  // instead (as many as stay in L2 together), the rows staying in L1 (ResNet-50's 1x1
  // layers at batch 1, PoCL AVX2: 1.0-1.55x; 3x3 layers lose 5 %, their rows are reused
  // across neighbouring blocks already). AXLE_CONV_KPN=N forces N panels per work-item.
  const std::size_t kp_n = div_up(kg, t.nr());
  std::size_t kpn = 1;
  if (taps == 1 && t.kc == 0) {
    kpn = std::clamp<std::size_t>(kPanelsL2Bytes / std::max<std::size_t>(1, panel), 1, kp_n);
    const std::size_t grid_x = div_up(blocks, mb);
    while (kpn > 1 && grid_x * div_up(kp_n, kpn) * d.groups < 4 * units) kpn = div_up(kpn, 2);
    kpn = div_up(kp_n, div_up(kp_n, kpn));  // the panels spread evenly
  }
  if (const auto v = env_whole_number("AXLE_CONV_KPN", 1, LONG_MAX, "a whole number of panels, at least 1"))
    kpn = std::min<std::size_t>(static_cast<std::size_t>(*v), kp_n);
  t.kpn = t.kc == 0 ? static_cast<int>(kpn) : 1;
  t.nts = streaming_stores(pb);
  return t;
}

class PackedIgemmAlgo final : public ConvAlgo {
 public:
  explicit PackedIgemmAlgo(const ConvProblem& pb)
      : pb_(pb), t_(packed_params(pb)), win_(pb.w_transposed && transposed_ok(pb, t_)) {
    const Conv2dDesc& d = pb.desc;
    BuildOptions opt;
    opt.define("MR", t_.mr).define("VW", t_.vw).define("NV", t_.nv).define("MB", t_.mb).define("KC", t_.kc);
    opt.define("KPN", t_.kpn);
    opt.define("NTS", t_.nts ? 1 : 0);
    opt.define("WIN", win_ ? 1 : 0);
    rowrun_ = d.layout == TensorLayout::NHWC && d.groups == 1 && d.dilation_w == 1 && d.s > 1 && !win_ && t_.kc == 0;
    opt.define("ROWRUN", rowrun_ ? 1 : 0);
    Program prog = build_conv(pb, opt, "conv_packed.cl");
    if (!win_) pack_ = prog.kernel("axle_conv_pack_w");
    conv_ = prog.kernel("axle_conv_packed_fwd");
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups;
    kp_n_ = div_up(kg, t_.nr());
    const std::size_t blocks = div_up(d.n * pb.p * pb.q, static_cast<std::size_t>(t_.mr));
    grid_x_ = div_up(blocks, static_cast<std::size_t>(t_.mb));
    if (win_) {  // nothing packed; one zero row per work-item where taps reach the padding
      wp_floats_ = 0;
      zero_rows_ = taps_reach_padding(pb);
      zero_len_ = zero_rows_ ? grid_x_ * kp_n_ * d.groups * round_up(cg, 16) : 0;
    } else {
      pack_items_ = d.groups * kp_n_ * d.r * d.s * div_up(cg, kPackC);
      wp_floats_ = round_up(d.groups * kp_n_ * d.r * d.s * cg * t_.nr(), 16);
      // The zero row: C / G floats (NHWC), or (C / G - 1) * H * W + 1 (NCHW, c strides by H * W).
      // ROWRUN reads S * C / G of it at once.
      zero_len_ = d.layout == TensorLayout::NHWC ? cg * (rowrun_ ? d.s : 1) : (cg - 1) * d.h * d.w + 1;
    }
    ws_bytes_ = kAlign + (wp_floats_ + round_up(zero_len_, 16)) * sizeof(float);
  }
  static bool transposed_ok(const ConvProblem& pb, const PackedParams& t) {
    return pb.desc.layout == TensorLayout::NHWC && pb.types.x == DataType::F32 &&
           (pb.desc.k / pb.desc.groups) % t.nr() == 0;
  }
  std::size_t workspace_bytes() const override { return ws_bytes_; }
  std::string params() const override {
    return "packed MR=" + std::to_string(t_.mr) + " VW=" + std::to_string(t_.vw) + " NV=" + std::to_string(t_.nv) +
           " MB=" + std::to_string(t_.mb) + " KC=" + std::to_string(t_.kc) +
           (t_.kpn > 1 ? " KPN=" + std::to_string(t_.kpn) : "") +
           (win_ ? ", the layer's filters read flipped in place as " + std::to_string(t_.nr()) + "-wide panels"
                 : ", filters packed in " + std::to_string(t_.nr()) + "-wide panels") +
           (rowrun_ ? ", a filter row's taps as one run" : "") + (t_.nts ? ", streaming stores" : "");
  }
  // The panels and the zero row, packed once (forward plans; WIN reads w in place).
  std::size_t packed_weights_bytes() const override {
    return win_ || pb_.direction != Direction::Forward ? 0 : (wp_floats_ + round_up(zero_len_, 16)) * sizeof(float);
  }
  // The zero row comes with the packed filters: nothing else.
  std::size_t packed_run_workspace_bytes() const override { return 0; }
  void pack_weights(Stream& stream, const TensorRef& w, const Buffer& dst, std::size_t off) const override {
    const std::size_t wp_off = off / sizeof(float);
    enqueue_pack(stream, w, dst, wp_off, wp_off + wp_floats_);
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const Conv2dDesc& d = pb_.desc;
    // Float offsets into the workspace, 64-byte aligned (buffers are); or into the
    // caller's packed filters (the panels, then the zero row).
    const bool prepacked = args.packed_w.valid();
    const Buffer* wbuf = prepacked ? &args.packed_w.buffer() : ws;
    const std::size_t wp_off = prepacked ? args.packed_w.offset_bytes() / sizeof(float)
                                         : div_up(ws_off, kAlign) * (kAlign / sizeof(float));
    const std::size_t zero_off = wp_off + wp_floats_;
    if (!win_ && !prepacked) enqueue_pack(stream, args.w, *ws, wp_off, zero_off);
    std::vector<KernelArg> a;
    a.push_back(KernelArg::buffer_arg(*args.x.buffer, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(args.x.offset)));
    a.push_back(KernelArg::buffer_arg(win_ ? *args.w.buffer : *wbuf, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(win_ ? args.w.offset : 0)));
    a.push_back(KernelArg::buffer_arg(*wbuf, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(wp_off)));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(zero_off)));
    a.push_back(KernelArg::buffer_arg(*args.y.buffer, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(args.y.offset)));
    if (args.bias.valid()) {
      a.push_back(KernelArg::buffer_arg(args.bias.buffer(), 0));
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(args.bias.offset())));
    } else {
      a.push_back(KernelArg::buffer_arg(*args.y.buffer, 0));
      a.push_back(KernelArg::scalar(std::uint64_t{0}));
    }
    if (args.z.valid()) {
      a.push_back(KernelArg::buffer_arg(*args.z.buffer, 0));
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(args.z.offset)));
    } else {
      a.push_back(KernelArg::buffer_arg(*args.y.buffer, 0));
      a.push_back(KernelArg::scalar(std::uint64_t{0}));
    }
    geometry(a, pb_);
    epilogue_args(a, pb_, args);
    a.push_back(KernelArg::scalar(std::int32_t{zero_rows_ ? 1 : 0}));
    stream.launch_args(conv_, Range(grid_x_, div_up(kp_n_, static_cast<std::size_t>(t_.kpn)), d.groups),
                       Range(1, 1, 1), a);
  }

 private:
  // Packs w into dst's panels at float offset wp_off and zeroes the zero row at zero_off.
  void enqueue_pack(Stream& stream, const TensorRef& w, const Buffer& dst, std::size_t wp_off,
                    std::size_t zero_off) const {
    constexpr std::size_t kZeroChunk = 4096;  // ZERO_CHUNK in conv_packed.cl
    std::vector<KernelArg> a;
    a.push_back(KernelArg::buffer_arg(*w.buffer, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(w.offset)));
    a.push_back(KernelArg::buffer_arg(dst, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(wp_off)));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(zero_off)));
    a.push_back(KernelArg::scalar(static_cast<std::int32_t>(zero_len_)));
    a.push_back(KernelArg::scalar(static_cast<std::int32_t>(pack_items_)));
    geometry(a, pb_);
    stream.launch_args(pack_, Range(pack_items_ + div_up(zero_len_, kZeroChunk)), Range(1), a);
  }

  static constexpr std::size_t kAlign = 64;
  static constexpr std::size_t kPackC = 64;  // PACK_C in conv_packed.cl
  ConvProblem pb_;
  PackedParams t_;
  bool win_ = false;        // the layer's filters read flipped and transposed in place (WIN=1)
  bool rowrun_ = false;     // a filter row's taps as one reduction (ROWRUN=1)
  bool zero_rows_ = false;  // WIN: a tap can fall in the padding, each work-item keeps a zero row
  Kernel pack_, conv_;
  std::size_t kp_n_ = 0, grid_x_ = 0, pack_items_ = 0, wp_floats_ = 0, zero_len_ = 0, ws_bytes_ = 0;
};

// ---- implicit GEMM (CPU, NHWC: filters read in place) -----------------------------------

struct InplaceParams {
  int mr, nr, vw;
  std::size_t mb, kbn;  // pixel blocks and filter blocks per work-item
};

constexpr std::size_t kInplaceFiltersL2Bytes = std::size_t{256} << 10;  // a work-item's filter rows in L2

InplaceParams inplace_params(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, taps = d.r * d.s;
  InplaceParams t{};
  // 16-wide: 3 x 6 blocks (18 accumulators + 6 pixel vectors + 1 filter vector; on
  // PoCL's AVX-512 code, blocks of 24 or more accumulators ran 20-30 % slower);
  // 8-wide: 3 x 3 (9 + 3 + 1 of 16 registers).
  const bool wide = pb.device.info().preferred_vector_width_float >= 16;
  t.vw = wide ? 16 : 8;
  t.mr = 3;
  t.nr = wide ? 6 : 3;
  const std::size_t units = std::max<std::size_t>(1, pb.device.info().compute_units);
  const std::size_t blocks = div_up(d.n * pb.p * pb.q, static_cast<std::size_t>(t.nr));
  const std::size_t kblocks = div_up(kg, static_cast<std::size_t>(t.mr));
  // A work-item's filter rows (kbn blocks) stay in L2 while its pixel blocks pass;
  // then as many pixel blocks per work-item as keep ~8 work-items per compute unit.
  const std::size_t row_bytes = taps * cg * sizeof(float) * t.mr;
  t.kbn = std::clamp<std::size_t>(kInplaceFiltersL2Bytes / std::max<std::size_t>(1, row_bytes), 1, kblocks);
  const std::size_t kitems = div_up(kblocks, t.kbn) * d.groups;
  const std::size_t want = 8 * units;
  std::size_t pitems = std::clamp<std::size_t>(div_up(want, kitems), 1, blocks);
  if (kitems < want && t.kbn > 1) {  // too few filter groups: split the filters finer first
    t.kbn = std::max<std::size_t>(1, div_up(kblocks * d.groups, want));
    pitems = std::clamp<std::size_t>(div_up(want, div_up(kblocks, t.kbn) * d.groups), 1, blocks);
  }
  t.mb = div_up(blocks, pitems);
  return t;
}

class InplaceIgemmAlgo final : public ConvAlgo {
 public:
  explicit InplaceIgemmAlgo(const ConvProblem& pb) : pb_(pb), t_(inplace_params(pb)) {
    const Conv2dDesc& d = pb.desc;
    BuildOptions opt;
    const std::size_t cg = d.c / d.groups;
    opt.define("MR", t_.mr).define("NR", t_.nr).define("VW", t_.vw).define("CTAIL", cg % t_.vw ? 1 : 0);
    conv_ = build_conv(pb, opt, "conv_inplace.cl").kernel("axle_conv_inplace_fwd");
    const std::size_t blocks = div_up(d.n * pb.p * pb.q, static_cast<std::size_t>(t_.nr));
    const std::size_t kblocks = div_up(d.k / d.groups, static_cast<std::size_t>(t_.mr));
    grid_ = {div_up(blocks, t_.mb), div_up(kblocks, t_.kbn), d.groups};
    // One zero row per work-item, in x's element type, where taps reach the padding.
    zero_rows_ = taps_reach_padding(pb);
    ws_bytes_ = kAlign + (zero_rows_ ? grid_[0] * grid_[1] * grid_[2] * round_up(cg, 16) : 0) * size_of(pb.types.x);
  }
  std::size_t workspace_bytes() const override { return ws_bytes_; }
  std::string params() const override {
    return "inplace MR=" + std::to_string(t_.mr) + " NR=" + std::to_string(t_.nr) + " VW=" + std::to_string(t_.vw) +
           " MB=" + std::to_string(t_.mb) + " KB=" + std::to_string(t_.kbn) + ", filters read in place";
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const std::size_t esz = size_of(pb_.types.x);
    const std::size_t zero_off = div_up(ws_off, kAlign) * (kAlign / esz);  // in x's elements
    std::vector<KernelArg> a;
    tensors(a, args);
    geometry(a, pb_);
    epilogue_args(a, pb_, args);
    a.push_back(KernelArg::buffer_arg(*ws, 0));
    a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(zero_off)));
    a.push_back(KernelArg::scalar(std::int32_t{zero_rows_ ? 1 : 0}));
    a.push_back(KernelArg::scalar(static_cast<std::int32_t>(t_.mb)));
    a.push_back(KernelArg::scalar(static_cast<std::int32_t>(t_.kbn)));
    stream.launch_args(conv_, Range(grid_[0], grid_[1], grid_[2]), Range(1, 1, 1), a);
  }

 private:
  static constexpr std::size_t kAlign = 64;
  ConvProblem pb_;
  InplaceParams t_;
  Kernel conv_;
  std::array<std::size_t, 3> grid_{};
  bool zero_rows_ = false;  // a tap can fall in the padding: each work-item keeps a zero row
  std::size_t ws_bytes_ = 0;
};

// ---- 1x1 through GEMM ---------------------------------------------------------------------

class Gemm1x1Algo final : public ConvAlgo {
 public:
  explicit Gemm1x1Algo(const ConvProblem& pb) : pb_(pb) {
    if (pb.fusion.residual) axpby_ = build_conv(pb, {}).kernel("axle_conv_axpby");
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override {
    const Conv2dDesc& d = pb_.desc;
    return std::to_string(d.groups) + " GEMM(s) of " +
           (d.layout == TensorLayout::NHWC
                ? std::to_string(d.n * d.h * d.w) + "x" + std::to_string(d.k / d.groups) + "x" +
                      std::to_string(d.c / d.groups)
                : std::to_string(d.n) + " x " + std::to_string(d.k / d.groups) + "x" + std::to_string(d.h * d.w) +
                      "x" + std::to_string(d.c / d.groups));
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    const Conv2dDesc& d = pb_.desc;
    float beta = args.beta;
    if (pb_.fusion.residual) {  // y = beta * y + z first; the GEMM then adds onto y
      const std::size_t total = d.y_elems();
      std::vector<KernelArg> a;
      a.push_back(KernelArg::buffer_arg(*args.y.buffer, 0));
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(args.y.offset)));
      a.push_back(KernelArg::buffer_arg(*args.z.buffer, 0));
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(args.z.offset)));
      a.push_back(KernelArg::scalar(beta));
      a.push_back(KernelArg::scalar(std::uint64_t{0}));
      a.push_back(KernelArg::scalar(static_cast<std::uint64_t>(total)));
      const std::size_t local = is_gpu(pb_.device) ? std::min<std::size_t>(256, axpby_.max_work_group_size()) : 0;
      if (local)
        stream.launch_args(axpby_, Range(round_up(total, local)), Range(local), a);
      else
        stream.launch_args(axpby_, Range(total), Range(), a);
      beta = 1.0f;
    }
    const blas::Activation act = pb_.fusion.activation == Activation::ReLU   ? blas::Activation::ReLU
                                 : pb_.fusion.activation == Activation::GELU ? blas::Activation::GELU
                                                                             : blas::Activation::None;
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, hw = d.h * d.w;
    with_types(pb_.types.x, pb_.types.y, [&](auto xt, auto yt) {
      using TX = decltype(xt);
      using TY = decltype(yt);
      const BufferView<TX> x = typed<TX>(args.x), w = typed<TX>(args.w);
      const BufferView<TY> y = typed<TY>(args.y);
      for (std::size_t g = 0; g < d.groups; ++g) {
        blas::Epilogue ep;
        ep.activation = act;
        if (pb_.fusion.bias) {
          ep.bias_mode = d.layout == TensorLayout::NHWC ? blas::BiasMode::PerCol : blas::BiasMode::PerRow;
          ep.bias = args.bias.sub(g * kg, kg);
        }
        if (d.layout == TensorLayout::NHWC) {
          // y[NHW, K] = x[NHW, C] w[K, C]^T, one column block per group.
          blas::gemm(stream, Layout::RowMajor, Op::N, Op::T, d.n * hw, kg, cg, args.alpha, x.sub(g * cg), d.c,
                     w.sub(g * kg * cg), cg, beta, y.sub(g * kg), d.k, ep);
        } else {
          // y[n][K, HW] = w[K, C] x[n][C, HW], batched over n.
          blas::gemm_strided_batched(stream, Layout::RowMajor, Op::N, Op::N, kg, hw, cg, args.alpha,
                                     w.sub(g * kg * cg), cg, 0, x.sub(g * cg * hw), hw, d.c * hw, beta,
                                     y.sub(g * kg * hw), hw, d.k * hw, d.n, ep);
        }
      }
    });
  }

 private:
  ConvProblem pb_;
  Kernel axpby_;
};

}  // namespace

bool reads_filters_transposed(Algorithm algo, const ConvProblem& fwd) {
  return algo == Algorithm::ImplicitGemm && fwd.w_transposed && use_packed(fwd) &&
         PackedIgemmAlgo::transposed_ok(fwd, packed_params(fwd));
}

std::string algo_unsupported_reason(Algorithm algo, const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (pb.direction == Direction::BackwardData && (algo == Algorithm::ImplicitGemm || algo == Algorithm::Winograd ||
                                                  algo == Algorithm::TensorCore || algo == Algorithm::CudaSimt))
    return bwd_data_via_forward_reason(algo, pb);
  if (algo == Algorithm::TapGemm) return tap_gemm_reason(pb);
  if (pb.direction == Direction::BackwardWeights && algo == Algorithm::ImplicitGemm) return igemm_weights_reason(pb);
  if (algo == Algorithm::Depthwise) return depthwise_unsupported_reason(pb);
  if (pb.direction != Direction::Forward && algo != Algorithm::Direct && algo != Algorithm::Auto &&
      algo != Algorithm::Gemm1x1)
    return std::string(to_string(algo)) + " has no " + to_string(pb.direction) + " kernels in this build";
  switch (algo) {
    case Algorithm::Auto: return "";
    case Algorithm::Direct: return "";
    case Algorithm::TapGemm: return "";
    case Algorithm::Depthwise: return "";
    case Algorithm::ImplicitGemm:
      if (d.groups > kMaxGroupsY) return "more than 65535 groups";
      if (use_packed(pb) && div_up(d.k / d.groups, std::size_t{8}) > kMaxGroupsY)
        return "more than 65535 filter panels per group";
      if (igemm_variant(pb) == IgemmVariant::Inplace && div_up(d.k / d.groups, std::size_t{3}) > kMaxGroupsY)
        return "more than 65535 filter blocks per group";
      return "";
    case Algorithm::Gemm1x1:
      if (d.r != 1 || d.s != 1)
        return "the filter is " + std::to_string(d.r) + "x" + std::to_string(d.s) + ", not 1x1";
      if ((d.stride_h != 1 || d.stride_w != 1) && pb.direction != Direction::BackwardData)
        return "stride " + std::to_string(d.stride_h) + "x" + std::to_string(d.stride_w) + " (it needs stride 1)";
      if (d.pad_top || d.pad_bottom || d.pad_left || d.pad_right) return "padding (it needs none)";
      return "";
    case Algorithm::Winograd: return winograd_unsupported_reason(pb);
    case Algorithm::TensorCore: return tensor_core_unsupported_reason(pb);
    case Algorithm::CudaSimt: return cuda_simt_unsupported_reason(pb);
  }
  return "unknown algorithm";
}

std::unique_ptr<ConvAlgo> make_algo(Algorithm algo, const ConvProblem& pb) {
  switch (algo) {
    case Algorithm::Direct:
      if (pb.direction != Direction::Forward) return make_direct_backward(pb);
      return std::make_unique<DirectAlgo>(pb);
    case Algorithm::ImplicitGemm:
      if (pb.direction == Direction::BackwardData) return make_bwd_data_via_forward(pb, algo);
      if (pb.direction == Direction::BackwardWeights) return make_igemm_weights(pb);
      switch (igemm_variant(pb)) {
        case IgemmVariant::Packed: return std::make_unique<PackedIgemmAlgo>(pb);
        case IgemmVariant::Inplace: return std::make_unique<InplaceIgemmAlgo>(pb);
        default: return std::make_unique<ImplicitGemmAlgo>(pb);
      }
    case Algorithm::Gemm1x1:
      if (pb.direction != Direction::Forward) return make_gemm1x1_backward(pb);
      return std::make_unique<Gemm1x1Algo>(pb);
    case Algorithm::Winograd:
      if (pb.direction == Direction::BackwardData) return make_bwd_data_via_forward(pb, algo);
      return make_winograd(pb);
    case Algorithm::TensorCore:
      if (pb.direction == Direction::BackwardData) return make_bwd_data_via_forward(pb, algo);
      return make_tensor_core_algo(pb);
    case Algorithm::CudaSimt:
      if (pb.direction == Direction::BackwardData) return make_bwd_data_via_forward(pb, algo);
      return make_cuda_simt_algo(pb);
    case Algorithm::TapGemm: return make_tap_gemm(pb);
    case Algorithm::Depthwise: return make_depthwise(pb);
    case Algorithm::Auto: break;
  }
  throw InvalidArgument("conv2d: no algorithm object for 'auto'");
}

}  // namespace axle::dnn::detail
