// axle/stream.hpp: in-order queues of copies, fills and kernel launches.
//
// Work on one Stream runs in the order it was enqueued; work on different streams
// may overlap unless ordered with events. Every enqueue is asynchronous: host memory
// handed to a copy must stay valid (and, for a device-to-host copy, unread) until the
// stream is synchronized or an event recorded after the copy has completed.
//
// A Stream is move-only and owns its native queue unless made by Stream::adopt.
//
// Thread-safety: distinct streams, of one device or of several, may be used from
// distinct threads at once without any locking. One Stream is not internally locked:
// its enqueuing members (copy, fill, launch, record, wait, synchronize, workspace,
// release_workspace) and the library calls that enqueue on it (axle::blas, axle::dnn)
// must not run in two threads at once; serialize them (a mutex per stream), or, better,
// give each thread its own stream and order them with events. Enqueue order is then the
// order the caller's serialization gives. valid(), device() and native_handle() may be
// called from any thread while another uses the stream. Moving or destroying a stream
// must not overlap any other use of it. Events recorded on a stream may be queried and
// waited on from other threads (axle/event.hpp).
//
// A stream also owns its workspace (Stream::workspace): device scratch memory that
// library calls enqueued on it (GEMM packing, convolution workspaces) reuse from call
// to call. It is freed when the stream is destroyed, after its work has finished.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "axle/buffer.hpp"
#include "axle/event.hpp"
#include "axle/program.hpp"

namespace axle {

namespace detail {
class StreamImpl;
}

/// A work-group local (CUDA: shared) memory argument of `bytes` bytes.
struct LocalMem {
  std::size_t bytes = 0;
};
/// `count` elements of T of local memory; throws InvalidArgument when the byte size
/// overflows size_t.
template <typename T>
LocalMem local(std::size_t count) {
  if (count > static_cast<std::size_t>(-1) / sizeof(T))
    throw InvalidArgument("axle::local: " + std::to_string(count) + " elements of " + std::to_string(sizeof(T)) +
                          " bytes overflow size_t");
  return LocalMem{count * sizeof(T)};
}

/// One bound kernel argument (by value).
struct KernelArg {
  enum class Kind { Scalar, Buffer, Local };
  /// 128: room for a CUDA tensor map (axle::cuda::TensorMap) passed by value.
  static constexpr std::size_t kMaxScalarBytes = 128;
  /// view_bytes of a whole-buffer binding: from offset_bytes to the end of the buffer.
  static constexpr std::size_t kWhole = static_cast<std::size_t>(-1);

  Kind kind = Kind::Scalar;
  std::size_t size = 0;  ///< scalar: bytes; local: bytes requested
  unsigned char value[kMaxScalarBytes] = {};
  const Buffer* buffer = nullptr;  ///< Kind::Buffer
  std::size_t offset_bytes = 0;    ///< Kind::Buffer: view offset
  /// Kind::Buffer: view size in bytes; kWhole = to the end of the buffer. A view of 0
  /// bytes reaches the kernel as a null pointer on every backend (it must not be
  /// dereferenced). OpenCL binds a view at a non-zero offset as a sub-buffer (its
  /// offset aligned to the device's base-address alignment), and then binds every
  /// other view of the same buffer in that launch as a sub-buffer too.
  std::size_t view_bytes = kWhole;

  template <typename T>
  static KernelArg scalar(const T& v) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= kMaxScalarBytes,
                  "kernel scalar arguments must be trivially copyable and at most 128 bytes");
    KernelArg a;
    a.kind = Kind::Scalar;
    a.size = sizeof(T);
    std::memcpy(a.value, &v, sizeof(T));
    return a;
  }
  static KernelArg buffer_arg(const Buffer& b, std::size_t offset_bytes, std::size_t view_bytes = kWhole) {
    KernelArg a;
    a.kind = Kind::Buffer;
    a.buffer = &b;
    a.offset_bytes = offset_bytes;
    a.view_bytes = view_bytes;
    return a;
  }
  static KernelArg local_arg(std::size_t bytes) {
    KernelArg a;
    a.kind = Kind::Local;
    a.size = bytes;
    return a;
  }
};

