// The Depthwise algorithm (kernels in kernels/src/cl/conv_dw.cl), every direction:
//  * forward: NHWC vectorised over channels (VW adjacent channels of one work-item, QB
//    output pixels in registers), NCHW vectorised along the output row; the filter
//    shape, strides and dilations are compile-time constants of the plan's kernel;
//  * backward data (stride 1, channel multiplier 1): the forward kernel over dy with the
//    filters flipped (read flipped in the kernel) and the complementary padding;
//  * backward weights (and db): partial sums per fixed slice of output rows into the
//    workspace, then a reduction that adds the slices in order (deterministic).
// Work is split into about 16 work-items per compute unit (compute units and the
// preferred float vector width come from the device), each walking whole rows.
#include <algorithm>

#include "conv_depthwise.hpp"

namespace axle::dnn::detail {
namespace {

constexpr std::size_t kMaxTaps = 64;
constexpr std::size_t kMaxGridY = 65535;

int act_code(Activation a) { return a == Activation::None ? 0 : a == Activation::ReLU ? 1 : 2; }

// The launch shape and vector width of one depthwise kernel: `items` work-items along
// dimension 0 (each `blocks` NHWC channel blocks), `groups_y` along dimension 1
// (each `rows` of the N * P output rows).
struct DwParams {
  std::size_t vw = 1, qb = 1, rows = 1, blocks = 1, items = 1, groups_y = 1;
};

std::size_t preferred_width(const Device& dev) {
  const std::size_t pref = std::max(1u, dev.info().preferred_vector_width_float);
  std::size_t vw = 1;
  while (vw * 2 <= std::min<std::size_t>(pref, 16)) vw *= 2;
  return vw;
}

// About 16 work-items per compute unit: `pieces` independent ones along dimension 0
// (NHWC channel blocks or NCHW channels, `blocks` of them per work-item), the np output
// rows split between them.
void split(DwParams& t, const Device& dev, std::size_t pieces, std::size_t np, std::size_t blocks = 1) {
  const std::size_t target = 16 * std::max<std::size_t>(1, dev.info().compute_units);
  t.blocks = blocks;
  t.items = div_up(pieces, blocks);
  std::size_t rows = std::clamp<std::size_t>(t.items * np / target, 1, np);
  rows = std::max(rows, div_up(np, kMaxGridY));
  t.groups_y = div_up(np, rows);
  t.rows = div_up(np, t.groups_y);  // spread evenly
  t.groups_y = div_up(np, t.rows);
}

DwParams dw_params(const ConvProblem& pb, const Conv2dDesc& d, std::size_t p, std::size_t q, bool forward) {
  DwParams t;
  const std::size_t mult = d.k / d.c, taps = d.r * d.s;
  std::size_t vw = preferred_width(pb.device);
  if (d.layout == TensorLayout::NHWC) {
    while (vw > 1 && d.c % vw != 0) vw /= 2;
    // Chunks of QB pixels cover the output columns whose taps lie inside the row (as
    // dw_interior in conv_dw.cl), evenly; at most 8 accumulators beside 3x3 taps.
    const std::size_t qmax = taps <= 9 ? 8 : 4;
    const long lo = long(div_up(d.pad_left, d.stride_w));
    const long num = long(d.w) - 1 - long((d.s - 1) * d.dilation_w) + long(d.pad_left);
    const long hi = num < 0 ? -1 : std::min(num / long(d.stride_w), long(q) - 1);
    const std::size_t inner = hi >= lo ? std::size_t(hi - lo + 1) : 0;
    t.qb = inner == 0 ? 1 : div_up(inner, div_up(inner, qmax));
    t.vw = vw;
    // Forward: up to 8 channel blocks per work-item (adjacent channels of one pixel read
    // together), as many as keep each work-item's rows long enough (at least 64 output
    // pixels) to pay for gathering its filters once.
    std::size_t blocks = 1;
    const std::size_t pieces = d.c / vw * mult, np = d.n * p;
    const std::size_t target = 16 * std::max<std::size_t>(1, pb.device.info().compute_units);
    if (forward)
      while (blocks * 2 <= std::min<std::size_t>(8, pieces) &&
             div_up(pieces, blocks * 2) * np / target * q >= 64)
        blocks *= 2;
    split(t, pb.device, pieces, np, blocks);
  } else {
    while (vw > 1 && vw / 2 >= q) vw /= 2;
    t.vw = vw;
    split(t, pb.device, d.k, d.n * p);
  }
  return t;
}

BuildOptions dw_options(const Conv2dDesc& d, const DwParams& t) {
  BuildOptions opt;
  opt.define("R", d.r).define("S", d.s).define("SH", d.stride_h).define("SW", d.stride_w);
  opt.define("DH", d.dilation_h).define("DW", d.dilation_w).define("VW", t.vw).define("QB", t.qb);
  opt.define("MULT", d.k / d.c);
  return opt;
}

std::string describe_params(const Conv2dDesc& d, const DwParams& t) {
  return std::string(d.layout == TensorLayout::NHWC ? "NHWC, " : "NCHW, ") + std::to_string(t.vw) +
         (d.layout == TensorLayout::NHWC ? " channels x " + std::to_string(t.qb) + " pixels"
                                         : " pixels of a row") +
         " per step, " + std::to_string(t.rows) + " rows" +
         (t.blocks > 1 ? " x " + std::to_string(t.blocks) + " channel blocks" : std::string()) + " per work-item, " +
         std::to_string(t.items * t.groups_y) + " work-items";
}

int type_code(DataType t) { return t == DataType::F32 ? 0 : t == DataType::F16 ? 1 : 2; }

// The forward kernel for `pb` (or for the forward problem of a backward-data plan: the
// filters of type `wtype`, flipped when `flip`).
class DepthwiseForward {
 public:
  DepthwiseForward(const ConvProblem& pb, DataType wtype, bool flip)
      : pb_(pb), t_(dw_params(pb, pb.desc, pb.p, pb.q, true)) {
    BuildOptions opt = dw_options(pb.desc, t_);
    opt.define("CB", t_.blocks);
    opt.define("W_T", type_code(wtype)).define("FLIP", flip ? 1 : 0);
    kernel_ = build_conv_program(pb, "conv_dw.cl", opt).kernel("axle_dw_fwd");
  }
  std::string params() const { return describe_params(pb_.desc, t_); }
  // x, w, y, bias and z as (buffer, element offset).
  void run(Stream& stream, const Buffer& x, std::size_t x_off, const Buffer& w, std::size_t w_off, const Buffer& y,
           std::size_t y_off, const Buffer* bias, std::size_t bias_off, const Buffer* z, std::size_t z_off,
           float alpha, float beta) const {
    const Conv2dDesc& d = pb_.desc;
    std::vector<KernelArg> a{KernelArg::buffer_arg(x, 0),           u64_arg(x_off),
                             KernelArg::buffer_arg(w, 0),           u64_arg(w_off),
                             KernelArg::buffer_arg(y, 0),           u64_arg(y_off),
                             KernelArg::buffer_arg(bias ? *bias : y, 0), u64_arg(bias ? bias_off : 0),
                             KernelArg::buffer_arg(z ? *z : y, 0),  u64_arg(z ? z_off : 0)};
    for (std::size_t v : {d.n, d.c, d.h, d.w, pb_.p, pb_.q, d.pad_top, d.pad_left, t_.rows}) a.push_back(i32_arg(v));
    a.push_back(KernelArg::scalar(alpha));
    a.push_back(KernelArg::scalar(beta));
    a.push_back(i32_arg(pb_.fusion.bias ? 1 : 0));
    a.push_back(i32_arg(pb_.fusion.residual ? 1 : 0));
    a.push_back(i32_arg(static_cast<std::size_t>(act_code(pb_.fusion.activation))));
    stream.launch_args(kernel_, Range(t_.items, t_.groups_y), Range(1, 1), a);
  }

