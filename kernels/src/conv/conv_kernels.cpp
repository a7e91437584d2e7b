// Building the portable convolution kernels (kernels/src/cl/conv*.cl).
#include <algorithm>
#include <string_view>

#include "conv_plan.hpp"

namespace axle::embedded {
std::string_view kernel_resource(std::string_view relative_path);
}

namespace axle::dnn::detail {

Program build_conv_program(const ConvProblem& pb, const char* file, BuildOptions opt) {
  auto code = [](DataType t) { return t == DataType::F32 ? 0 : t == DataType::F16 ? 1 : 2; };
  opt.define("X_T", code(pb.types.x)).define("Y_T", code(pb.types.y));
  opt.define("LAYOUT", pb.desc.layout == TensorLayout::NCHW ? 0 : 1);
  if (pb.device.backend() == "opencl") opt.flags = "-cl-mad-enable";
  const std::string path = std::string("src/cl/") + file;
  const std::string_view text = embedded::kernel_resource(path);
  const std::string_view header = embedded::kernel_resource("src/cl/conv_types.clh");
  if (text.empty() || header.empty())
    throw Error("conv2d: the kernel source " + path + " (or conv_types.clh) is not embedded in this build");
  opt.header("conv_types.clh", std::string(header));
  return pb.device.build(Source::portable(std::string(text), file), opt);
}

void launch_1d(Stream& stream, const Kernel& kernel, std::size_t count, const std::vector<KernelArg>& args) {
  if (stream.device().info().type == DeviceType::CPU) {
    stream.launch_args(kernel, Range(count), Range(), args);
    return;
  }
  const std::size_t local = std::min<std::size_t>(128, kernel.max_work_group_size());
  stream.launch_args(kernel, Range(round_up(count, local)), Range(local), args);
}

}  // namespace axle::dnn::detail
