// axle/dnn.hpp: 2-D convolution on Axle streams.
//
//   y = act(alpha * conv(x, w) + beta * y + bias[k] + z)
//
// x is the input (N images of C channels, H x W), w the filters (K of C / groups
// channels, R x S), y the output (N x K x P x Q). Layouts: NCHW tensors with KCRS
// filters, or NHWC tensors with KRSC filters. Strides, padding (top, bottom, left,
// right; they may differ), dilation and groups (1 to C; depthwise is groups == C) as
// in cuDNN and oneDNN; this is cross-correlation (the filter is not flipped), like theirs.
//
// Element types: float; half_t and bfloat16_t storage with float accumulation. x and w
// share one type; y (and the residual z) may be float, half_t or bfloat16_t: the
// conversion is part of the epilogue. bias is always float.
//
// Plans. A Conv2dPlan is made once from a device, a descriptor, the types, a
// direction, the epilogue parts it fuses and options: making it validates everything,
// picks the algorithm and its parameters, and builds its kernels. run(stream, args)
// only checks the views and enqueues. describe() says what was chosen and why. The
// one-shot conv2d_forward() keeps plans in a cache keyed by everything that makes
// them differ.
//
// Errors: a descriptor that gives no output, a size of 0, groups that do not divide C
// and K, a view too small for its tensor, a type the device cannot run or a forced
// algorithm that does not serve the shape are axle::InvalidArgument, axle::OutOfRange
// (views) or axle::Unsupported (device and algorithm limits), each naming the field and
// the values; nothing is enqueued then and the stream stays usable.
//
// Workspace: run() takes a caller's buffer when given one (at least workspace_bytes());
// otherwise the stream's own workspace (Stream::workspace) serves, freed with the stream.
//
// Thread-safety: a Conv2dPlan is immutable once made: all its members, run() included,
// may be called from several threads at once on distinct streams (one stream is used by
// one thread at a time, axle/stream.hpp). Plans may be made concurrently, of the same
// problem too (their kernels are then built once, see Device::build). The one-shot calls
// may be made from any number of threads on distinct streams: their plan cache is
// guarded (concurrent first calls of one problem may each make a plan; one is kept), and
// reset_conv_caches() may run meanwhile (a call under way keeps the plan it has).
// supports(), validate() and the descriptor helpers are pure.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <string>

#include "axle/buffer.hpp"
#include "axle/stream.hpp"
#include "axle/types.hpp"

namespace axle::dnn {

/// Element storage types (accumulation is always float).
enum class DataType { F32, F16, BF16 };
const char* to_string(DataType t) noexcept;
std::size_t size_of(DataType t) noexcept;

template <typename T>
struct DataTypeOf;
template <>
struct DataTypeOf<float> {
  static constexpr DataType value = DataType::F32;
};
template <>
struct DataTypeOf<half_t> {
  static constexpr DataType value = DataType::F16;
};
template <>
struct DataTypeOf<bfloat16_t> {
  static constexpr DataType value = DataType::BF16;
};

/// Tensor layouts: NCHW tensors go with KCRS filters, NHWC tensors with KRSC filters.
enum class TensorLayout { NCHW, NHWC };
const char* to_string(TensorLayout l) noexcept;

/// What a plan computes. Backward directions share the plan type and arguments.
enum class Direction { Forward, BackwardData, BackwardWeights };
const char* to_string(Direction d) noexcept;

/// Convolution algorithms; Auto lets the selector choose. Each can be forced.
enum class Algorithm {
  Auto,
  Direct,        ///< one output element per work-item: any shape (few channels, anything else); every direction
  ImplicitGemm,  ///< a GEMM over (N P Q) x K x (R S C/groups) reading x in place
  Gemm1x1,       ///< 1x1 filters through blas::gemm (stride 1: no copy at all)
  /// Winograd F(2x2, 3x3) for 3x3 stride-1 filters: 2.25x fewer multiplications, the
  /// products as 16 batched GEMMs. Error bound (float, unit roundoff u = 2^-24, Cg =
  /// C / groups, first order): |y - y_exact| <= u * Cg * max|x| * max|w| * (81 * Cg + 1000)
  /// before the epilogue, against the direct algorithms' u * (Cg * 9 + 2) * sum|x * w|.
  Winograd,
  TensorCore,    ///< CUDA sm_80+: mma.sync implicit GEMM, NHWC; f16/bf16 (C/groups % 8 == 0) or TF32
  CudaSimt,      ///< CUDA: register-tiled f32 implicit GEMM on the CUDA cores (NCHW and NHWC)
  /// BackwardWeights only: per filter tap, the input pixels it reads gathered into the
  /// workspace and dw_tap = dy^T x_tap as one GEMM (deterministic).
  TapGemm,
  /// groups == C (K a multiple of C), filters up to 64 taps; both layouts, every
  /// direction (backward data at stride 1 with K == C). Vectorised over channels (NHWC)
  /// or along rows (NCHW); the weight gradient adds per-slice partial sums in a fixed
  /// order (deterministic).
  Depthwise,
};
const char* to_string(Algorithm a) noexcept;

/// Activation applied last in the epilogue. GELU is the exact (erf) form.
enum class Activation { None, ReLU, GELU };

/// A 2-D convolution problem. Sizes are counts (not bytes); every field is checked.
struct Conv2dDesc {
  std::size_t n = 1, c = 1, h = 1, w = 1;  ///< input: batch, channels, height, width
  std::size_t k = 1, r = 1, s = 1;         ///< filters: count (output channels), height, width
  std::size_t stride_h = 1, stride_w = 1;
  std::size_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  std::size_t dilation_h = 1, dilation_w = 1;
  std::size_t groups = 1;  ///< C and K are multiples of it; groups == C is depthwise
  TensorLayout layout = TensorLayout::NCHW;

