// Internal: convolution plans. A plan holds the validated problem, the chosen
// algorithm object (kernels built, parameters fixed) and why it was chosen; run()
// checks the views and hands them to the algorithm.
#pragma once

#include <memory>
#include <string>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"

namespace axle::dnn::detail {

/// Everything an algorithm needs to know about the problem (validated).
struct ConvProblem {
  Device device;
  Conv2dDesc desc;
  Conv2dTypes types;
  Direction direction = Direction::Forward;
  Conv2dFusion fusion;
  Conv2dOptions options;
  std::size_t p = 0, q = 0;  ///< output height and width
  /// The forward pass over dy of a stride-1 bwd_data whose w is the layer's own KRSC
  /// filters, to be read flipped and transposed in place (only where
  /// reads_filters_transposed says the algorithm can; else they are flipped first).
  bool w_transposed = false;
};

/// One algorithm made for one problem.
class ConvAlgo {
 public:
  virtual ~ConvAlgo() = default;
  virtual std::size_t workspace_bytes() const = 0;
  /// "BM=64 BN=64 ..." (empty when it has none).
  virtual std::string params() const = 0;
  /// Enqueue; the views are checked. `ws` is the workspace (may be empty when
  /// workspace_bytes() is 0), starting at byte `ws_off`.
  virtual void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const = 0;
  /// Bytes of the filters prepared once (Conv2dPlan::pack_weights); 0 when the
  /// algorithm reads w as given.
  virtual std::size_t packed_weights_bytes() const { return 0; }
  /// The workspace a run given args.packed_w needs.
  virtual std::size_t packed_run_workspace_bytes() const { return workspace_bytes(); }
  /// Enqueue the preparation of `w` into `dst` from byte `off` (a multiple of 64); only
  /// called when packed_weights_bytes() > 0. run() then finds the result in
  /// args.packed_w.
  virtual void pack_weights(Stream& /*stream*/, const TensorRef& /*w*/, const Buffer& /*dst*/,
                            std::size_t /*off*/) const {}
};

/// Build the portable kernel file `file` (under kernels/src/cl/) for `pb`: the element
/// types (X_T, Y_T) and LAYOUT defined, the shared conv_types.clh header passed.
Program build_conv_program(const ConvProblem& pb, const char* file, BuildOptions options = {});

/// Scalar kernel arguments of the portable conv kernels (ulong offsets, int sizes).
inline KernelArg u64_arg(std::size_t v) { return KernelArg::scalar(static_cast<std::uint64_t>(v)); }
inline KernelArg i32_arg(std::size_t v) { return KernelArg::scalar(static_cast<std::int32_t>(v)); }

/// A one-dimensional launch of `count` work-items: work-groups of up to 128 on GPUs
/// (the kernels check their bounds), the backend's choice on CPUs.
void launch_1d(Stream& stream, const Kernel& kernel, std::size_t count, const std::vector<KernelArg>& args);

/// A typed view of a tensor reference.
template <typename T>
BufferView<T> typed(const TensorRef& t) {
  return BufferView<T>(*t.buffer, t.offset, t.size);
}

/// Calls f(TX{}, TY{}) with the storage types of x and y.
template <typename F>
void with_types(DataType x, DataType y, F&& f) {
  auto on_y = [&](auto xt) {
    using TX = decltype(xt);
    switch (y) {
      case DataType::F32: return f(TX{}, float{});
      case DataType::F16: return f(TX{}, half_t{});
      case DataType::BF16: return f(TX{}, bfloat16_t{});
    }
  };
  switch (x) {
    case DataType::F32: return on_y(float{});
    case DataType::F16: return on_y(half_t{});
    case DataType::BF16: return on_y(bfloat16_t{});
  }
}

/// Why `algo` cannot serve `pb` ("" when it can).
std::string algo_unsupported_reason(Algorithm algo, const ConvProblem& pb);
/// Whether `algo` for the forward problem `fwd` (w_transposed set) reads the layer's
/// filters flipped and transposed in place: the packed CPU kernel, NHWC, f32, its panel
/// width dividing C of the layer (K / G of fwd).
bool reads_filters_transposed(Algorithm algo, const ConvProblem& fwd);
/// Build the algorithm object (the caller has checked algo_unsupported_reason).
std::unique_ptr<ConvAlgo> make_algo(Algorithm algo, const ConvProblem& pb);

class Conv2dPlanImpl {
 public:
  ConvProblem pb;
  Algorithm algorithm = Algorithm::Auto;
  std::string why;
  std::unique_ptr<ConvAlgo> algo;
};

}  // namespace axle::dnn::detail
