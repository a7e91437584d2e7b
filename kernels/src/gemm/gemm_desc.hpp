// Internal: one GEMM call after validation, normalised to row-major storage.
//
// The public entry points (axle/blas.hpp) validate their arguments, turn a
// column-major call into the equivalent row-major one (C^T = B^T * A^T), and hand a
// GemmDesc to the dispatcher, which picks a kernel path (portable tiled, small/skinny,
// split-K, or a CUDA tensor-core path) and launches it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "axle/axle.hpp"

namespace axle::blas::detail {

enum class ElemType { F32, F16, BF16, F64 };
enum class Act { None, ReLU, GELU };
enum class BiasKind { None, PerRow, PerCol };  // per row of C (m values) / per column (n values)

inline std::size_t elem_size(ElemType t) { return t == ElemType::F64 ? 8 : (t == ElemType::F32 ? 4 : 2); }

/// C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias), all row-major.
/// op(A) is m x k, op(B) is k x n, C is m x n. trans_a means A is stored k x m
/// (element (i,p) of op(A) at A[p*lda + i]); likewise trans_b (B stored n x k).
struct GemmDesc {
  std::size_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  ElemType a_type = ElemType::F32, b_type = ElemType::F32, c_type = ElemType::F32;
  double alpha = 1.0, beta = 0.0;  // beta == 0: C is never read

  const Buffer* a = nullptr;  // base buffers; offsets in elements of their type
  const Buffer* b = nullptr;
  const Buffer* c = nullptr;
  std::size_t a_off = 0, b_off = 0, c_off = 0;
  std::size_t lda = 0, ldb = 0, ldc = 0;

  std::size_t batch = 1;  // strided batch; stride 0 = same matrix for every batch
  std::size_t stride_a = 0, stride_b = 0, stride_c = 0;

  BiasKind bias_kind = BiasKind::None;
  const Buffer* bias = nullptr;  // f32 values (f64 when c_type is F64)
  std::size_t bias_off = 0;
  Act act = Act::None;

  bool allow_tf32 = false;  // f32 inputs may use TF32 tensor cores (CUDA, opt-in)
};

}  // namespace axle::blas::detail
