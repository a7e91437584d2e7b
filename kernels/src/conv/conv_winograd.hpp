// Internal: the Winograd F(2x2, 3x3) algorithm (conv_winograd.cpp).
#pragma once

#include <memory>
#include <string>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

/// Why Winograd cannot serve `pb` ("" when it can).
std::string winograd_unsupported_reason(const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_winograd(const ConvProblem& pb);

}  // namespace axle::dnn::detail
