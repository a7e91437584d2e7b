// axle/blas.hpp: dense linear algebra on Axle streams (GEMM).
//
//   C = act(alpha * op(A) * op(B) + beta * C + bias)
//
// op(A) is m x k, op(B) is k x n, C is m x n, stored row- or column-major with
// leading dimensions lda/ldb/ldc (BLAS conventions). Semantics:
//  * beta == 0 never reads C (NaN or garbage in C does not reach the result);
//  * alpha == 0 or k == 0 only scales C (beta * C), then applies the epilogue;
//  * m == 0 or n == 0 does nothing.
// Element types: float; axle::half_t and axle::bfloat16_t storage with float
// accumulation (C may be float, half_t or bfloat16_t: the output conversion is part
// of the epilogue); double on devices with DeviceInfo::fp64 (all operands double).
// A, B and C may differ in type among float / half_t / bfloat16_t.
//
// Every size, leading dimension, stride and view is validated before anything is
// enqueued: an operand that does not fit its view is an axle::OutOfRange, any other
// bad argument an axle::InvalidArgument, a type the device cannot run an
// axle::Unsupported; messages name the operand and the sizes. Limits: m, n and k at
// most 2^30 (blas::kMaxGemmDim), leading dimensions and the batch count at most
// 2^31 - 1; offsets and strides are 64-bit.
//
// All calls are asynchronous on `stream` (like a kernel launch). The views must stay
// alive until the work completes. Scratch (packed
// operands, split-K partials) comes from the stream's workspace (Stream::workspace),
// reused by later calls on that stream and freed with it; a product whose scratch
// would exceed the device's largest allocation is computed in pieces that fit.
//
// Thread-safety: every function here may be called from any number of threads at once,
// on distinct streams of one device or of several; the caches of kernels and chosen
// parameters they share are guarded (concurrent first calls of one shape compile its
// kernels once). One stream must not be used by two threads at once
// (axle/stream.hpp): calls on it use its workspace. reset_gemm_caches() may run while
// other threads make GEMM calls: calls already under way finish with the kernels they
// had, later calls build again.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "axle/buffer.hpp"
#include "axle/stream.hpp"
#include "axle/types.hpp"

namespace axle {

/// Storage order of a matrix.
enum class Layout { RowMajor, ColMajor };
/// Operation applied to an operand: none or transpose.
enum class Op { N, T };

namespace blas {

/// The largest m, n or k a GEMM accepts (the kernels index within a matrix in 32 bits).
inline constexpr std::size_t kMaxGemmDim = std::size_t{1} << 30;

/// Activation applied last in the epilogue. GELU is the exact (erf) form.
enum class Activation { None, ReLU, GELU };
/// Bias added before the activation: one value per row of C (m values) or per
/// column of C (n values), in the caller's layout.
enum class BiasMode { None, PerRow, PerCol };

/// The fused epilogue: y = act(alpha * op(A) op(B) + beta * C + bias), in one launch.
struct Epilogue {
  Activation activation = Activation::None;
  BiasMode bias_mode = BiasMode::None;
  BufferView<float> bias;       ///< bias values for float / 16-bit GEMMs
  BufferView<double> bias_f64;  ///< bias values for double GEMMs

