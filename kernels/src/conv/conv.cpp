// axle::dnn public entry points: descriptor validation, plans (selection, build, run
// checks) and the one-shot plan cache.
#include <climits>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "axle/dnn.hpp"
#include "conv_plan.hpp"
#include "conv_backward.hpp"
#include "conv_tuning.hpp"

namespace axle::dnn {

const char* to_string(DataType t) noexcept {
  switch (t) {
    case DataType::F32: return "f32";
    case DataType::F16: return "f16";
    case DataType::BF16: return "bf16";
  }
  return "?";
}
std::size_t size_of(DataType t) noexcept { return t == DataType::F32 ? 4 : 2; }
const char* to_string(TensorLayout l) noexcept { return l == TensorLayout::NCHW ? "NCHW" : "NHWC"; }
const char* to_string(Direction d) noexcept {
  switch (d) {
    case Direction::Forward: return "fwd";
    case Direction::BackwardData: return "bwd_data";
    case Direction::BackwardWeights: return "bwd_weights";
  }
  return "?";
}
const char* to_string(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::Auto: return "auto";
    case Algorithm::Direct: return "direct";
    case Algorithm::ImplicitGemm: return "implicit_gemm";
    case Algorithm::Gemm1x1: return "gemm_1x1";
    case Algorithm::Winograd: return "winograd";
    case Algorithm::TensorCore: return "tensor_core";
    case Algorithm::CudaSimt: return "cuda_simt";
    case Algorithm::TapGemm: return "tap_gemm";
    case Algorithm::Depthwise: return "depthwise";
  }
  return "?";
}

namespace {

// Output extent along one axis (0 when none): floor((in + pads - span) / stride) + 1.
std::size_t out_extent(std::size_t in, std::size_t pad_lo, std::size_t pad_hi, std::size_t filter,
                       std::size_t dilation, std::size_t stride) {
  if (in == 0 || filter == 0 || dilation == 0 || stride == 0) return 0;
  const std::size_t span = (filter - 1) * dilation + 1;
  const std::size_t padded = in + pad_lo + pad_hi;
  if (padded < span) return 0;
  return (padded - span) / stride + 1;
}

constexpr std::size_t kMaxIndex = static_cast<std::size_t>(INT_MAX);

}  // namespace

std::size_t Conv2dDesc::out_h() const noexcept { return out_extent(h, pad_top, pad_bottom, r, dilation_h, stride_h); }
std::size_t Conv2dDesc::out_w() const noexcept { return out_extent(w, pad_left, pad_right, s, dilation_w, stride_w); }
double Conv2dDesc::flops() const noexcept {
  return 2.0 * static_cast<double>(n) * k * out_h() * out_w() * (groups ? c / groups : 0) * r * s;
}

std::string Conv2dDesc::str() const {
  std::ostringstream o;
  o << "N" << n << " C" << c << " H" << h << " W" << w << " K" << k << " " << r << "x" << s << " s" << stride_h
    << "x" << stride_w << " p" << pad_top << "," << pad_bottom << "," << pad_left << "," << pad_right << " d"
    << dilation_h << "x" << dilation_w << " g" << groups << " " << to_string(layout);
  return o.str();
}

