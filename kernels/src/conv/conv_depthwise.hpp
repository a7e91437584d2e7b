// Internal: the Depthwise algorithm (conv_depthwise.cpp, kernels/src/cl/conv_dw.cl).
#pragma once

#include <memory>
#include <string>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

/// Why Algorithm::Depthwise cannot serve `pb` ("" when it can): groups == C (K any
/// multiple of C), filters of at most 64 taps; backward data at stride 1 with a channel
/// multiplier of 1 and padding within the dilated filter.
std::string depthwise_unsupported_reason(const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_depthwise(const ConvProblem& pb);

}  // namespace axle::dnn::detail