 private:
  ConvProblem pb_;
  DwParams t_;
  Kernel kernel_;
};

class DepthwiseForwardAlgo final : public ConvAlgo {
 public:
  explicit DepthwiseForwardAlgo(const ConvProblem& pb) : fwd_(pb, pb.types.w, false) {}
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override { return fwd_.params(); }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    fwd_.run(stream, *args.x.buffer, args.x.offset, *args.w.buffer, args.w.offset, *args.y.buffer, args.y.offset,
             args.bias.valid() ? &args.bias.buffer() : nullptr, args.bias.valid() ? args.bias.offset() : 0,
             args.z.valid() ? args.z.buffer : nullptr, args.z.valid() ? args.z.offset : 0, args.alpha, args.beta);
  }

 private:
  DepthwiseForward fwd_;
};

// dx = conv(dy, flipped w) at stride 1 with padding (dilated extent - 1 - pad).
ConvProblem forward_of_dw_bwd_data(const ConvProblem& pb) {
  ConvProblem f = pb;
  const Conv2dDesc& d = pb.desc;
  const std::size_t eh = (d.r - 1) * d.dilation_h, ew = (d.s - 1) * d.dilation_w;
  f.direction = Direction::Forward;
  f.fusion = {};
  f.desc.h = pb.p, f.desc.w = pb.q;
  f.desc.pad_top = eh - d.pad_top, f.desc.pad_bottom = eh - d.pad_bottom;
  f.desc.pad_left = ew - d.pad_left, f.desc.pad_right = ew - d.pad_right;
  f.types = Conv2dTypes{pb.types.y, pb.types.y, pb.types.x};
  f.p = f.desc.out_h();
  f.q = f.desc.out_w();
  return f;
}

class DepthwiseBwdDataAlgo final : public ConvAlgo {
 public:
  explicit DepthwiseBwdDataAlgo(const ConvProblem& pb) : fwd_(forward_of_dw_bwd_data(pb), pb.types.w, true) {}
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override { return "the forward kernel over dy with flipped filters: " + fwd_.params(); }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    fwd_.run(stream, *args.y.buffer, args.y.offset, *args.w.buffer, args.w.offset, *args.x.buffer, args.x.offset,
             nullptr, 0, nullptr, 0, args.alpha, args.beta);
  }