  static Epilogue act(Activation a) {
    Epilogue e;
    e.activation = a;
    return e;
  }
  static Epilogue with_bias(BiasMode mode, BufferView<float> values, Activation a = Activation::None) {
    Epilogue e;
    e.activation = a;
    e.bias_mode = mode;
    e.bias = values;
    return e;
  }
  static Epilogue with_bias(BiasMode mode, BufferView<double> values, Activation a = Activation::None) {
    Epilogue e;
    e.activation = a;
    e.bias_mode = mode;
    e.bias_f64 = values;
    return e;
  }
};

/// Per-call options.
struct GemmOptions {
  /// float GEMMs may use TF32 tensor cores (CUDA devices that have them). Off by
  /// default: results then differ from float accumulation in the 10th mantissa bit.
  bool allow_tf32 = false;
};

namespace detail {
/// Element type code of the internal interface (0 f32, 1 f16, 2 bf16, 3 f64).
template <typename T>
struct ElemCode;
template <>
struct ElemCode<float> {
  static constexpr int value = 0;
};
template <>
struct ElemCode<half_t> {
  static constexpr int value = 1;
};
template <>
struct ElemCode<bfloat16_t> {
  static constexpr int value = 2;
};
template <>
struct ElemCode<double> {
  static constexpr int value = 3;
};

/// One operand, type-erased.
struct OperandRef {
  const Buffer* buffer = nullptr;
  std::size_t offset = 0;  ///< elements
  std::size_t size = 0;    ///< elements in the view
  int type = 0;            ///< ElemCode
};
template <typename T>
OperandRef operand(const BufferView<T>& v) {
  OperandRef r;
  r.buffer = v.valid() ? &v.buffer() : nullptr;
  r.offset = v.offset();
  r.size = v.size();
  r.type = ElemCode<T>::value;
  return r;
}

struct GemmCall {
  Layout layout = Layout::RowMajor;
  Op trans_a = Op::N, trans_b = Op::N;
  std::size_t m = 0, n = 0, k = 0;
  double alpha = 1.0, beta = 0.0;
  OperandRef a, b, c;
  std::size_t lda = 0, ldb = 0, ldc = 0;
  std::size_t batch = 1;
  std::size_t stride_a = 0, stride_b = 0, stride_c = 0;
};

/// Validates and enqueues (defined in the library).
void gemm_entry(Stream& stream, const GemmCall& call, const Epilogue& epilogue, const GemmOptions& options);
}  // namespace detail

/// `batch` GEMMs; matrix i of each operand starts stride_x elements after matrix
/// i - 1 (a stride of 0 reuses one A or B for every batch; C strides must not make
/// outputs overlap).
template <typename TA, typename TB, typename TC>
void gemm_strided_batched(Stream& stream, Layout layout, Op trans_a, Op trans_b, std::size_t m, std::size_t n,
                          std::size_t k, double alpha, const BufferView<TA>& a, std::size_t lda,
                          std::size_t stride_a, const BufferView<TB>& b, std::size_t ldb, std::size_t stride_b,
                          double beta, const BufferView<TC>& c, std::size_t ldc, std::size_t stride_c,
                          std::size_t batch, const Epilogue& epilogue = {}, const GemmOptions& options = {}) {
  detail::GemmCall call;
  call.layout = layout;
  call.trans_a = trans_a;
  call.trans_b = trans_b;
  call.m = m;
  call.n = n;
  call.k = k;
  call.alpha = alpha;
  call.beta = beta;
  call.a = detail::operand(a);
  call.b = detail::operand(b);
  call.c = detail::operand(c);
  call.lda = lda;
  call.ldb = ldb;
  call.ldc = ldc;
  call.batch = batch;
  call.stride_a = stride_a;
  call.stride_b = stride_b;
  call.stride_c = stride_c;
  detail::gemm_entry(stream, call, epilogue, options);
}

/// C = act(alpha * op(A) * op(B) + beta * C + bias) for one matrix.
template <typename TA, typename TB, typename TC>
void gemm(Stream& stream, Layout layout, Op trans_a, Op trans_b, std::size_t m, std::size_t n, std::size_t k,
          double alpha, const BufferView<TA>& a, std::size_t lda, const BufferView<TB>& b, std::size_t ldb,
          double beta, const BufferView<TC>& c, std::size_t ldc, const Epilogue& epilogue = {},
          const GemmOptions& options = {}) {
  gemm_strided_batched(stream, layout, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1,
                       epilogue, options);
}

/// One GEMM per entry of the arrays (all of the same shape); the arrays must have the
/// same length. Every entry is validated before the first one is enqueued.
template <typename TA, typename TB, typename TC>
void gemm_batched(Stream& stream, Layout layout, Op trans_a, Op trans_b, std::size_t m, std::size_t n,
                  std::size_t k, double alpha, const std::vector<BufferView<TA>>& a, std::size_t lda,
                  const std::vector<BufferView<TB>>& b, std::size_t ldb, double beta,
                  const std::vector<BufferView<TC>>& c, std::size_t ldc, const Epilogue& epilogue = {},
                  const GemmOptions& options = {});

namespace detail {
void gemm_batched_entry(Stream& stream, const std::vector<GemmCall>& calls, const Epilogue& epilogue,
                        const GemmOptions& options);
}

template <typename TA, typename TB, typename TC>
void gemm_batched(Stream& stream, Layout layout, Op trans_a, Op trans_b, std::size_t m, std::size_t n,
                  std::size_t k, double alpha, const std::vector<BufferView<TA>>& a, std::size_t lda,
                  const std::vector<BufferView<TB>>& b, std::size_t ldb, double beta,
                  const std::vector<BufferView<TC>>& c, std::size_t ldc, const Epilogue& epilogue,
                  const GemmOptions& options) {
  if (a.size() != b.size() || a.size() != c.size())
    throw InvalidArgument("gemm_batched: the A, B and C arrays differ in length (" + std::to_string(a.size()) +
                          ", " + std::to_string(b.size()) + ", " + std::to_string(c.size()) + ")");
  std::vector<detail::GemmCall> calls(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    detail::GemmCall& call = calls[i];
    call.layout = layout;
    call.trans_a = trans_a;
    call.trans_b = trans_b;
    call.m = m;
    call.n = n;
    call.k = k;
    call.alpha = alpha;
    call.beta = beta;
    call.a = detail::operand(a[i]);
    call.b = detail::operand(b[i]);
    call.c = detail::operand(c[i]);
    call.lda = lda;
    call.ldb = ldb;
    call.ldc = ldc;
  }
  detail::gemm_batched_entry(stream, calls, epilogue, options);
}

/// Tuning: parameters of the GEMM kernels for the device of `stream` and a shape, as
/// the dispatcher would use them ("MR=6 VW=16 ..."), and where they came from.
std::string describe_gemm_plan(const Device& device, int dtype, std::size_t m, std::size_t n, std::size_t k);

/// Forget cached kernels, scratch buffers and the loaded tuning database (tests, and
/// after writing a new tuning file).
void reset_gemm_caches();

}  // namespace blas
}  // namespace axle
