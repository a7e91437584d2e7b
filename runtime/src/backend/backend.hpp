// Internal backend interface. Each backend (backends/<name>/) implements these
// classes; the runtime front end (runtime/src/*.cpp) validates every argument before
// calling them, so implementations may assume: sizes non-zero and in range, offsets
// in range, buffers/streams/events on this device, Range dims consistent.
//
// Implementations report failures by throwing axle::Error subclasses with
// Details{backend, status, status_name, call}. Destructors must never throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "axle/device.hpp"
#include "axle/error.hpp"
#include "axle/program.hpp"
#include "axle/stream.hpp"
#include "axle/types.hpp"

namespace axle::detail {

class DeviceImpl;

class BufferImpl {
 public:
  virtual ~BufferImpl() = default;
  virtual std::size_t size_bytes() const = 0;
  /// cl_mem / CUdeviceptr (cast to void*).
  virtual void* native() const = 0;
};

class PinnedImpl {
 public:
  virtual ~PinnedImpl() = default;
  virtual void* data() const = 0;
  virtual std::size_t size_bytes() const = 0;
};

class EventImpl {
 public:
  virtual ~EventImpl() = default;
  virtual bool recorded() const = 0;
  virtual void synchronize() = 0;
  virtual bool query() = 0;
  /// Milliseconds from `start` to this event; both recorded and on this device.
  virtual float elapsed_ms(EventImpl& start) = 0;
  virtual void* native() const = 0;
};

class KernelImpl {
 public:
  virtual ~KernelImpl() = default;
  virtual const std::string& name() const = 0;
  virtual unsigned num_args() const = 0;
  /// Size in bytes of parameter i when the backend knows it (0 when unknown).
  virtual std::size_t arg_size(unsigned i) const = 0;
  virtual std::size_t max_work_group_size() const = 0;
  virtual void* native() const = 0;
  virtual const Device& device() const = 0;
};

class ProgramImpl {
 public:
  virtual ~ProgramImpl() = default;
  /// Throws KernelNotFound (listing the kernels it has) when absent.
  virtual std::shared_ptr<KernelImpl> kernel(const std::string& name) = 0;
  virtual std::vector<std::string> kernel_names() const = 0;
  /// The compiled binary, suitable for DeviceImpl::load_binary (cubin / program binary).
  virtual std::vector<std::uint8_t> binary() const = 0;
  virtual void* native() const = 0;
  virtual const Device& device() const = 0;

  // Set by the front end.
  std::string cache_key;
  bool from_disk_cache = false;
};

/// Front-end state of a stream: its workspace (Stream::workspace). Held by the
/// StreamImpl base, so it is destroyed after the derived destructor has waited for the
/// stream's work.
struct StreamWorkspace {
  std::unordered_map<std::string, Buffer> slots;
  std::vector<Buffer> retired;  ///< outgrown buffers, freed at the next synchronize
};

class StreamImpl {
 public:
  virtual ~StreamImpl() = default;  ///< must wait for outstanding work and never throw
  virtual void copy_h2d(const void* host, BufferImpl& dst, std::size_t dst_offset, std::size_t bytes) = 0;
  virtual void copy_d2h(BufferImpl& src, std::size_t src_offset, void* host, std::size_t bytes) = 0;
  virtual void copy_d2d(BufferImpl& src, std::size_t src_offset, BufferImpl& dst, std::size_t dst_offset,
                        std::size_t bytes) = 0;
  /// pattern_size in {1,2,4,8,16,...}; offset and bytes are multiples of it.
  virtual void fill(BufferImpl& dst, std::size_t offset, std::size_t bytes, const void* pattern,
                    std::size_t pattern_size) = 0;
  /// global[i] is a multiple of local[i] when local is not empty; args.size() ==
  /// kernel.num_args(); buffer args belong to this device.
  virtual void launch(KernelImpl& kernel, const Range& global, const Range& local,
                      const std::vector<KernelArg>& args) = 0;
  /// As launch, with work-groups in clusters of `cluster` (non-empty, dividing the grid
  /// of work-groups; `local` is not empty). Backends without clusters throw Unsupported.
  virtual void launch_cluster(KernelImpl& kernel, const Range& global, const Range& local, const Range& cluster,
                              const std::vector<KernelArg>& args);
  virtual void record(EventImpl& event) = 0;
  virtual void wait(EventImpl& event) = 0;
  virtual void synchronize() = 0;
  virtual void* native() const = 0;