void validate(const Conv2dDesc& d) {
  auto field = [&](const char* name, std::size_t v) {
    if (v == 0) throw InvalidArgument(std::string("conv2d: ") + name + " = 0 in " + d.str() + " (must be at least 1)");
    if (v > kMaxIndex)
      throw InvalidArgument(std::string("conv2d: ") + name + " = " + std::to_string(v) + " exceeds 2^31 - 1");
  };
  field("n", d.n);
  field("c", d.c);
  field("h", d.h);
  field("w", d.w);
  field("k", d.k);
  field("r", d.r);
  field("s", d.s);
  field("stride_h", d.stride_h);
  field("stride_w", d.stride_w);
  field("dilation_h", d.dilation_h);
  field("dilation_w", d.dilation_w);
  field("groups", d.groups);
  for (auto [name, v] : {std::pair{"pad_top", d.pad_top}, std::pair{"pad_bottom", d.pad_bottom},
                         std::pair{"pad_left", d.pad_left}, std::pair{"pad_right", d.pad_right}})
    if (v > kMaxIndex / 4)
      throw InvalidArgument(std::string("conv2d: ") + name + " = " + std::to_string(v) + " exceeds 2^29 - 1");
  if (d.c % d.groups != 0)
    throw InvalidArgument("conv2d: groups = " + std::to_string(d.groups) + " does not divide C = " +
                          std::to_string(d.c));
  if (d.k % d.groups != 0)
    throw InvalidArgument("conv2d: groups = " + std::to_string(d.groups) + " does not divide K = " +
                          std::to_string(d.k) + " (depthwise layers have K a multiple of C)");
  auto axis = [&](const char* what, std::size_t in, std::size_t lo, std::size_t hi, std::size_t f, std::size_t dil,
                  const char* in_name, const char* lo_name, const char* hi_name) {
    const double span = (static_cast<double>(f) - 1) * static_cast<double>(dil) + 1;
    if (span > static_cast<double>(in + lo + hi))
      throw InvalidArgument("conv2d: no output " + std::string(what) + ": the filter (" + std::to_string(f) +
                            " taps, dilation " + std::to_string(dil) + ") spans " +
                            std::to_string(static_cast<std::size_t>(span)) + " but the padded input has " +
                            std::to_string(in + lo + hi) + " (" + in_name + " = " + std::to_string(in) + ", " +
                            lo_name + " = " + std::to_string(lo) + ", " + hi_name + " = " + std::to_string(hi) + ")");
  };
  axis("rows", d.h, d.pad_top, d.pad_bottom, d.r, d.dilation_h, "H", "pad_top", "pad_bottom");
  axis("columns", d.w, d.pad_left, d.pad_right, d.s, d.dilation_w, "W", "pad_left", "pad_right");
  auto count = [&](const char* what, std::initializer_list<std::size_t> dims) {
    double prod = 1;
    for (std::size_t v : dims) prod *= static_cast<double>(v);
    if (prod > static_cast<double>(kMaxIndex))
      throw InvalidArgument(std::string("conv2d: the ") + what + " tensor of " + d.str() + " has " +
                            std::to_string(static_cast<unsigned long long>(prod)) +
                            " elements, more than 2^31 - 1 (split the batch)");
  };
  count("input", {d.n, d.c, d.h, d.w});
  count("filter", {d.k, d.c / d.groups, d.r, d.s});
  count("output", {d.n, d.k, d.out_h(), d.out_w()});
}

Conv2dShape conv2d_output_shape(const Conv2dDesc& desc) {
  validate(desc);
  return Conv2dShape{desc.n, desc.k, desc.out_h(), desc.out_w()};
}

