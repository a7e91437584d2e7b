// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions: filter and input transforms into
// the workspace, 16 * groups GEMMs through blas::gemm_strided_batched (the packed CPU
// microkernel or the GPU paths), and an output transform with the fused epilogue.
// The kernels and the transform matrices are in kernels/src/cl/conv_winograd.cl.
#include <string_view>

#include "axle/blas.hpp"
#include "conv_winograd.hpp"

namespace axle::dnn::detail {
namespace {

constexpr std::size_t kAlign = 64;  // floats: regions start on 256-byte boundaries
std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct Sizes {
  std::size_t th, tw, t, u, v, m;  // tiles down and across, tiles in all; region sizes in floats
};
Sizes sizes(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  Sizes s{};
  s.th = div_up(pb.p, 2);
  s.tw = div_up(pb.q, 2);
  s.t = d.n * s.th * s.tw;
  s.u = align_up(16 * d.k * (d.c / d.groups));
  s.v = align_up(16 * d.c * s.t);
  s.m = align_up(16 * d.k * s.t);
  return s;
}

class WinogradAlgo final : public ConvAlgo {
 public:
  explicit WinogradAlgo(const ConvProblem& pb) : pb_(pb), sz_(sizes(pb)) {
    Program prog = build_conv_program(pb, "conv_winograd.cl");
    filter_ = prog.kernel("axle_wino_filter");
    input_ = prog.kernel("axle_wino_input");
    output_ = prog.kernel("axle_wino_output");
  }
  std::size_t workspace_bytes() const override { return (sz_.u + sz_.v + sz_.m) * sizeof(float); }
  std::string params() const override {
    return "F(2x2,3x3), " + std::to_string(sz_.t) + " tiles, " + std::to_string(16 * pb_.desc.groups) +
           " GEMMs of " + std::to_string(pb_.desc.k / pb_.desc.groups) + "x" + std::to_string(sz_.t) + "x" +
           std::to_string(pb_.desc.c / pb_.desc.groups);
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const Conv2dDesc& d = pb_.desc;
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups;
    const std::size_t base = ws_off / sizeof(float), u_off = base, v_off = base + sz_.u, m_off = v_off + sz_.v;
    const bool gpu = pb_.device.info().type != DeviceType::CPU;
    auto launch2 = [&](const Kernel& k, std::size_t gx, std::size_t gy, const std::vector<KernelArg>& a) {
      if (gpu)
        stream.launch_args(k, Range(round_up(gx, 64), gy), Range(64, 1), a);
      else
        stream.launch_args(k, Range(gx, gy), Range(), a);
    };
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.w.buffer, 0), u64_arg(args.w.offset),
                               KernelArg::buffer_arg(*ws, 0), u64_arg(u_off), i32_arg(d.k), i32_arg(cg), i32_arg(d.groups)};
      launch2(filter_, cg, d.k, a);
    }
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64_arg(args.x.offset),
                               KernelArg::buffer_arg(*ws, 0), u64_arg(v_off), i32_arg(d.n), i32_arg(d.c), i32_arg(d.h), i32_arg(d.w),
                               i32_arg(sz_.th), i32_arg(sz_.tw), i32_arg(d.pad_top), i32_arg(d.pad_left), i32_arg(d.groups)};
      launch2(input_, sz_.t, d.c, a);
    }
    const BufferView<float> all(*ws, 0, ws->size_bytes() / sizeof(float));
    blas::gemm_strided_batched(stream, Layout::RowMajor, Op::N, Op::N, kg, sz_.t, cg, 1.0, all.sub(u_off), cg,
                               kg * cg, all.sub(v_off), sz_.t, cg * sz_.t, 0.0, all.sub(m_off), sz_.t, kg * sz_.t,
                               16 * d.groups);
    {
      const Buffer& y = *args.y.buffer;
      const int act = pb_.fusion.activation == Activation::None ? 0 : pb_.fusion.activation == Activation::ReLU ? 1 : 2;
      std::vector<KernelArg> a{KernelArg::buffer_arg(*ws, 0),
                               u64_arg(m_off),
                               KernelArg::buffer_arg(y, 0),
                               u64_arg(args.y.offset),
                               KernelArg::buffer_arg(args.bias.valid() ? args.bias.buffer() : y, 0),
                               u64_arg(args.bias.valid() ? args.bias.offset() : 0),
                               KernelArg::buffer_arg(args.z.valid() ? *args.z.buffer : y, 0),
                               u64_arg(args.z.valid() ? args.z.offset : 0),
                               i32_arg(d.n),
                               i32_arg(d.k),
                               i32_arg(pb_.p),
                               i32_arg(pb_.q),
                               i32_arg(sz_.th),
                               i32_arg(sz_.tw),
                               KernelArg::scalar(args.alpha),
                               KernelArg::scalar(args.beta),
                               i32_arg(pb_.fusion.bias ? 1 : 0),
                               i32_arg(pb_.fusion.residual ? 1 : 0),
                               i32_arg(static_cast<std::size_t>(act))};
      launch2(output_, sz_.t, d.k, a);
    }
  }

 private:
  ConvProblem pb_;
  Sizes sz_;
  Kernel filter_, input_, output_;
};

}  // namespace

std::string winograd_unsupported_reason(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (d.r != 3 || d.s != 3) return "the filter is " + std::to_string(d.r) + "x" + std::to_string(d.s) + ", not 3x3";
  if (d.stride_h != 1 || d.stride_w != 1)
    return "stride " + std::to_string(d.stride_h) + "x" + std::to_string(d.stride_w) + " (it needs stride 1)";
  if (d.dilation_h != 1 || d.dilation_w != 1)
    return "dilation " + std::to_string(d.dilation_h) + "x" + std::to_string(d.dilation_w) + " (it needs none)";
  const Sizes s = sizes(pb);
  if (16.0 * static_cast<double>(d.c > d.k ? d.c : d.k) * static_cast<double>(s.t) > 2147483647.0)
    return "the transformed tensors would exceed 2^31 elements";
  if (s.th > 2147483647 / 2) return "too many tiles";
  return "";
}

std::unique_ptr<ConvAlgo> make_winograd(const ConvProblem& pb) { return std::make_unique<WinogradAlgo>(pb); }

}  // namespace axle::dnn::detail
