// NVRTC compilation for the CUDA backend, usable without a driver or a device.
//
// The CUDA backend compiles through cuda::compile(); tests call
// nvrtc_compile_for_test(), which runs the same steps (prelude, options, arch choice)
// with no device, so every kernel in the tree can be checked on a machine with the
// CUDA toolkit and no GPU.
//
// Source handling (source_text): BuildOptions::defines as `#define NAME VALUE` lines
// (define_lines in backend.hpp; never -D options, so values with spaces, quotes or
// backslashes arrive as written), then
//   SourceKind::Portable  the CUDA prelude (axle_cuda.h), then the source;
//   SourceKind::CUDA      the source;
//   SourceKind::OpenCL    rejected (Unsupported from the backend; ok=false here).
// The source comes from expand_source: `#line 1 "<name>"` and headers expanded between
// #line directives, so NVRTC's messages point at the user's own file and line.
// Options (native_options): one token per line: -default-device, -std=c++17, then
// BuildOptions::flags split on white space. OpenCL's
// -cl-fast-relaxed-math becomes --use_fast_math and -cl-mad-enable becomes --fmad=true;
// other -cl-* flags are dropped (they have no NVRTC meaning). The architecture flag is
// added per compile: --gpu-architecture=sm_XY gives a CUBIN; when NVRTC is older than
// the device, the newest compute_XY it knows gives PTX that the driver JIT-compiles.
//
// Thread-safety: all functions are safe to call concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "axle/program.hpp"

namespace axle::detail {

struct NvrtcResult {
  bool ok = false;
  std::string log;                   ///< NVRTC's full program log (warnings as well)
  std::string error;                 ///< when !ok: what failed (compile error, NVRTC missing, bad arch)
  std::string call;                  ///< when !ok: the NVRTC call that failed ("" when none ran)
  int status = 0;                    ///< its nvrtcResult
  std::vector<std::uint8_t> binary;  ///< CUBIN, or NUL-terminated PTX when !is_cubin
  bool is_cubin = false;
  std::string arch;     ///< what it was compiled for: "sm_90a", or "compute_120" for PTX
  std::string options;  ///< every option passed to NVRTC, one per line
  std::string text;     ///< nvrtc_compile_for_test only: the complete source text compiled
};

/// Compile `text` with NVRTC for `arch` ("sm_80", "sm_90a", ...; "" means sm_80) with no
/// device involved, assembled as the CUDA backend assembles a build (see above).
/// BuildOptions::headers are expanded in place and also handed to NVRTC as include-able
/// headers.
NvrtcResult nvrtc_compile_for_test(SourceKind kind, const std::string& text, const BuildOptions& options,
                                   const std::string& arch);

/// True when NVRTC could be loaded.
bool nvrtc_available();
/// "NVRTC 13.0 (/usr/local/cuda/lib64/libnvrtc.so.13), targets sm_75..sm_121", or why
/// NVRTC could not be loaded.
std::string nvrtc_status();

namespace cuda {

/// The option lines for `options` (see above), without the architecture.
std::string native_options(const BuildOptions& options);

/// The text handed to NVRTC: `defines` (define_lines), the prelude for Portable, then
/// `text` (expand_source).
std::string source_text(SourceKind kind, const std::string& defines, const std::string& text);

/// What to compile for: `requested` when given, else sm_<major><minor>; falls back to
/// the newest compute_XY NVRTC knows when it cannot target the device (PTX).
std::string choose_arch(const std::string& requested, int cc_major, int cc_minor);

/// Compile a prepared text (see source_text) with option lines (see native_options)
/// for `arch` (see choose_arch). `headers` are passed to nvrtcCreateProgram.
NvrtcResult compile(const std::string& name, const std::string& text, const std::string& option_lines,
                    const std::string& arch,
                    const std::vector<std::pair<std::string, std::string>>& headers = {});

}  // namespace cuda
}  // namespace axle::detail