namespace detail {
namespace {

// Whether the tap-wise GEMMs pay: a long reduction (N P Q) over more than a sliver of
// channels (depthwise layers stay direct).
bool d_pixels_enough(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  return d.c / d.groups >= 4 && d.k / d.groups >= 4 && d.n * pb.p * pb.q >= 64 && tap_gemm_reason(pb).empty();
}

// Whether the implicit GEMM of the weight gradient pays: a CPU device (its work-items
// are single register blocks) and more than a sliver of channels per group.
bool igemm_weights_pays(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  return pb.device.info().type == DeviceType::CPU && d.c / d.groups >= 4 && d.k / d.groups >= 4 &&
         igemm_weights_reason(pb).empty();
}

// The reduction length of the backward-data pass (K / groups * R * S).
std::size_t bwd_data_reduction(const Conv2dDesc& d) { return d.k / d.groups * d.r * d.s; }

std::string problem_reason(const ConvProblem& pb) {
  if (pb.types.x != pb.types.w)
    return std::string("x and w must share one type (x is ") + to_string(pb.types.x) + ", w " + to_string(pb.types.w) +
           ")";
  return "";
}

constexpr std::size_t kFewPixels1x1 = 4096;

// A 1x1 layer (NHWC, on a CPU) whose GEMM has at most kFewPixels1x1 rows (m).
bool few_pixels_1x1_on_cpu(const ConvProblem& pb, std::size_t m) {
  return pb.device.info().type == DeviceType::CPU && pb.desc.layout == TensorLayout::NHWC && m <= kFewPixels1x1;
}

// The selector: heuristics per device type and shape (tuning entries extend it).
Algorithm select(const ConvProblem& pb, std::string& why) {
  const Conv2dDesc& d = pb.desc;
  const std::size_t cg = d.c / d.groups, red = cg * d.r * d.s;
  if (const auto tuned = tuned_algorithm(pb)) {
    why = tuned->origin;
    return tuned->algorithm;
  }
  if (d.groups > 1 && algo_unsupported_reason(Algorithm::Depthwise, pb).empty()) {
    why = "one input channel per group (depthwise): the depthwise kernels";
    return Algorithm::Depthwise;
  }
  if (algo_unsupported_reason(Algorithm::Gemm1x1, pb).empty()) {
    // On CPUs a 1x1 layer over few pixels runs faster as the packed implicit GEMM (x
    // read in place, one launch) than as a GEMM that packs both operands; with many
    // pixels the GEMM's blocking wins (ResNet-50's 1x1 layers on PoCL AVX-512: batch 1,
    // 784-3136 pixels, 1.1-1.4x; batch 8 the GEMM 1.05-1.4x).
    // Filters packed once by the caller, the implicit GEMM wins over many pixels too
    // (batch 8: 1.05-1.25x), the GEMM packing both operands on every run.
    const std::size_t m = d.n * pb.p * pb.q;
    const bool packed_once = pb.options.packed_weights && pb.device.info().type == DeviceType::CPU &&
                             d.layout == TensorLayout::NHWC;
    if ((packed_once || few_pixels_1x1_on_cpu(pb, m)) &&
        algo_unsupported_reason(Algorithm::ImplicitGemm, pb).empty()) {
      why = packed_once ? "1x1 filter, filters packed once, on a CPU: the implicit GEMM, x read in place"
                        : "1x1 filter over " + std::to_string(m) + " output pixels (at most " +
                              std::to_string(kFewPixels1x1) + ") on a CPU: the implicit GEMM, x read in place";
      return Algorithm::ImplicitGemm;
    }
    why = "1x1 filter at stride 1 without padding: a plain GEMM";
    return Algorithm::Gemm1x1;
  }
  if (cg == 1 || red < 32) {
    why = cg == 1 && d.groups > 1 ? "one input channel per group (depthwise): direct"
          : cg == 1                ? "one input channel: direct"
                                   : "short reduction (C/groups*R*S = " + std::to_string(red) + "): direct";
    return Algorithm::Direct;
  }
  if (algo_unsupported_reason(Algorithm::TensorCore, pb).empty()) {
    why = std::string(pb.types.x == DataType::F32 ? "f32 as TF32 (allowed)" : to_string(pb.types.x)) +
          " NHWC, C/groups = " + std::to_string(cg) + ", reduction of " + std::to_string(red) +
          ": tensor-core implicit GEMM";
    return Algorithm::TensorCore;
  }
  if (pb.types.x == DataType::F32 && algo_unsupported_reason(Algorithm::CudaSimt, pb).empty()) {
    why = "f32 on a CUDA device, reduction of " + std::to_string(red) + ": SIMT implicit GEMM" +
          (pb.options.allow_tf32 ? " (TF32 is allowed but tensor_core cannot serve: " +
                                       algo_unsupported_reason(Algorithm::TensorCore, pb) + ")"
                                 : "");
    return Algorithm::CudaSimt;
  }
  if (algo_unsupported_reason(Algorithm::ImplicitGemm, pb).empty()) {
    why = "reduction of " + std::to_string(red) + " over " + std::to_string(d.n * pb.p * pb.q) +
          " output pixels: implicit GEMM";
    return Algorithm::ImplicitGemm;
  }
  why = "the only algorithm left: direct";
  return Algorithm::Direct;
}

void check_tensor(const char* name, const TensorRef& t, DataType want, std::size_t elems, const Device& dev,
                  const Conv2dDesc& d) {
  if (!t.valid()) throw InvalidArgument(std::string("conv2d: tensor ") + name + " is an empty view");
  if (t.buffer->device() != dev)
    throw InvalidArgument(std::string("conv2d: tensor ") + name + " lives on " + t.buffer->device().id() +
                          " but the stream is on " + dev.id());
  if (t.type != want)
    throw InvalidArgument(std::string("conv2d: tensor ") + name + " is " + to_string(t.type) + " but the plan has " +
                          to_string(want));
  if (t.size < elems)
    throw OutOfRange(std::string("conv2d: tensor ") + name + " of " + d.str() + " needs " + std::to_string(elems) +
                     " elements but its view holds " + std::to_string(t.size));
}

// The stream a plan's work goes to: valid and on the plan's device. Returns its device.
const Device& check_stream(const Conv2dPlanImpl& p, const Stream& stream) {
  if (!stream.valid()) throw InvalidArgument("conv2d: the stream is empty (moved-from)");
  const Device& dev = stream.device();
  if (dev != p.pb.device)
    throw InvalidArgument("conv2d: the plan was made for " + p.pb.device.id() + " but the stream is on " + dev.id());
  return dev;
}

// A view of packed filters (Conv2dArgs::packed_w, or pack_weights' destination).
void check_packed(const char* name, const BufferView<unsigned char>& v, const Conv2dPlanImpl& p, const Device& dev) {
  const std::size_t bytes = p.algo->packed_weights_bytes();
  if (bytes == 0)
    throw Unsupported(std::string("conv2d: algorithm ") + to_string(p.algorithm) + " reads the filters as given (" +
                      p.pb.desc.str() + ", " + to_string(p.pb.direction) +
                      "): it has no packed form (packed_weights_bytes() is 0)");
  if (v.device() != dev)
    throw InvalidArgument(std::string("conv2d: ") + name + " lives on " + v.device().id() + " but the stream is on " +
                          dev.id());
  if (v.offset_bytes() % 64 != 0)
    throw InvalidArgument(std::string("conv2d: ") + name + " starts at byte " + std::to_string(v.offset_bytes()) +
                          ", not a multiple of 64");
  if (v.size() < bytes)
    throw OutOfRange(std::string("conv2d: the packed filters need ") + std::to_string(bytes) + " bytes but " + name +
                     " holds " + std::to_string(v.size()));
}

}  // namespace
}  // namespace detail