  /// Output height and width (0 when the descriptor gives no output).
  std::size_t out_h() const noexcept;
  std::size_t out_w() const noexcept;
  /// Element counts of the tensors: x (N C H W), w (K C/groups R S), y (N K P Q).
  std::size_t x_elems() const noexcept { return n * c * h * w; }
  std::size_t w_elems() const noexcept { return k * (groups ? c / groups : 0) * r * s; }
  std::size_t y_elems() const noexcept { return n * k * out_h() * out_w(); }
  /// Multiply-adds of the forward pass times 2.
  double flops() const noexcept;
  /// "N1 C64 H56 W56 K64 3x3 s1x1 p1,1,1,1 d1x1 g1 NHWC".
  std::string str() const;
};

/// The output shape {N, K, P, Q} of a descriptor; throws InvalidArgument naming the
/// field when the descriptor is not valid (see validate).
struct Conv2dShape {
  std::size_t n, k, p, q;
};
Conv2dShape conv2d_output_shape(const Conv2dDesc& desc);

/// Throws InvalidArgument naming the field and the values when `desc` is not a valid
/// convolution: a zero size, stride or dilation, groups that do not divide C and K,
/// padding or dilation that leaves no output, sizes whose element counts overflow.
void validate(const Conv2dDesc& desc);

/// Storage types of the tensors: x and w (one type) and y (with the residual z).
struct Conv2dTypes {
  DataType x = DataType::F32;
  DataType w = DataType::F32;
  DataType y = DataType::F32;
};

/// Epilogue parts a plan fuses (alpha and beta are run-time values). Backward plans
/// fuse none, except that a BackwardWeights plan with `bias` also computes db.
struct Conv2dFusion {
  bool bias = false;      ///< + bias[k] (float, K values); BackwardWeights: db
  bool residual = false;  ///< + z (y's shape and type), e.g. a skip connection
  Activation activation = Activation::None;
};

struct Conv2dOptions {
  Algorithm algorithm = Algorithm::Auto;  ///< force one (Unsupported when it cannot serve)
  /// The most workspace the plan may need; algorithms that need more are not chosen
  /// (and a forced one is Unsupported).
  std::size_t workspace_limit = std::numeric_limits<std::size_t>::max();
  /// float convolutions may use TF32 tensor cores where a device has them.
  bool allow_tf32 = false;
  /// The runs will pass filters packed once (Conv2dPlan::pack_weights and
  /// Conv2dArgs::packed_w): choose for that. On CPU devices the implicit GEMM then
  /// takes its packed kernel on layers where packing on every run would cost more than
  /// reading the filters in place (many channels over few pixels), and serves 1x1
  /// layers over any number of pixels (else a GEMM that packs both operands per run).
  /// Runs without packed_w still work (they pack as they go).
  bool packed_weights = false;
};

/// A type-erased view of a tensor (from any BufferView<float / half_t / bfloat16_t>).
struct TensorRef {
  const Buffer* buffer = nullptr;
  std::size_t offset = 0;  ///< elements
  std::size_t size = 0;    ///< elements
  DataType type = DataType::F32;