namespace detail {
inline KernelArg to_arg(const Buffer& b) { return KernelArg::buffer_arg(b, 0); }
inline KernelArg to_arg(Buffer& b) { return KernelArg::buffer_arg(b, 0); }
template <typename T>
KernelArg to_arg(const BufferView<T>& v) {
  return KernelArg::buffer_arg(v.buffer(), v.offset_bytes(), v.size_bytes());
}
inline KernelArg to_arg(const LocalMem& l) { return KernelArg::local_arg(l.bytes); }
inline KernelArg to_arg(const KernelArg& a) { return a; }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T> || std::is_enum_v<T> ||
                                                  (std::is_trivially_copyable_v<T> && std::is_class_v<T>)>>
KernelArg to_arg(const T& v) {
  return KernelArg::scalar(v);
}
}  // namespace detail

/// The shape of a launch: its work-items, work-groups and, on CUDA devices of compute
/// capability 9.0 or newer, thread-block clusters.
struct LaunchShape {
  Range global;  ///< work-items in each dimension
  Range local;   ///< work-group shape; empty: the backend chooses (not with a cluster)
  /// Work-groups per cluster in each dimension; empty: no cluster. The work-groups of a
  /// cluster run at the same time on one GPU processing cluster and can reach each
  /// other's shared memory (distributed shared memory, cluster barriers, TMA multicast).
  /// The grid of work-groups (global / local) must be a multiple of it in every
  /// dimension. Up to 8 work-groups per cluster are portable; up to 16 where the device
  /// allows it for the kernel. A kernel compiled with __cluster_dims__ takes only that
  /// shape. Other backends throw Unsupported. The launch throws InvalidArgument when no
  /// cluster of this shape fits on the device with the kernel's threads and shared memory
  /// (axle::cuda::max_active_clusters tells beforehand).
  Range cluster;
};

class Stream {
 public:
  Stream() noexcept;
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();  ///< waits for outstanding work, never throws

  bool valid() const noexcept { return impl_ != nullptr; }
  const Device& device() const noexcept { return device_; }

  // ---- copies (sizes must match exactly; both sides are range-checked) ----
  template <typename T>
  void copy(const T* host, std::size_t count, const BufferView<T>& dst) {
    check_host_count(count, dst.size(), "host -> device");
    copy_h2d_bytes(host, dst.buffer(), dst.offset_bytes(), count * sizeof(T));
  }
  template <typename T>
  void copy(const BufferView<T>& src, T* host, std::size_t count) {
    check_host_count(src.size(), count, "device -> host");
    copy_d2h_bytes(src.buffer(), src.offset_bytes(), host, count * sizeof(T));
  }
  template <typename T>
  void copy(const std::vector<T>& host, const BufferView<T>& dst) {
    copy(host.data(), host.size(), dst);
  }
  template <typename T>
  void copy(const BufferView<T>& src, std::vector<T>& host) {
    copy(src, host.data(), host.size());
  }
  template <typename T>
  void copy(const PinnedBuffer<T>& host, const BufferView<T>& dst) {
    copy(host.data(), host.size(), dst);
  }
  template <typename T>
  void copy(const BufferView<T>& src, const PinnedBuffer<T>& host) {
    copy(src, host.data(), host.size());
  }
  template <typename T>
  void copy(const BufferView<T>& src, const BufferView<T>& dst) {
    check_host_count(src.size(), dst.size(), "device -> device");
    copy_d2d_bytes(src.buffer(), src.offset_bytes(), dst.buffer(), dst.offset_bytes(), src.size_bytes());
  }
  /// Whole-buffer forms.
  template <typename T>
  void copy(const std::vector<T>& host, const Buffer& dst) {
    copy(host, dst.view<T>());
  }
  template <typename T>
  void copy(const Buffer& src, std::vector<T>& host) {
    copy(src.view<T>(), host);
  }

  /// Set every element of `dst` to `value` (sizeof(T) in 1, 2, 4, 8, 16).
  template <typename T>
  void fill(const BufferView<T>& dst, const T& value) {
    fill_bytes(dst.buffer(), dst.offset_bytes(), dst.size_bytes(), &value, sizeof(T));
  }