Conv2dPlan::Conv2dPlan(const Device& device, const Conv2dDesc& desc, const Conv2dTypes& types, Direction direction,
                       const Conv2dFusion& fusion, const Conv2dOptions& options) {
  if (!device.valid()) throw InvalidArgument("conv2d: the device handle is empty");
  validate(desc);
  auto impl = std::make_shared<detail::Conv2dPlanImpl>();
  detail::ConvProblem& pb = impl->pb;
  pb.device = device;
  pb.desc = desc;
  pb.types = types;
  pb.direction = direction;
  pb.fusion = fusion;
  pb.options = options;
  pb.p = desc.out_h();
  pb.q = desc.out_w();
  if (const std::string why = detail::problem_reason(pb); !why.empty()) throw InvalidArgument("conv2d: " + why);
  if (direction != Direction::Forward && (fusion.residual || fusion.activation != Activation::None))
    throw InvalidArgument(std::string("conv2d: a ") + to_string(direction) + " plan fuses no residual or activation");
  if (direction != Direction::Forward && options.packed_weights)
    throw InvalidArgument(std::string("conv2d: Conv2dOptions::packed_weights is for forward plans; a ") +
                          to_string(direction) + " plan reads the filters as given");
  if (direction == Direction::BackwardData && fusion.bias)
    throw InvalidArgument("conv2d: a bwd_data plan has no bias (the bias gradient comes with bwd_weights)");
  if (options.algorithm != Algorithm::Auto) {
    const std::string why = detail::algo_unsupported_reason(options.algorithm, pb);
    if (!why.empty())
      throw Unsupported(std::string("conv2d: algorithm ") + to_string(options.algorithm) + " cannot serve " +
                        desc.str() + " (" + to_string(direction) + ", " + to_string(types.x) + " -> " +
                        to_string(types.y) + ") on " + device.id() + ": " + why);
    impl->algorithm = options.algorithm;
    impl->why = "forced by the caller";
  } else if (direction != Direction::Forward) {
    if (desc.groups > 1 && detail::algo_unsupported_reason(Algorithm::Depthwise, pb).empty()) {
      impl->algorithm = Algorithm::Depthwise;
      impl->why = "one input channel per group (depthwise): the depthwise kernels";
    } else if (direction == Direction::BackwardWeights && detail::igemm_weights_pays(pb) && desc.r * desc.s == 1 &&
               detail::algo_unsupported_reason(Algorithm::Gemm1x1, pb).empty()) {
      // 1x1 weight gradients on CPUs: the implicit GEMM beat the GEMM on 5 of ResNet-50's
      // 6 layer and batch pairs (PoCL AVX-512), by up to 1.6x.
      impl->algorithm = Algorithm::ImplicitGemm;
      impl->why = "1x1 filter, CPU device: the register-blocked implicit GEMM over x and dy, split rows summed in order";
    } else if (direction == Direction::BackwardData && desc.r * desc.s == 1 && desc.stride_h == 1 &&
               desc.stride_w == 1 && pb.device.info().type == DeviceType::CPU &&
               desc.layout == TensorLayout::NHWC &&
               detail::algo_unsupported_reason(Algorithm::ImplicitGemm, pb).empty() &&
               detail::bwd_data_reads_filters_in_place(pb)) {
      // As in the forward pass with filters packed once: the implicit GEMM over dy reads w
      // in place (nothing packed per run) where the GEMM packs both operands, at any pixel
      // count (ResNet-50's 1x1 layers at batch 8, PoCL AVX-512: 1.0-1.49x the GEMM).
      impl->algorithm = Algorithm::ImplicitGemm;
      impl->why = "1x1 filter on a CPU, its filters read in place: the forward implicit GEMM over dy";
    } else if (detail::algo_unsupported_reason(Algorithm::Gemm1x1, pb).empty()) {
      impl->algorithm = Algorithm::Gemm1x1;
      impl->why = desc.stride_h == 1 && desc.stride_w == 1
                      ? "1x1 filter at stride 1 without padding: GEMMs"
                      : "strided 1x1 filter without padding: a GEMM over dy's pixels, spread into dx";
    } else if (direction == Direction::BackwardWeights && detail::igemm_weights_pays(pb)) {
      impl->algorithm = Algorithm::ImplicitGemm;
      impl->why = "CPU device: the register-blocked implicit GEMM over x and dy, split rows summed in order";
    } else if (direction == Direction::BackwardWeights && detail::d_pixels_enough(pb)) {
      impl->algorithm = Algorithm::TapGemm;
      impl->why = "a gather and a GEMM per filter tap";
    } else if (direction == Direction::BackwardData && detail::bwd_data_reduction(desc) >= 32 &&
               detail::algo_unsupported_reason(Algorithm::TensorCore, pb).empty()) {
      impl->algorithm = Algorithm::TensorCore;
      impl->why = std::string("stride 1, ") + to_string(types.x) +
                  " NHWC: the forward tensor-core implicit GEMM over dy with flipped filters";
    } else if (direction == Direction::BackwardData && detail::bwd_data_reduction(desc) >= 32 &&
               types.x == DataType::F32 && detail::algo_unsupported_reason(Algorithm::CudaSimt, pb).empty()) {
      impl->algorithm = Algorithm::CudaSimt;
      impl->why = "stride 1, f32 on a CUDA device: the forward SIMT implicit GEMM over dy with flipped filters";
    } else if (direction == Direction::BackwardData && detail::bwd_data_reduction(desc) >= 32 &&
               detail::algo_unsupported_reason(Algorithm::ImplicitGemm, pb).empty()) {
      impl->algorithm = Algorithm::ImplicitGemm;
      impl->why = "stride 1: the forward implicit GEMM over dy with flipped filters";
    } else {
      impl->algorithm = Algorithm::Direct;
      impl->why = std::string("direct serves every ") + to_string(direction) + " shape";
    }
  } else {
    impl->algorithm = detail::select(pb, impl->why);
  }
  impl->algo = detail::make_algo(impl->algorithm, pb);
  if (impl->algo->workspace_bytes() > options.workspace_limit)
    throw Unsupported(std::string("conv2d: algorithm ") + to_string(impl->algorithm) + " needs " +
                      std::to_string(impl->algo->workspace_bytes()) + " bytes of workspace, above the limit of " +
                      std::to_string(options.workspace_limit));
  impl_ = std::move(impl);
}