  // Set by the front end.
  StreamWorkspace workspace;
};

/// What a compile needs. A backend compiles `defines`, then (for Portable sources) its
/// prelude, then `text`, joined in that order.
struct CompileRequest {
  SourceKind kind = SourceKind::Portable;
  std::string name;
  std::string defines;    ///< BuildOptions::defines as `#define` lines (define_lines)
  std::string text;       ///< the source, includes expanded, with #line directives (expand_source)
  std::string options;    ///< native option string for BuildOptions::flags (no defines)
  std::string cuda_arch;  ///< CUDA only; "" = the device's own
};

// Source assembly, shared by the front end and every backend (runtime/src/program.cpp).
// Defines travel in the source text, never as compiler options, so a value reaches the
// kernel exactly as written on every backend and cannot become a compiler flag.

/// `#define NAME VALUE` lines for `options.defines`, in order (an empty value defines
/// NAME as nothing). Throws InvalidArgument naming the define when a name is not an
/// identifier or a value holds a line break or ends in a backslash.
std::string define_lines(const BuildOptions& options);
/// `#line <line> "<name>"` and a newline; characters that cannot stand in that string
/// (quotes, backslashes, control characters) are replaced by '_'.
std::string line_directive(std::size_t line, const std::string& name);
/// `text` after `#line 1 "<name>"`, with each `#include "h"` line naming one of
/// `options.headers` replaced by that header's text between #line directives, so that
/// compiler messages name the file and line the user wrote. Throws InvalidArgument
/// when includes nest deeper than 16.
std::string expand_source(const std::string& text, const std::string& name, const BuildOptions& options);

class DeviceImpl : public std::enable_shared_from_this<DeviceImpl> {
 public:
  virtual ~DeviceImpl() = default;
  virtual const DeviceInfo& info() const = 0;
  /// The public handle of this device. DeviceImpl objects are always owned by a
  /// shared_ptr (Backend::device).
  Device handle() { return Device(shared_from_this()); }

  virtual std::unique_ptr<BufferImpl> alloc(std::size_t bytes) = 0;
  virtual std::unique_ptr<BufferImpl> adopt_buffer(void* native, std::size_t bytes) = 0;
  virtual std::unique_ptr<PinnedImpl> alloc_pinned(std::size_t bytes) = 0;
  virtual std::unique_ptr<StreamImpl> create_stream() = 0;
  virtual std::unique_ptr<StreamImpl> adopt_stream(void* native) = 0;
  virtual std::unique_ptr<EventImpl> create_event() = 0;
  virtual void synchronize() = 0;

  /// The native option string for BuildOptions::flags (e.g. "-cl-std=CL1.2 -cl-kernel-arg-info"
  /// or NVRTC flags joined by '\n'); defines are not options (CompileRequest::defines).
  /// Part of the cache key.
  virtual std::string native_options(const BuildOptions& options) const = 0;
  /// Compiler/driver identity for the cache key (driver version, NVRTC version, ...).
  virtual std::string compiler_id() const = 0;
  /// Architecture string for the cache key for a request (e.g. "sm_90a").
  virtual std::string target_arch(const CompileRequest& req) const = 0;
  /// Compile. Throws BuildError with the full log; Unsupported for a source kind the
  /// backend cannot build.
  virtual std::shared_ptr<ProgramImpl> compile(const CompileRequest& req) = 0;
  /// Load a binary produced by ProgramImpl::binary(). Returns nullptr when the binary
  /// is rejected (the caller then rebuilds from source).
  virtual std::shared_ptr<ProgramImpl> load_binary(const CompileRequest& req,
                                                   const std::vector<std::uint8_t>& binary) = 0;

  /// Backend-specific native handles (context, device id) for interop.
  virtual void* native_context() const = 0;
  virtual void* native_device() const = 0;

  /// Front-end state: programs built on this device, by cache key. Programs hold
  /// their device; devices live until the process ends (the registry is never
  /// destroyed), so no destructor runs after a vendor library has shut down.
  /// `program_builds` holds the builds in progress: a thread that asks for a key being
  /// built waits for that build instead of compiling the same program again. Both maps
  /// are guarded by program_cache_mutex.
  std::mutex program_cache_mutex;
  std::unordered_map<std::string, std::shared_ptr<ProgramImpl>> program_cache;
  std::unordered_map<std::string, std::shared_future<std::shared_ptr<ProgramImpl>>> program_builds;
};

/// A backend: enumerates its devices. Created once per process by the registry.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const std::string& name() const = 0;
  virtual bool available() const = 0;
  virtual const std::string& reason() const = 0;  ///< why not available
  virtual int device_count() const = 0;
  /// The device object for index i (created once, then shared). Throws an axle::Error
  /// when it cannot be created (e.g. its context): the front end opens each device
  /// once, remembers such a failure with its text and lists that device as unavailable.
  virtual std::shared_ptr<DeviceImpl> device(int index) = 0;
};

/// Test seam: when set, the front end calls it right before it first asks
/// Backend::device(index) for a device; it may throw an axle::Error, which then stands
/// for a failed device creation (context creation) and is handled like one: that device
/// is listed as unavailable with the error's text and the others stay usable. Unset in
/// normal runs (one null-pointer test per device, once per process). A test sets it
/// before anything opens a device (in a process of its own).
using DeviceOpenHook = void (*)(const std::string& backend, int index);
void set_device_open_hook_for_testing(DeviceOpenHook hook);

/// Registration: the registry calls register_backends() once (defined in
/// backends/registry.cpp), which calls add() for each compiled-in backend.
class BackendRegistry {
 public:
  using Factory = std::unique_ptr<Backend> (*)();
  virtual ~BackendRegistry() = default;
  virtual void add(const std::string& name, Factory factory) = 0;
};
void register_backends(BackendRegistry& registry);

}  // namespace axle::detail
