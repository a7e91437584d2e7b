// Internal: the backward passes' algorithms (conv_backward.cpp).
#pragma once

#include <memory>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

/// The direct algorithm for Direction::BackwardData or BackwardWeights.
std::unique_ptr<ConvAlgo> make_direct_backward(const ConvProblem& pb);
/// Backward data of a stride-1 layer as the forward algorithm `algo` (ImplicitGemm or
/// Winograd) over dy with flipped, transposed filters; "" when it serves.
std::string bwd_data_via_forward_reason(Algorithm algo, const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_bwd_data_via_forward(const ConvProblem& pb, Algorithm algo);
/// Whether that forward pass (ImplicitGemm) reads the filters in place (no flip pass).
bool bwd_data_reads_filters_in_place(const ConvProblem& pb);
/// The weight gradient as one gather and GEMM per filter tap (Algorithm::TapGemm).
std::string tap_gemm_reason(const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_tap_gemm(const ConvProblem& pb);
/// The weight gradient as a register-blocked implicit GEMM over x and dy with the
/// reduction split across work-items and summed in a fixed order
/// (Algorithm::ImplicitGemm for bwd_weights); "" when it serves.
std::string igemm_weights_reason(const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_igemm_weights(const ConvProblem& pb);
/// 1x1 stride-1 layers through blas::gemm, for either backward direction.
std::unique_ptr<ConvAlgo> make_gemm1x1_backward(const ConvProblem& pb);

}  // namespace axle::dnn::detail
