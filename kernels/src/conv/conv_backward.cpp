// The direct algorithm of the backward passes (kernels in kernels/src/cl/conv_bwd.cl):
// backward data (dx from dy and w) and backward weights (dw from x and dy, and the
// bias gradient db when the plan fuses a bias). Deterministic: one work-item per
// element written, a fixed summation order.
#include <string_view>

#include "conv_backward.hpp"

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::dnn::detail {
namespace {

int type_code(DataType t) { return t == DataType::F32 ? 0 : t == DataType::F16 ? 1 : 2; }

class DirectBackwardAlgo final : public ConvAlgo {
 public:
  explicit DirectBackwardAlgo(const ConvProblem& pb) : pb_(pb) {
    BuildOptions opt;
    opt.define("X_T", type_code(pb.types.x)).define("Y_T", type_code(pb.types.y));
    opt.define("LAYOUT", pb.desc.layout == TensorLayout::NCHW ? 0 : 1);
    if (pb.device.backend() == "opencl") opt.flags = "-cl-mad-enable";
    const std::string_view text = embedded::kernel_resource("src/cl/conv_bwd.cl");
    if (text.empty()) throw Error("conv2d: the kernel source src/cl/conv_bwd.cl is not embedded in this build");
    Program prog = pb.device.build(Source::portable(std::string(text), "conv_bwd.cl"), opt);
    if (pb.direction == Direction::BackwardData) {
      main_ = prog.kernel("axle_conv_direct_bwd_data");
    } else {
      main_ = prog.kernel("axle_conv_direct_bwd_weights");
      if (pb.fusion.bias) bias_ = prog.kernel("axle_conv_direct_bwd_bias");
    }
    local_ = pb.device.info().type != DeviceType::CPU ? std::min<std::size_t>(128, main_.max_work_group_size()) : 0;
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override {
    return pb_.direction == Direction::BackwardData ? "one work-item per dx element"
                                                     : std::string("one work-item per dw element") +
                                                           (pb_.fusion.bias ? ", one per db element" : "");
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    const Conv2dDesc& d = pb_.desc;
    auto u64 = [](std::size_t v) { return KernelArg::scalar(static_cast<std::uint64_t>(v)); };
    auto i32 = [](std::size_t v) { return KernelArg::scalar(static_cast<std::int32_t>(v)); };
    auto geometry = [&](std::vector<KernelArg>& a) {
      for (std::size_t v : {d.n, d.c, d.h, d.w, d.k, d.r, d.s, pb_.p, pb_.q, d.stride_h, d.stride_w, d.pad_top,
                            d.pad_left, d.dilation_h, d.dilation_w, d.groups})
        a.push_back(i32(v));
    };
    auto launch = [&](const Kernel& k, std::size_t count, const std::vector<KernelArg>& a) {
      if (local_)
        stream.launch_args(k, Range(round_up(count, local_)), Range(local_), a);
      else
        stream.launch_args(k, Range(count), Range(), a);
    };
    if (pb_.direction == Direction::BackwardData) {
      const std::size_t total = d.x_elems(), chunk = std::size_t{1} << 30;
      for (std::size_t base = 0; base < total; base += chunk) {
        std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64(args.x.offset),
                                 KernelArg::buffer_arg(*args.w.buffer, 0), u64(args.w.offset),
                                 KernelArg::buffer_arg(*args.y.buffer, 0), u64(args.y.offset)};
        geometry(a);
        a.push_back(KernelArg::scalar(args.alpha));
        a.push_back(KernelArg::scalar(args.beta));
        a.push_back(u64(base));
        a.push_back(u64(total));
        launch(main_, std::min(chunk, total - base), a);
      }
      return;
    }
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64(args.x.offset),
                               KernelArg::buffer_arg(*args.w.buffer, 0), u64(args.w.offset),
                               KernelArg::buffer_arg(*args.y.buffer, 0), u64(args.y.offset)};
      geometry(a);
      a.push_back(KernelArg::scalar(args.alpha));
      a.push_back(KernelArg::scalar(args.beta));
      a.push_back(u64(d.w_elems()));
      launch(main_, d.w_elems(), a);
    }
    if (pb_.fusion.bias) {
      std::vector<KernelArg> a{KernelArg::buffer_arg(args.bias.buffer(), 0), u64(args.bias.offset()),
                               KernelArg::buffer_arg(*args.y.buffer, 0), u64(args.y.offset), i32(d.n), i32(d.k),
                               i32(pb_.p), i32(pb_.q), KernelArg::scalar(args.alpha), KernelArg::scalar(args.beta)};
      launch(bias_, d.k, a);
    }
  }

 private:
  ConvProblem pb_;
  Kernel main_, bias_;
  std::size_t local_ = 0;
};

}  // namespace

std::unique_ptr<ConvAlgo> make_direct_backward(const ConvProblem& pb) {
  return std::make_unique<DirectBackwardAlgo>(pb);
}

}  // namespace axle::dnn::detail