namespace {
const detail::Conv2dPlanImpl& need(const std::shared_ptr<const detail::Conv2dPlanImpl>& p) {
  if (!p) throw InvalidArgument("use of an empty Conv2dPlan");
  return *p;
}
}  // namespace

const Device& Conv2dPlan::device() const { return need(impl_).pb.device; }
const Conv2dDesc& Conv2dPlan::desc() const { return need(impl_).pb.desc; }
const Conv2dTypes& Conv2dPlan::types() const { return need(impl_).pb.types; }
Direction Conv2dPlan::direction() const { return need(impl_).pb.direction; }
const Conv2dFusion& Conv2dPlan::fusion() const { return need(impl_).pb.fusion; }
Algorithm Conv2dPlan::algorithm() const { return need(impl_).algorithm; }
std::size_t Conv2dPlan::workspace_bytes() const { return need(impl_).algo->workspace_bytes(); }

std::string Conv2dPlan::describe() const {
  const auto& p = need(impl_);
  std::string s = std::string(to_string(p.algorithm));
  const std::string params = p.algo->params();
  if (!params.empty()) s += " (" + params + ")";
  s += std::string(" for ") + p.pb.desc.str() + ", " + to_string(p.pb.direction) + " " + to_string(p.pb.types.x) +
       " -> " + to_string(p.pb.types.y) + " on " + p.pb.device.id() + ": " + p.why;
  return s;
}

