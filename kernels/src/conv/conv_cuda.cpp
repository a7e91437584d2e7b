// The CUDA-only convolution algorithms: which problems they serve, building their
// kernels (CUDA C++ embedded from src/cuda, compiled through the runtime) and
// launching them.
//
//   tensor_core  conv_mma.cu, one variant per (element type: f16, bf16, or f32 as TF32
//                when Conv2dOptions::allow_tf32; CTA tile width; 16-byte aligned x and w). The plan builds the aligned
//                variant; a run whose x or w view does not start on 16 bytes uses the element-wise variant, built on
//                first use.
//   cuda_simt    conv_simt.cu, one variant per layout.
// Both launch one CTA per output tile on grid x (grouped rasterisation inside the
// kernel) and one group per grid z (at most 65535 groups).
#include "conv_cuda.hpp"

#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::dnn::detail {
namespace {

constexpr std::size_t kMaxGridZ = 65535;
constexpr std::size_t kMaxPadded = std::size_t{1} << 30;  // padded H and W (32-bit index arithmetic)

int type_code(DataType t) { return t == DataType::F32 ? 0 : t == DataType::F16 ? 1 : 2; }
int act_code(Activation a) { return a == Activation::None ? 0 : a == Activation::ReLU ? 1 : 2; }

// "sm_86" -> 86; 0 when unknown.
int sm_version(const Device& device) {
  const std::string& a = device.info().architecture;
  if (a.rfind("sm_", 0) != 0) return 0;
  int v = 0;
  for (std::size_t i = 3; i < a.size() && a[i] >= '0' && a[i] <= '9'; ++i) v = v * 10 + (a[i] - '0');
  return v;
}

// What both CUDA algorithms need: a CUDA device, a grid z for the groups, 32-bit
// spatial index arithmetic.
std::string common_reason(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (!pb.device.valid() || pb.device.backend() != "cuda")
    return "it needs a CUDA device (" +
           (pb.device.valid() ? pb.device.id() + " is on the " + pb.device.backend() + " backend"
                              : std::string("no device")) +
           ")";
  if (d.groups > kMaxGridZ) return std::to_string(d.groups) + " groups (at most 65535: one per grid z)";
  if (d.h + d.pad_top + d.pad_bottom >= kMaxPadded || d.w + d.pad_left + d.pad_right >= kMaxPadded)
    return "a padded input of " + std::to_string(d.h + d.pad_top + d.pad_bottom) + " x " +
           std::to_string(d.w + d.pad_left + d.pad_right) + " (it needs fewer than 2^30 rows and columns)";
  return "";
}

Kernel build_kernel(const Device& device, const char* file, const char* name, BuildOptions opt) {
  const std::string_view text = embedded::kernel_resource(std::string("src/cuda/") + file + ".cu");
  if (text.empty())
    throw Error(std::string("conv2d: the kernel source src/cuda/") + file + ".cu is not embedded in this build");
  opt.header("gemm_epilogue.cuh", std::string(embedded::kernel_resource("src/cuda/gemm_epilogue.cuh")));
  opt.header("conv_epilogue.cuh", std::string(embedded::kernel_resource("src/cuda/conv_epilogue.cuh")));
  opt.header("ptx_helpers.cuh", std::string(embedded::kernel_resource("src/cuda/ptx_helpers.cuh")));
  return device.build(Source::cuda(std::string(text), file), opt).kernel(name);
}

bool aligned16(const TensorRef& t) {
  const auto base = reinterpret_cast<std::uintptr_t>(t.buffer->native_handle());
  return base % 16 == 0 && (t.offset * size_of(t.type)) % 16 == 0;
}

// The kernels' arguments (conv_mma.cu and conv_simt.cu share one signature): x, w, y,
// bias, z as pointers (absent parts bind y), the geometry, the epilogue.
std::vector<KernelArg> kernel_args(const ConvProblem& pb, const Conv2dArgs& args) {
  const Conv2dDesc& d = pb.desc;
  const std::size_t ys = size_of(pb.types.y);
  std::vector<KernelArg> a;
  a.push_back(KernelArg::buffer_arg(*args.x.buffer, args.x.offset * size_of(pb.types.x)));
  a.push_back(KernelArg::buffer_arg(*args.w.buffer, args.w.offset * size_of(pb.types.w)));
  a.push_back(KernelArg::buffer_arg(*args.y.buffer, args.y.offset * ys));
  if (pb.fusion.bias)
    a.push_back(KernelArg::buffer_arg(args.bias.buffer(), args.bias.offset_bytes()));
  else
    a.push_back(KernelArg::buffer_arg(*args.y.buffer, args.y.offset * ys));
  if (pb.fusion.residual)
    a.push_back(KernelArg::buffer_arg(*args.z.buffer, args.z.offset * ys));
  else
    a.push_back(KernelArg::buffer_arg(*args.y.buffer, args.y.offset * ys));
  // A dilation along an axis with one tap is never used: 1 keeps r * dilation small.
  const std::size_t dil_h = d.r == 1 ? 1 : d.dilation_h, dil_w = d.s == 1 ? 1 : d.dilation_w;
  for (std::size_t v : {d.n, d.c, d.h, d.w, d.k, d.r, d.s, pb.p, pb.q, d.stride_h, d.stride_w, d.pad_top, d.pad_left,
                        dil_h, dil_w, d.groups})
    a.push_back(KernelArg::scalar(static_cast<std::int32_t>(v)));
  a.push_back(KernelArg::scalar(args.alpha));
  a.push_back(KernelArg::scalar(args.beta));
  a.push_back(KernelArg::scalar(static_cast<std::int32_t>(type_code(pb.types.y))));
  a.push_back(KernelArg::scalar(std::int32_t{pb.fusion.bias ? 1 : 0}));
  a.push_back(KernelArg::scalar(std::int32_t{pb.fusion.residual ? 1 : 0}));
  a.push_back(KernelArg::scalar(static_cast<std::int32_t>(act_code(pb.fusion.activation))));
  return a;
}

// One launch: tiles_m * tiles_n CTAs on grid x, the groups on grid z.
void launch(Stream& stream, const Kernel& kernel, const ConvProblem& pb, const Conv2dArgs& args, std::size_t bm,
            std::size_t bn, std::size_t threads) {
  const Conv2dDesc& d = pb.desc;
  const std::size_t m = d.n * pb.p * pb.q, kg = d.k / d.groups;
  const std::size_t tiles = div_up(m, bm) * div_up(kg, bn);
  stream.launch_args(kernel, Range(tiles * threads, 1, d.groups), Range(threads, 1, 1), kernel_args(pb, args));
}

// ---- tensor cores (conv_mma.cu) ---------------------------------------------------------

constexpr std::size_t kMmaBM = 128, kMmaThreads = 256;

class TensorCoreAlgo final : public ConvAlgo {
 public:
  explicit TensorCoreAlgo(const ConvProblem& pb)
      : pb_(pb), bn_(pb.desc.k / pb.desc.groups <= 64 ? 64 : 128), aligned_(build(true)) {}
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override {
    const bool tf32 = pb_.types.x == DataType::F32;
    return std::string(tf32 ? "mma.sync m16n8k8 tf32" : "mma.sync m16n8k16 ") + (tf32 ? "" : to_string(pb_.types.x)) +
           ", BM=" + std::to_string(kMmaBM) + " BN=" + std::to_string(bn_) + " BK=32, " + (bn_ == 128 ? "3" : "4") +
           " cp.async stages";
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    if (aligned16(args.x) && aligned16(args.w)) {
      launch(stream, aligned_, pb_, args, kMmaBM, bn_, kMmaThreads);
      return;
    }
    Kernel k;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!unaligned_.valid()) unaligned_ = build(false);
      k = unaligned_;
    }
    launch(stream, k, pb_, args, kMmaBM, bn_, kMmaThreads);
  }

 private:
  Kernel build(bool vec16) const {
    BuildOptions opt;
    opt.define("AXLE_CONV_ELEM", pb_.types.x == DataType::F32    ? 2
                                 : pb_.types.x == DataType::BF16 ? 1
                                                                 : 0)
        .define("AXLE_CONV_BN", static_cast<int>(bn_))
        .define("AXLE_CONV_VEC16", vec16 ? 1 : 0);
    return build_kernel(pb_.device, "conv_mma", "axle_conv_mma", opt);
  }

  ConvProblem pb_;
  std::size_t bn_;
  Kernel aligned_;
  mutable std::mutex mu_;
  mutable Kernel unaligned_;  // x or w views off 16 bytes: built on first use
};

