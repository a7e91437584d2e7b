// Internal: the direct algorithm's depthwise kernel (conv_depthwise.cpp).
#pragma once

#include <memory>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

/// Whether the vectorised depthwise kernel serves `pb` (forward, NHWC, groups == C,
/// f32 x and w, filters up to 5x5, a CPU device; the direct kernel serves the rest).
bool depthwise_kernel_serves(const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_depthwise(const ConvProblem& pb);

}  // namespace axle::dnn::detail