  // ---- kernels ----
  /// Launch `kernel` over `global` work-items in groups of `local` (Range{} lets the
  /// backend choose). `global` must be a multiple of `local` in every dimension (see
  /// axle::round_up). Arguments bind by value: scalars, BufferView<T>/Buffer, LocalMem.
  template <typename... Args>
  void launch(const Kernel& kernel, const Range& global, const Range& local, const Args&... args) {
    std::vector<KernelArg> bound;
    bound.reserve(sizeof...(Args));
    (bound.push_back(detail::to_arg(args)), ...);
    launch_args(kernel, global, local, bound);
  }
  void launch_args(const Kernel& kernel, const Range& global, const Range& local,
                   const std::vector<KernelArg>& args);
  /// Launch with a LaunchShape: as above, and with a thread-block cluster when
  /// shape.cluster is not empty.
  template <typename... Args>
  void launch(const Kernel& kernel, const LaunchShape& shape, const Args&... args) {
    std::vector<KernelArg> bound;
    bound.reserve(sizeof...(Args));
    (bound.push_back(detail::to_arg(args)), ...);
    launch_args(kernel, shape, bound);
  }
  void launch_args(const Kernel& kernel, const LaunchShape& shape, const std::vector<KernelArg>& args);

  // ---- ordering ----
  /// Record a new event at this point of the stream.
  Event record();
  /// Re-record `event` at this point of the stream.
  void record(Event& event);
  /// Work enqueued after this call waits for `event`.
  void wait(const Event& event);
  /// Block the host until everything enqueued so far has finished. Errors of
  /// asynchronous work surface here as axle::Error.
  void synchronize();

  // ---- workspace ----
  /// Device scratch memory owned by this stream for work enqueued on it: a buffer of at
  /// least `bytes` bytes kept under the name `slot` (one name per purpose, e.g.
  /// "axle.gemm.pack_a"), reused by later calls with the same slot. Work on one stream
  /// runs in order, so work enqueued later may reuse memory that earlier work used.
  /// When a slot grows, its old buffer is kept until the next synchronize() (work
  /// already enqueued may still use it). Everything is freed when the stream is
  /// destroyed, after its work has finished. The reference stays valid until the next
  /// workspace() call with the same slot, release_workspace() or the stream's end.
  /// Throws InvalidArgument for a zero size or one above the device's largest allocation.
  const Buffer& workspace(std::string_view slot, std::size_t bytes);
  /// Bytes this stream's workspace holds now (slots plus buffers retired by growth).
  std::size_t workspace_bytes() const noexcept;
  /// Wait for the stream's work, then free its whole workspace.
  void release_workspace();

  /// cl_command_queue on OpenCL, CUstream on CUDA.
  void* native_handle() const;
  /// Wrap a native queue/stream without taking ownership. It must belong to `device`
  /// (on CUDA: a stream of its primary context; on OpenCL: an in-order queue of its
  /// context, see axle/interop/opencl.hpp); otherwise InvalidArgument.
  static Stream adopt(const Device& device, void* native_queue);

  // ---- untyped forms ----
  void copy_h2d_bytes(const void* host, const Buffer& dst, std::size_t dst_offset, std::size_t bytes);
  void copy_d2h_bytes(const Buffer& src, std::size_t src_offset, void* host, std::size_t bytes);
  void copy_d2d_bytes(const Buffer& src, std::size_t src_offset, const Buffer& dst, std::size_t dst_offset,
                      std::size_t bytes);
  void fill_bytes(const Buffer& dst, std::size_t offset, std::size_t bytes, const void* pattern,
                  std::size_t pattern_size);

  detail::StreamImpl& impl() const;
  Stream(Device device, std::unique_ptr<detail::StreamImpl> impl) noexcept;

 private:
  static void check_host_count(std::size_t a, std::size_t b, const char* what);
  Device device_;
  std::unique_ptr<detail::StreamImpl> impl_;
};

}  // namespace axle
