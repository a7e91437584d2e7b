// Convolution algorithms: direct, implicit GEMM (portable, local-memory tiles) and
// 1x1 through blas::gemm. Each says which problems it serves (algo_unsupported_reason)
// and is built once per plan (make_algo).
#include <algorithm>
#include <string_view>

#include "axle/blas.hpp"
#include "conv_backward.hpp"
#include "conv_depthwise.hpp"
#include "conv_cuda.hpp"
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

Program build_conv(const ConvProblem& pb, BuildOptions opt) { return build_conv_program(pb, "conv.cl", opt); }

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
    return "BM=" + std::to_string(t_.bm) + " BN=" + std::to_string(t_.bn) + " BK=" + std::to_string(t_.bk) +
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

std::string algo_unsupported_reason(Algorithm algo, const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (pb.direction != Direction::Forward && algo != Algorithm::Direct && algo != Algorithm::Auto &&
      algo != Algorithm::Gemm1x1)
    return std::string(to_string(algo)) + " has no " + to_string(pb.direction) + " kernels in this build";
  switch (algo) {
    case Algorithm::Auto: return "";
    case Algorithm::Direct: return "";
    case Algorithm::ImplicitGemm:
      if (d.groups > kMaxGroupsY) return "more than 65535 groups";
      return "";
    case Algorithm::Gemm1x1:
      if (d.r != 1 || d.s != 1)
        return "the filter is " + std::to_string(d.r) + "x" + std::to_string(d.s) + ", not 1x1";
      if (d.stride_h != 1 || d.stride_w != 1)
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
      if (depthwise_kernel_serves(pb)) return make_depthwise(pb);
      return std::make_unique<DirectAlgo>(pb);
    case Algorithm::ImplicitGemm: return std::make_unique<ImplicitGemmAlgo>(pb);
    case Algorithm::Gemm1x1:
      if (pb.direction != Direction::Forward) return make_gemm1x1_backward(pb);
      return std::make_unique<Gemm1x1Algo>(pb);
    case Algorithm::Winograd: return make_winograd(pb);
    case Algorithm::TensorCore: return make_tensor_core_algo(pb);
    case Algorithm::CudaSimt: return make_cuda_simt_algo(pb);
    case Algorithm::Auto: break;
  }
  throw InvalidArgument("conv2d: no algorithm object for 'auto'");
}

}  // namespace axle::dnn::detail
