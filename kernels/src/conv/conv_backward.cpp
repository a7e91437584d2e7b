// The direct algorithm of the backward passes (kernels in kernels/src/cl/conv_bwd.cl):
// backward data (dx from dy and w) and backward weights (dw from x and dy, and the
// bias gradient db when the plan fuses a bias). Deterministic: one work-item per
// element written, a fixed summation order.
#include <string_view>

#include "axle/blas.hpp"
#include "conv_backward.hpp"

namespace axle::dnn::detail {
namespace {

class DirectBackwardAlgo final : public ConvAlgo {
 public:
  explicit DirectBackwardAlgo(const ConvProblem& pb) : pb_(pb) {
    Program prog = build_conv_program(pb, "conv_bwd.cl");
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

// 1x1 stride-1 layers: both backward passes as GEMMs (one per group; NCHW weight and
// bias gradients sum over the batch with beta = 1 after the first image, so the
// results stay deterministic). The bias gradient multiplies dy by a vector of ones in
// the workspace.
class Gemm1x1BackwardAlgo final : public ConvAlgo {
 public:
  explicit Gemm1x1BackwardAlgo(const ConvProblem& pb) : pb_(pb) {}
  std::size_t workspace_bytes() const override {
    if (pb_.direction != Direction::BackwardWeights || !pb_.fusion.bias) return 0;
    const Conv2dDesc& d = pb_.desc;
    return (d.layout == TensorLayout::NHWC ? d.n * d.h * d.w : d.h * d.w) * sizeof(float);
  }
  std::string params() const override {
    return std::to_string(pb_.desc.groups) + " GEMM(s) per " +
           (pb_.desc.layout == TensorLayout::NHWC ? std::string("call") : std::string("image"));
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const Conv2dDesc& d = pb_.desc;
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, hw = d.h * d.w, m = d.n * hw;
    const bool nhwc = d.layout == TensorLayout::NHWC;
    const bool data = pb_.direction == Direction::BackwardData;
    with_types(pb_.types.x, pb_.types.y, [&](auto xt, auto yt) {
      using TX = decltype(xt);
      using TY = decltype(yt);
      const BufferView<TX> x = typed<TX>(args.x), w = typed<TX>(args.w);
      const BufferView<TY> dy = typed<TY>(args.y);
      for (std::size_t g = 0; g < d.groups; ++g) {
        if (data && nhwc) {  // dx[M, C] = dy[M, K] w[K, C]
          blas::gemm(stream, Layout::RowMajor, Op::N, Op::N, m, cg, kg, args.alpha, dy.sub(g * kg), d.k,
                     w.sub(g * kg * cg), cg, args.beta, x.sub(g * cg), d.c);
        } else if (data) {  // dx[n][C, HW] = w^T[C, K] dy[n][K, HW]
          blas::gemm_strided_batched(stream, Layout::RowMajor, Op::T, Op::N, cg, hw, kg, args.alpha,
                                     w.sub(g * kg * cg), cg, 0, dy.sub(g * kg * hw), hw, d.k * hw, args.beta,
                                     x.sub(g * cg * hw), hw, d.c * hw, d.n);
        } else if (nhwc) {  // dw[K, C] = dy^T[K, M] x[M, C]
          blas::gemm(stream, Layout::RowMajor, Op::T, Op::N, kg, cg, m, args.alpha, dy.sub(g * kg), d.k,
                     x.sub(g * cg), d.c, args.beta, w.sub(g * kg * cg), cg);
        } else {  // dw[K, C] = sum_n dy[n][K, HW] x[n][C, HW]^T
          for (std::size_t n = 0; n < d.n; ++n)
            blas::gemm(stream, Layout::RowMajor, Op::N, Op::T, kg, cg, hw, args.alpha,
                       dy.sub((n * d.k + g * kg) * hw), hw, x.sub((n * d.c + g * cg) * hw), hw,
                       n == 0 ? args.beta : 1.0f, w.sub(g * kg * cg), cg);
        }
      }
      if (!data && pb_.fusion.bias) {
        const std::size_t len = nhwc ? m : hw;
        const BufferView<float> ones(*ws, ws_off / sizeof(float), len);
        stream.fill(ones, 1.0f);
        if (nhwc) {  // db[K] = dy^T[K, M] 1[M]
          blas::gemm(stream, Layout::RowMajor, Op::T, Op::N, d.k, 1, m, args.alpha, dy, d.k, ones, 1, args.beta,
                     args.bias.sub(0, d.k), 1);
        } else {
          for (std::size_t n = 0; n < d.n; ++n)
            blas::gemm(stream, Layout::RowMajor, Op::N, Op::N, d.k, 1, hw, args.alpha, dy.sub(n * d.k * hw), hw, ones,
                       1, n == 0 ? args.beta : 1.0f, args.bias.sub(0, d.k), 1);
        }
      }
    });
  }

 private:
  ConvProblem pb_;
};

}  // namespace

std::unique_ptr<ConvAlgo> make_gemm1x1_backward(const ConvProblem& pb) {
  return std::make_unique<Gemm1x1BackwardAlgo>(pb);
}

std::unique_ptr<ConvAlgo> make_direct_backward(const ConvProblem& pb) {
  return std::make_unique<DirectBackwardAlgo>(pb);
}

}  // namespace axle::dnn::detail
