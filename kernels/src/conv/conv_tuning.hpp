// Internal: convolution tuning entries ("conv" in the tuning files).
//
//   {"vendor": "*", "architecture": "*", "device": "*", "type": "cpu", "dtype": "f32",
//    "layout": "NHWC", "class": "3x3", "direction": "fwd", "algorithm": "winograd",
//    "gflops": 0, "note": ""}
//
// An entry picks an algorithm for a class of layers (see axle::tuning::conv_class);
// "*" / "any" fields match anything. The most specific matching entry of the user
// file wins, then of the shipped database; an entry whose algorithm cannot serve the
// layer (say, Winograd for a strided 3x3) is passed over. Entries carry no kernel
// parameters, and every algorithm is covered by the test suite on every shape it
// claims, so no per-entry check is needed.
#pragma once

#include <optional>
#include <string>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

struct TunedChoice {
  Algorithm algorithm;
  std::string origin;  ///< file and entry fields
};

/// The tuned algorithm for `pb` (nullopt when no entry matches and serves).
std::optional<TunedChoice> tuned_algorithm(const ConvProblem& pb);

/// Algorithm from its to_string name (nullopt when unknown).
std::optional<Algorithm> algorithm_from_name(const std::string& name);

}  // namespace axle::dnn::detail
