// The direct algorithm's depthwise kernel for NHWC f32 inputs (kernels/src/cl/conv_dw.cl):
// 16 channels x 4 output pixels per work-item in vector accumulators.
#include <string_view>

#include "conv_depthwise.hpp"

namespace axle::dnn::detail {
namespace {

class DepthwiseAlgo final : public ConvAlgo {
 public:
  explicit DepthwiseAlgo(const ConvProblem& pb) : pb_(pb) {
    kernel_ = build_conv_program(pb, "conv_dw.cl").kernel("axle_conv_dw_nhwc");
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override { return "depthwise NHWC kernel: a row of 16 channels per work-item"; }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    const Conv2dDesc& d = pb_.desc;
    const Buffer& y = *args.y.buffer;
    std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0),
                             u64_arg(args.x.offset),
                             KernelArg::buffer_arg(*args.w.buffer, 0),
                             u64_arg(args.w.offset),
                             KernelArg::buffer_arg(y, 0),
                             u64_arg(args.y.offset),
                             KernelArg::buffer_arg(args.bias.valid() ? args.bias.buffer() : y, 0),
                             u64_arg(args.bias.valid() ? args.bias.offset() : 0),
                             KernelArg::buffer_arg(args.z.valid() ? *args.z.buffer : y, 0),
                             u64_arg(args.z.valid() ? args.z.offset : 0)};
    for (std::size_t v : {d.n, d.c, d.h, d.w, d.k, d.r, d.s, pb_.p, pb_.q, d.stride_h, d.stride_w, d.pad_top,
                          d.pad_left, d.dilation_h, d.dilation_w})
      a.push_back(i32_arg(v));
    a.push_back(KernelArg::scalar(args.alpha));
    a.push_back(KernelArg::scalar(args.beta));
    a.push_back(i32_arg(pb_.fusion.bias ? 1 : 0));
    a.push_back(i32_arg(pb_.fusion.residual ? 1 : 0));
    a.push_back(i32_arg(pb_.fusion.activation == Activation::None ? 0 : pb_.fusion.activation == Activation::ReLU ? 1 : 2));
    stream.launch_args(kernel_, Range(div_up(d.k, 16), d.n * pb_.p), Range(1, 1), a);
  }

 private:
  ConvProblem pb_;
  Kernel kernel_;
};

}  // namespace

bool depthwise_kernel_serves(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  return pb.direction == Direction::Forward && d.layout == TensorLayout::NHWC && d.groups == d.c && d.groups > 1 &&
         pb.types.x == DataType::F32 && d.r * d.s <= 25 && d.n * pb.p <= 65535 &&
         pb.device.info().type == DeviceType::CPU;
}

std::unique_ptr<ConvAlgo> make_depthwise(const ConvProblem& pb) { return std::make_unique<DepthwiseAlgo>(pb); }

}  // namespace axle::dnn::detail
