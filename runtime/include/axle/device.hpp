// axle/device.hpp: backends, devices and choosing one.
//
// A Device is a cheap, copyable handle to a device that stays alive as long as any
// handle, buffer, stream or program made from it does.
//
// Thread-safety: every function here may be called from any number of threads at once,
// on the same Device or on different ones: backends(), devices(), select_device() and
// default_device() (each device is opened once per process, by whichever thread asks
// first, while the others wait), and Device::info, alloc*, create_stream, create_event,
// build and synchronize. Concurrent builds of the same source and options on one device
// compile once: the others wait for that build and get the same Program (if it fails,
// each tries again and throws its own error). synchronize() waits for the work enqueued
// on every stream of the device before the call; work other threads enqueue meanwhile
// may or may not be included. Assigning to a Device handle while another thread reads
// that same handle object is a data race, as for any std::shared_ptr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "axle/types.hpp"

namespace axle {

namespace detail {
class DeviceImpl;
}

class Buffer;
template <typename T>
class PinnedBuffer;
class Stream;
class Event;
class Program;
struct Source;
struct BuildOptions;

/// Properties that mean the same on every backend.
struct DeviceInfo {
  std::string backend;         ///< "opencl" or "cuda"
  int index = 0;               ///< index within the backend (as in "opencl:1")
  std::string name;            ///< e.g. "NVIDIA H100 80GB HBM3"
  std::string vendor;          ///< e.g. "NVIDIA Corporation", "The pocl project"
  std::string driver_version;  ///< driver version string
  std::string version;         ///< OpenCL device version, or "CUDA 12.4" style
  std::string architecture;    ///< "sm_90" on CUDA; device name / PoCL target on OpenCL
  std::string platform;        ///< OpenCL platform name, "" on CUDA
  DeviceType type = DeviceType::Other;
  unsigned compute_units = 0;  ///< SMs on CUDA, compute units on OpenCL
  unsigned max_clock_mhz = 0;
  std::uint64_t global_mem_bytes = 0;
  std::uint64_t max_alloc_bytes = 0;  ///< largest single allocation
  std::uint64_t local_mem_bytes = 0;  ///< local (shared) memory per work-group
  std::uint64_t cache_bytes = 0;      ///< global memory cache (L2 on CUDA; the last level on CPUs), 0 if unknown
  std::size_t max_work_group_size = 0;
  std::size_t max_work_item_sizes[3] = {0, 0, 0};
  unsigned sub_group_size = 0;  ///< warp size on CUDA, 0 when unknown
  unsigned preferred_vector_width_float = 1;
  bool fp16 = false;  ///< native half arithmetic
  bool fp64 = false;
  bool unified_memory = false;  ///< host and device share memory
};

/// One compiled-in backend and whether it can serve here.
struct BackendStatus {
  std::string name;    ///< "opencl", "cuda"
  bool available = false;
  std::string reason;  ///< why not, when !available ("libcuda.so.1: cannot open shared object file ...")
  int device_count = 0;  ///< devices that can serve (listed by devices())
  /// One line per device the backend found but cannot open, with the reason
  /// ("opencl:1: clCreateContext failed: ..."). Such a device is left out of devices();
  /// the others stay usable. A backend none of whose devices opens is unavailable.
  std::vector<std::string> failed_devices;
};

class Device {
 public:
  Device() = default;  ///< an empty handle; every call but valid() throws
  explicit Device(std::shared_ptr<detail::DeviceImpl> impl);

  bool valid() const noexcept { return impl_ != nullptr; }
  const DeviceInfo& info() const;
  const std::string& backend() const { return info().backend; }
  const std::string& name() const { return info().name; }
  /// "opencl:0" style identifier that AXLE_DEVICE accepts.
  std::string id() const;

  /// Allocate `bytes` of device memory (uninitialised). Throws InvalidArgument for 0
  /// or more than max_alloc_bytes, OutOfMemory when the device has no room.
  Buffer alloc_bytes(std::size_t bytes) const;
  template <typename T>
  Buffer alloc(std::size_t count) const;

  /// Page-locked host memory usable for fast, truly asynchronous copies.
  template <typename T>
  PinnedBuffer<T> alloc_pinned(std::size_t count) const;

  Stream create_stream() const;
  Event create_event() const;

  /// Build a program (from the in-memory or disk cache when possible).
  Program build(const Source& source) const;
  Program build(const Source& source, const BuildOptions& options) const;

  /// Wait for all work on every stream of this device.
  void synchronize() const;

  bool operator==(const Device& o) const noexcept { return impl_ == o.impl_; }
  bool operator!=(const Device& o) const noexcept { return impl_ != o.impl_; }

  detail::DeviceImpl& impl() const;
  const std::shared_ptr<detail::DeviceImpl>& shared_impl() const noexcept { return impl_; }

 private:
  std::shared_ptr<detail::DeviceImpl> impl_;
};

/// Every backend compiled into this build, available or not, with the reason.
std::vector<BackendStatus> backends();

/// Every device of every available backend, in default-preference order
/// (CUDA GPUs, OpenCL GPUs, other OpenCL devices).
std::vector<Device> devices();

/// Devices of one backend ("opencl" / "cuda"); empty when it is unavailable.
std::vector<Device> devices(std::string_view backend);

/// Pick a device from a spec (case-insensitive, surrounding blanks ignored):
///   "cuda", "opencl"             the best device of that backend
///   "opencl:1"                   the device with that index (decimal, from 0)
///   "opencl:cpu", "opencl:gpu", "opencl:accelerator"   the first of that type
///   "opencl:NAME", "opencl:name=NAME"   the first whose name contains NAME; NAME is
///                                everything after the first ':' and may contain ':'
///   "gpu", "cpu", "accelerator"  the first of that type in the default order
///   "NAME", "name=NAME"          the first device (default order) whose name contains
///                                NAME; use name= for a NAME that is a number or a type word
/// A spec that is not of these forms (empty, a bare number such as "1", ":1",
/// "opencl:", "opencl:-1", "opencl:1:2", "name=") throws InvalidArgument naming it and
/// why. A well-formed spec that no device matches throws DeviceUnavailable listing
/// every backend and why it was rejected.
Device select_device(std::string_view spec);

/// The default device. Precedence: `spec` when non-empty; AXLE_DEVICE; the config
/// file's `device` (then its `fallback` list); the default order. A device asked for
/// explicitly that cannot serve throws DeviceUnavailable (a malformed spec, from any of
/// these sources, InvalidArgument); there is no silent fallback unless the config names one.
Device default_device(std::string_view spec = {});

}  // namespace axle