  TensorRef() = default;
  template <typename T>
  TensorRef(const BufferView<T>& v)  // NOLINT: implicit on purpose
      : buffer(v.valid() ? &v.buffer() : nullptr), offset(v.offset()), size(v.size()), type(DataTypeOf<T>::value) {}
  bool valid() const noexcept { return buffer != nullptr; }
};

/// The tensors of one run, named as in y = conv(x, w), whatever the direction:
///  * Forward reads x and w (and y when beta != 0, bias and z when fused), writes
///    y = act(alpha * conv(x, w) + beta * y + bias + z);
///  * BackwardData reads y (as dy) and w, writes x (as dx) = alpha * dx_conv + beta * x;
///  * BackwardWeights reads x and y (as dy), writes w (as dw) = alpha * dw_conv + beta * w
///    and, when the plan fuses a bias, bias (as db[k] = alpha * sum of dy over N, P, Q +
///    beta * db[k]). alpha and beta let gradients accumulate over micro-batches.
struct Conv2dArgs {
  TensorRef x, w, y;
  BufferView<float> bias;  ///< K values, when the plan fuses a bias
  TensorRef z;             ///< residual, when the plan fuses one
  float alpha = 1.0f, beta = 0.0f;
  /// Optional caller workspace of at least workspace_bytes() bytes.
  BufferView<unsigned char> workspace;
  /// Optional: the filters as Conv2dPlan::pack_weights prepared them (by this plan, or
  /// one of the same device, descriptor, types, direction and options). When given, w
  /// is not read and may be empty.
  BufferView<unsigned char> packed_w;
};

namespace detail {
class Conv2dPlanImpl;
}

class Conv2dPlan {
 public:
  Conv2dPlan() = default;
  /// Validates, selects and builds. Throws as described at the top of this header.
  Conv2dPlan(const Device& device, const Conv2dDesc& desc, const Conv2dTypes& types,
             Direction direction = Direction::Forward, const Conv2dFusion& fusion = {},
             const Conv2dOptions& options = {});

  bool valid() const noexcept { return impl_ != nullptr; }
  const Device& device() const;
  const Conv2dDesc& desc() const;
  const Conv2dTypes& types() const;
  Direction direction() const;
  const Conv2dFusion& fusion() const;
  Algorithm algorithm() const;
  std::size_t workspace_bytes() const;
  /// The algorithm, its parameters and why it was chosen.
  std::string describe() const;

  /// Checks the views (device, type, size) and enqueues on `stream`.
  void run(Stream& stream, const Conv2dArgs& args) const;

  /// Filters prepared once, for inference. Some algorithms rearrange the filters on
  /// every run (the CPU implicit GEMM packs them into register-wide panels); a plan
  /// that serves many runs with the same filters can do that once, as oneDNN's weight
  /// reorders and cuDNN's filter transforms are done once: pack_weights(stream, w,
  /// packed) enqueues the rearrangement into `packed` (at least packed_weights_bytes()
  /// bytes, starting at a multiple of 64 bytes), and runs given Conv2dArgs::packed_w =
  /// packed then skip it (and need no workspace: the CPU implicit GEMM's panels are
  /// what its workspace held). Packed filters are a snapshot: pack again after w changes.
  /// packed_weights_bytes() is 0 when the plan's algorithm reads w as given (nothing
  /// to prepare; pack_weights then throws Unsupported, and so does run() given packed_w).
  std::size_t packed_weights_bytes() const;
  void pack_weights(Stream& stream, const TensorRef& w, const BufferView<unsigned char>& packed) const;

 private:
  std::shared_ptr<const detail::Conv2dPlanImpl> impl_;
};

/// Whether `algorithm` can serve the problem on `device`; when not, `why` says why.
bool supports(const Device& device, Algorithm algorithm, const Conv2dDesc& desc, const Conv2dTypes& types,
              Direction direction, std::string* why = nullptr);

/// One-shot forward convolution through a cached plan (types from the views; the
/// fusion from which of bias and z are given).
void conv2d_forward(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args,
                    Activation activation = Activation::None, const Conv2dOptions& options = {});

/// One-shot backward passes through cached plans (see Conv2dArgs for which tensor is
/// read and which written; a bias view given to backward weights receives db).
void conv2d_backward_data(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args,
                          const Conv2dOptions& options = {});
void conv2d_backward_weights(Stream& stream, const Conv2dDesc& desc, const Conv2dArgs& args,
                             const Conv2dOptions& options = {});

/// Drop the one-shot plan cache (tests; also frees the plans' kernels).
void reset_conv_caches();

}  // namespace axle::dnn
