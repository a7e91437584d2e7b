// axle/program.hpp: kernel sources, programs and kernels.
//
// A Program is built from a Source on one device. Builds are cached in memory (per
// device) and on disk (see README: AXLE_CACHE_DIR). Program and Kernel are cheap
// copyable handles that keep the device alive.
//
// Thread-safety: every member of Program and Kernel may be called from any number of
// threads at once, on the same object or on copies of it, Program::kernel() of one name
// included (each thread gets a kernel of the same native handle). One Kernel may be
// launched on several streams by several threads at once: each launch binds its own
// arguments (on OpenCL, where a cl_kernel holds its arguments, binding and enqueueing
// are done under a per-kernel lock). Several threads and processes may build the same
// source into one disk cache at once (see axle/cache.hpp and Device::build). Source and
// BuildOptions are plain values: share them read-only, or give each thread its own.
// Assigning to a handle object while another thread reads that same object is a race.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "axle/device.hpp"

namespace axle {

namespace detail {
class ProgramImpl;
class KernelImpl;
}  // namespace detail

enum class SourceKind {
  Portable,  ///< Axle dialect: OpenCL C with the Axle prelude; runs on every backend
  OpenCL,    ///< native OpenCL C; OpenCL backend only
  CUDA,      ///< native CUDA C++ (NVRTC); CUDA backend only
};
const char* to_string(SourceKind k) noexcept;

/// Kernel source text and its kind.
struct Source {
  SourceKind kind = SourceKind::Portable;
  std::string text;
  std::string name = "program";  ///< used in logs and error messages

  static Source portable(std::string text, std::string name = "portable");
  static Source opencl(std::string text, std::string name = "opencl");
  static Source cuda(std::string text, std::string name = "cuda");
  /// Read a file; the kind comes from its extension (.cu -> CUDA, .cl -> Portable
  /// unless `kind` is given). Throws InvalidArgument if it cannot be read.
  static Source from_file(const std::string& path);
  static Source from_file(const std::string& path, SourceKind kind);
};

/// Options for a build. Everything here is part of the cache key.
///
/// Compiler messages name the file and line the user wrote: Source::name (quotes,
/// backslashes and control characters in it shown as '_') and, within a header, the
/// header's name and line.
struct BuildOptions {
  /// Macro definitions, in order, placed as `#define NAME VALUE` lines before the
  /// prelude and the source on every backend (not as compiler options): a value reaches
  /// the kernel exactly as written, spaces, quotes and backslashes included, and never
  /// becomes a compiler flag. An empty value defines the name as nothing. A build throws
  /// InvalidArgument naming the define when a name is not an identifier or a value holds
  /// a line break or ends in a backslash.
  std::vector<std::pair<std::string, std::string>> defines;
  /// Texts that the source may #include "name" (resolved by Axle before compiling,
  /// keeping the line numbers of the source and of each header).
  std::vector<std::pair<std::string, std::string>> headers;
  /// Extra native compiler flags, passed through to clBuildProgram or NVRTC.
  std::string flags;
  /// CUDA only: target such as "sm_90a"; empty means the device's own architecture.
  std::string cuda_arch;
  /// Look up / store the compiled binary in the disk cache.
  bool disk_cache = true;

  BuildOptions& define(std::string name, std::string value = "1") {
    defines.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  template <typename N, typename = std::enable_if_t<std::is_arithmetic_v<N>>>
  BuildOptions& define(std::string name, N value) {
    return define(std::move(name), std::to_string(value));
  }
  BuildOptions& header(std::string name, std::string text) {
    headers.emplace_back(std::move(name), std::move(text));
    return *this;
  }
};

class Kernel {
 public:
  Kernel() = default;
  explicit Kernel(std::shared_ptr<detail::KernelImpl> impl) : impl_(std::move(impl)) {}
  bool valid() const noexcept { return impl_ != nullptr; }
  const std::string& name() const;
  /// Number of parameters the kernel declares.
  unsigned num_args() const;
  /// Largest work-group this kernel can be launched with on its device.
  std::size_t max_work_group_size() const;
  const Device& device() const;
  /// cl_kernel on OpenCL, CUfunction on CUDA.
  void* native_handle() const;
  detail::KernelImpl& impl() const;

 private:
  std::shared_ptr<detail::KernelImpl> impl_;
};

class Program {
 public:
  Program() = default;
  explicit Program(std::shared_ptr<detail::ProgramImpl> impl) : impl_(std::move(impl)) {}
  bool valid() const noexcept { return impl_ != nullptr; }
  /// The kernel of that name. Throws KernelNotFound listing the names it has.
  Kernel kernel(const std::string& name) const;
  std::vector<std::string> kernel_names() const;
  const Device& device() const;
  /// True when this program was loaded from the disk cache rather than compiled.
  bool from_disk_cache() const;
  /// The hex cache key (ordered hash of source, includes, options, device, versions).
  const std::string& cache_key() const;
  /// cl_program on OpenCL, CUmodule on CUDA.
  void* native_handle() const;
  detail::ProgramImpl& impl() const;

 private:
  std::shared_ptr<detail::ProgramImpl> impl_;
};

/// The text of the Axle prelude for a backend ("opencl" or "cuda"), as prepended to
/// portable sources. Useful for reading what each macro becomes.
const std::string& portable_prelude(const std::string& backend);

}  // namespace axle