// ---- CUDA cores, f32 (conv_simt.cu) ---------------------------------------------------

constexpr std::size_t kSimtBM = 128, kSimtBN = 64, kSimtThreads = 128;

class CudaSimtAlgo final : public ConvAlgo {
 public:
  explicit CudaSimtAlgo(const ConvProblem& pb) : pb_(pb) {
    BuildOptions opt;
    opt.define("AXLE_CONV_LAYOUT", pb.desc.layout == TensorLayout::NHWC ? 1 : 0);
    kernel_ = build_kernel(pb.device, "conv_simt", "axle_conv_simt", opt);
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override {
    return "FFMA, BM=" + std::to_string(kSimtBM) + " BN=" + std::to_string(kSimtBN) + " BK=8, 8x8 per thread";
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    launch(stream, kernel_, pb_, args, kSimtBM, kSimtBN, kSimtThreads);
  }

 private:
  ConvProblem pb_;
  Kernel kernel_;
};

}  // namespace

std::string tensor_core_unsupported_reason(const ConvProblem& pb) {
  if (std::string why = common_reason(pb); !why.empty()) return why;
  const Conv2dDesc& d = pb.desc;
  if (sm_version(pb.device) < 80)
    return "it needs sm_80 or newer tensor cores (" + pb.device.id() + " is " + pb.device.info().architecture + ")";
  const bool f32 = pb.types.x == DataType::F32;
  if (f32 && !pb.options.allow_tf32)
    return "x and w are f32 and TF32 is not allowed (it takes f16 or bf16, or f32 as TF32 with "
           "Conv2dOptions::allow_tf32)";
  if (d.layout != TensorLayout::NHWC) return "layout NCHW (it needs NHWC tensors with KRSC filters)";
  const std::size_t chunk = f32 ? 4 : 8;  // channels per 16-byte load
  if ((d.c / d.groups) % chunk != 0)
    return "C/groups = " + std::to_string(d.c / d.groups) + " is not a multiple of " + std::to_string(chunk) +
           " (16-byte channel loads of " + to_string(pb.types.x) + ")";
  return "";
}

std::string cuda_simt_unsupported_reason(const ConvProblem& pb) {
  if (std::string why = common_reason(pb); !why.empty()) return why;
  if (pb.types.x != DataType::F32)
    return std::string("x and w are ") + to_string(pb.types.x) + " (it takes f32; f16/bf16 go to tensor_core)";
  return "";
}

std::unique_ptr<ConvAlgo> make_tensor_core_algo(const ConvProblem& pb) { return std::make_unique<TensorCoreAlgo>(pb); }
std::unique_ptr<ConvAlgo> make_cuda_simt_algo(const ConvProblem& pb) { return std::make_unique<CudaSimtAlgo>(pb); }

}  // namespace axle::dnn::detail
