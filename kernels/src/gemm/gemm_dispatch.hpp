// Internal: the GEMM dispatcher. Takes a validated, row-major GemmDesc, picks a kernel
// path and parameters (tensor cores on CUDA when available, else the packed CPU
// family or the local-memory tiled family with parameters from the tuning database)
// and enqueues it.
//
// Caches (all process-wide, guarded by one mutex, cleared by reset_dispatch_caches):
// built kernels per (device, variant), the checked parameter choice per (device,
// dtype, shape bucket). Scratch (packed panels, split-K partials) lives in the stream's
// workspace (Stream::workspace: one slot per region, freed with the stream); a product
// whose scratch would not fit one allocation is split into pieces that fit.
#pragma once

#include <string>

#include "gemm_desc.hpp"
#include "gemm_tuning.hpp"

namespace axle::blas::detail {

/// Enqueue a validated GEMM on `stream`.
void run_gemm(Stream& stream, const GemmDesc& desc);

/// Enqueue with explicit parameters (no tensor cores, no database, no check).
/// Throws InvalidArgument when `params` are structurally invalid for the device.
void run_gemm_with(Stream& stream, const GemmDesc& desc, const GemmParams& params);

/// The parameters run_gemm would use (after the first-use correctness check).
GemmParams chosen_params(const Device& device, ElemType dtype, std::size_t m, std::size_t n, std::size_t k);

/// Run a small GEMM with `params` on `device` and compare it with a host reference.
/// Returns "" when it matches, else what went wrong.
std::string check_params(const Device& device, const GemmParams& params, ElemType dtype);

void reset_dispatch_caches();

/// Testing: cap every scratch region at `scratch_bytes` (0: the device's largest
/// allocation only) and the groups along grid dimension y of one launch at
/// `max_groups_y` (0: 65535, CUDA's limit), so that tests reach the split paths with
/// small operands.
void set_limits_for_testing(std::size_t scratch_bytes, std::size_t max_groups_y);
/// Testing: plan as if the device had `units` compute units (0: the device's own), so
/// that the split-K and work-division choices are exercised for other devices' sizes.
void set_compute_units_for_testing(std::size_t units);
/// Testing: the largest scratch region requested since the last reset, in bytes.
std::size_t scratch_high_water_bytes(bool reset = false);

}  // namespace axle::blas::detail