void Conv2dPlan::run(Stream& stream, const Conv2dArgs& args) const {
  const auto& p = need(impl_);
  const Device& dev = detail::check_stream(p, stream);
  const Conv2dDesc& d = p.pb.desc;
  detail::check_tensor("x", args.x, p.pb.types.x, d.x_elems(), dev, d);
  if (args.packed_w.valid()) {
    detail::check_packed("packed_w", args.packed_w, p, dev);
    if (args.w.valid()) detail::check_tensor("w", args.w, p.pb.types.w, d.w_elems(), dev, d);
  } else {
    detail::check_tensor("w", args.w, p.pb.types.w, d.w_elems(), dev, d);
  }
  detail::check_tensor("y", args.y, p.pb.types.y, d.y_elems(), dev, d);
  if (p.pb.fusion.bias) {
    if (!args.bias.valid()) throw InvalidArgument("conv2d: the plan fuses a bias but no bias view was given");
    if (args.bias.device() != dev)
      throw InvalidArgument("conv2d: the bias lives on " + args.bias.device().id() + " but the stream is on " +
                            dev.id());
    if (args.bias.size() < d.k)
      throw OutOfRange("conv2d: the bias needs K = " + std::to_string(d.k) + " values but its view holds " +
                       std::to_string(args.bias.size()));
  } else if (args.bias.valid()) {
    throw InvalidArgument("conv2d: a bias view was given but the plan fuses no bias (Conv2dFusion::bias)");
  }
  if (p.pb.fusion.residual)
    detail::check_tensor("z", args.z, p.pb.types.y, d.y_elems(), dev, d);
  else if (args.z.valid())
    throw InvalidArgument("conv2d: a residual z was given but the plan fuses none (Conv2dFusion::residual)");
  const std::size_t ws = args.packed_w.valid() ? p.algo->packed_run_workspace_bytes() : p.algo->workspace_bytes();
  const Buffer* ws_buf = nullptr;
  std::size_t ws_off = 0;
  if (args.workspace.valid()) {
    if (args.workspace.device() != dev)
      throw InvalidArgument("conv2d: the workspace lives on " + args.workspace.device().id() +
                            " but the stream is on " + dev.id());
    if (args.workspace.offset_bytes() % 16 != 0)
      throw InvalidArgument("conv2d: the workspace view starts at byte " + std::to_string(args.workspace.offset_bytes()) +
                            ", not a multiple of 16");
    if (args.workspace.size() < ws)
      throw OutOfRange("conv2d: the plan needs " + std::to_string(ws) + " bytes of workspace but the view holds " +
                       std::to_string(args.workspace.size()));
    ws_buf = &args.workspace.buffer();
    ws_off = args.workspace.offset_bytes();
  } else if (ws) {
    ws_buf = &stream.workspace("axle.conv.workspace", ws);
  }
  p.algo->run(stream, args, ws_buf, ws_off);
}

