// axle/tuning.hpp: searching kernel parameters on the device in use (`axle tune`).
//
// The kernel library picks parameters per device and shape from a tuning database:
// the user file (axle::tuning_file(); written by these calls), then the shipped
// database (ignored when AXLE_TUNING_SHIPPED=0), then built-in defaults derived from
// the device's properties. Entries are keyed vendor -> architecture -> device name ->
// default; the most specific match wins.
//
// tune_gemm and tune_conv check every candidate against a reference before timing
// it, time the candidates in interleaved rounds (robust on a shared machine), and
// merge the winners into the output file, replacing the entries they supersede (same
// device and the same key fields) and keeping every other entry, of every operation.
// Long runs report progress through the callback.
//
// Thread-safety: a tuning run may proceed while other threads use the library (they
// pick up the new parameters for shapes whose plans they make after it writes its file),
// but it times kernels on the device, so other work then distorts its measurements.
// Concurrent runs in one process write their files one at a time, each keeping the
// other's entries; runs in several processes writing one file may lose each other's
// entries (the file stays valid). `progress` is called on the calling thread.
// default_conv_layers() and conv_class() are pure.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "axle/device.hpp"
#include "axle/dnn.hpp"

namespace axle::tuning {

/// Called as the search goes: `done` of `total` steps, and what is being done.
using Progress = std::function<void(std::size_t done, std::size_t total, const std::string& what)>;

/// What a tuning run found: one line per candidate and per winner, for people, and the
/// entries written (JSON text of the file format).
struct TuneReport {
  std::vector<std::string> lines;
  std::string entries_json;
};

struct GemmTuneRequest {
  std::string dtype = "f32";  ///< f32, f16, bf16, f64
  /// m, n, k of the shapes to time; their buckets (small, skinny, large) get entries.
  std::vector<std::array<std::size_t, 3>> sizes{{256, 256, 256}, {1000, 1000, 1000}, {2048, 2048, 2048},
                                                {4096, 64, 4096}, {64, 4096, 4096}};
  bool quick = false;  ///< fewer candidates and shorter timing
  /// Time at most this many candidates (0: all), in the order the search lists them.
  std::size_t max_candidates = 0;
};

/// Search GEMM kernel parameters on `device`; write the winner per shape bucket into
/// `output` (default: axle::tuning_file()). Throws InvalidArgument for a bad request,
/// Unsupported for a dtype the device cannot run, Error when no candidate passes its
/// check or the file cannot be written.
TuneReport tune_gemm(const Device& device, const GemmTuneRequest& request, const std::string& output = "",
                     const Progress& progress = {});

struct ConvTuneRequest {
  /// Layers to time (each gives an entry for its class: "3x3", "1x1", "dw", "first"
  /// (C / groups <= 4) or "other", and its layout and dtype).
  std::vector<dnn::Conv2dDesc> layers;
  dnn::DataType dtype = dnn::DataType::F32;
  bool quick = false;
};

/// The ResNet-50 and MobileNet layers `axle tune conv` uses by default (batch `n`, `layout`).
std::vector<dnn::Conv2dDesc> default_conv_layers(std::size_t n, dnn::TensorLayout layout);
/// The tuning class of a layer ("3x3", "1x1", "dw", "first", "other").
std::string conv_class(const dnn::Conv2dDesc& desc);

/// Time every algorithm that serves each layer (each checked against the direct
/// algorithm first) and write the fastest per (class, layout, dtype) into `output`.
TuneReport tune_conv(const Device& device, const ConvTuneRequest& request, const std::string& output = "",
                     const Progress& progress = {});

}  // namespace axle::tuning