 private:
  DepthwiseForward fwd_;
};

class DepthwiseBwdWeightsAlgo final : public ConvAlgo {
 public:
  explicit DepthwiseBwdWeightsAlgo(const ConvProblem& pb) : pb_(pb), t_(dw_params(pb, pb.desc, pb.p, pb.q, false)) {
    Program prog = build_conv_program(pb, "conv_dw.cl", dw_options(pb.desc, t_));
    partial_ = prog.kernel("axle_dw_bwd_w");
    reduce_ = prog.kernel("axle_dw_reduce");
  }
  std::size_t workspace_bytes() const override { return t_.groups_y == 1 ? 0 : part_floats() * sizeof(float); }
  std::string params() const override {
    return describe_params(pb_.desc, t_) + (t_.groups_y == 1 ? std::string(", one pass (no partial sums)")
                                                              : ", " + std::to_string(t_.groups_y) +
                                                                    " partial sums added in order");
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const Conv2dDesc& d = pb_.desc;
    const bool bias = pb_.fusion.bias, one = t_.groups_y == 1;
    // One slice: the partial kernel writes dw (and db) and needs no workspace.
    const Buffer& part = one ? *args.w.buffer : *ws;
    const std::size_t part_off = one ? 0 : ws_off / sizeof(float);
    const Buffer& db = bias ? args.bias.buffer() : part;
    const std::size_t db_off = bias ? args.bias.offset() : 0;
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64_arg(args.x.offset),
                               KernelArg::buffer_arg(*args.y.buffer, 0), u64_arg(args.y.offset),
                               KernelArg::buffer_arg(part, 0),           u64_arg(part_off),
                               KernelArg::buffer_arg(*args.w.buffer, 0), u64_arg(args.w.offset),
                               KernelArg::buffer_arg(db, 0),             u64_arg(db_off)};
      for (std::size_t v : {d.n, d.c, d.h, d.w, pb_.p, pb_.q, d.pad_top, d.pad_left, t_.rows, t_.groups_y})
        a.push_back(i32_arg(v));
      a.push_back(i32_arg(bias ? 1 : 0));
      a.push_back(KernelArg::scalar(args.alpha));
      a.push_back(KernelArg::scalar(args.beta));
      stream.launch_args(partial_, Range(t_.items, t_.groups_y), Range(1, 1), a);
    }
    if (one) return;
    std::vector<KernelArg> a{KernelArg::buffer_arg(*ws, 0),
                             u64_arg(part_off),
                             KernelArg::buffer_arg(*args.w.buffer, 0),
                             u64_arg(args.w.offset),
                             KernelArg::buffer_arg(db, 0),
                             u64_arg(db_off),
                             i32_arg(d.k),
                             i32_arg(t_.groups_y),
                             i32_arg(bias ? 1 : 0),
                             KernelArg::scalar(args.alpha),
                             KernelArg::scalar(args.beta)};
    launch_1d(stream, reduce_, (d.r * d.s + (bias ? 1 : 0)) * d.k, a);
  }

 private:
  std::size_t part_floats() const { return round_up(t_.groups_y * (pb_.desc.r * pb_.desc.s + 1) * pb_.desc.k, 16); }
  ConvProblem pb_;
  DwParams t_;
  Kernel partial_, reduce_;
};

}  // namespace

std::string depthwise_unsupported_reason(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (d.groups != d.c)
    return "depthwise needs groups == C (groups = " + std::to_string(d.groups) + ", C = " + std::to_string(d.c) + ")";
  if (d.r * d.s > kMaxTaps)
    return "the filter has " + std::to_string(d.r * d.s) + " taps (depthwise serves up to " +
           std::to_string(kMaxTaps) + ")";
  if (pb.direction == Direction::BackwardData) {
    if (d.k != d.c) return "depthwise serves bwd_data with a channel multiplier of 1 (K = " + std::to_string(d.k) +
                           ", C = " + std::to_string(d.c) + ")";
    if (d.stride_h != 1 || d.stride_w != 1)
      return "depthwise serves bwd_data at stride 1 (stride " + std::to_string(d.stride_h) + "x" +
             std::to_string(d.stride_w) + "; direct serves it)";
    const std::size_t eh = (d.r - 1) * d.dilation_h, ew = (d.s - 1) * d.dilation_w;
    if (d.pad_top > eh || d.pad_bottom > eh || d.pad_left > ew || d.pad_right > ew)
      return "depthwise serves bwd_data with padding within the dilated filter";
  }
  return "";
}

std::unique_ptr<ConvAlgo> make_depthwise(const ConvProblem& pb) {
  switch (pb.direction) {
    case Direction::Forward: return std::make_unique<DepthwiseForwardAlgo>(pb);
    case Direction::BackwardData: return std::make_unique<DepthwiseBwdDataAlgo>(pb);
    case Direction::BackwardWeights: return std::make_unique<DepthwiseBwdWeightsAlgo>(pb);
  }
  throw InvalidArgument("conv2d: no depthwise algorithm for this direction");
}

}  // namespace axle::dnn::detail