std::size_t Conv2dPlan::packed_weights_bytes() const { return need(impl_).algo->packed_weights_bytes(); }

void Conv2dPlan::pack_weights(Stream& stream, const TensorRef& w, const BufferView<unsigned char>& packed) const {
  const auto& p = need(impl_);
  const Device& dev = detail::check_stream(p, stream);
  if (!packed.valid()) throw InvalidArgument("conv2d: pack_weights needs a destination view (packed is empty)");
  detail::check_packed("packed", packed, p, dev);
  detail::check_tensor("w", w, p.pb.types.w, p.pb.desc.w_elems(), dev, p.pb.desc);
  p.algo->pack_weights(stream, w, packed.buffer(), packed.offset_bytes());
}

bool supports(const Device& device, Algorithm algorithm, const Conv2dDesc& desc, const Conv2dTypes& types,
              Direction direction, std::string* why) {
  std::string reason;
  try {
    validate(desc);
    detail::ConvProblem pb;
    pb.device = device;
    pb.desc = desc;
    pb.types = types;
    pb.direction = direction;
    pb.p = desc.out_h();
    pb.q = desc.out_w();
    reason = detail::problem_reason(pb);
    if (reason.empty() && algorithm != Algorithm::Auto) reason = detail::algo_unsupported_reason(algorithm, pb);
  } catch (const Error& e) {
    reason = e.message();
  }
  if (why) *why = reason;
  return reason.empty();
}

// ---- the one-shot plan cache ---------------------------------------------------------

namespace {

using PlanKey =
    std::tuple<const void*, std::string, int, int, int, int, bool, bool, int, int, std::size_t, bool, bool>;

struct PlanCache {
  std::mutex mu;
  std::map<PlanKey, Conv2dPlan> plans;
};
PlanCache& plan_cache() {
  static PlanCache* c = new PlanCache;  // never destroyed: plans hold kernels
  return *c;
}

}  // namespace

namespace {

void one_shot(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args, Direction direction,
              Activation activation, const Conv2dOptions& options) {
  if (!stream.valid()) throw InvalidArgument("conv2d: the stream is empty (moved-from)");
  if (args.packed_w.valid())
    throw InvalidArgument("conv2d: packed filters (Conv2dArgs::packed_w) are run by the Conv2dPlan that packed them, "
                          "not by the one-shot calls");
  if (!args.x.valid() || !args.y.valid() || !args.w.valid())
    throw InvalidArgument(std::string("conv2d: tensor ") + (!args.x.valid() ? "x" : !args.w.valid() ? "w" : "y") +
                          " is an empty view");
  Conv2dTypes types{args.x.type, args.w.type, args.y.type};
  Conv2dFusion fusion{args.bias.valid(), args.z.valid(), activation};
  const PlanKey key{stream.device().shared_impl().get(), desc.str(), static_cast<int>(types.x),
                    static_cast<int>(types.w), static_cast<int>(types.y), static_cast<int>(direction),
                    fusion.bias, fusion.residual, static_cast<int>(activation), static_cast<int>(options.algorithm),
                    options.workspace_limit, options.allow_tf32, options.packed_weights};
  Conv2dPlan plan;
  {
    auto& c = plan_cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.plans.find(key);
    if (it != c.plans.end()) plan = it->second;
  }
  if (!plan.valid()) {
    plan = Conv2dPlan(stream.device(), desc, types, direction, fusion, options);
    auto& c = plan_cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.plans.emplace(key, plan);
  }
  plan.run(stream, args);
}

}  // namespace

void conv2d_forward(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args, Activation activation,
                    const Conv2dOptions& options) {
  one_shot(stream, desc, args, Direction::Forward, activation, options);
}

void conv2d_backward_data(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args,
                          const Conv2dOptions& options) {
  one_shot(stream, desc, args, Direction::BackwardData, Activation::None, options);
}

void conv2d_backward_weights(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args,
                             const Conv2dOptions& options) {
  one_shot(stream, desc, args, Direction::BackwardWeights, Activation::None, options);
}

void reset_conv_caches() {
  auto& c = plan_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.plans.clear();
}

}  // namespace axle::dnn
