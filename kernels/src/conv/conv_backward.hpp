// Internal: the backward passes' algorithms (conv_backward.cpp).
#pragma once

#include <memory>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

/// The direct algorithm for Direction::BackwardData or BackwardWeights.
std::unique_ptr<ConvAlgo> make_direct_backward(const ConvProblem& pb);
/// 1x1 stride-1 layers through blas::gemm, for either backward direction.
std::unique_ptr<ConvAlgo> make_gemm1x1_backward(const ConvProblem& pb);

}  // namespace axle::dnn::detail
