// axle/buffer.hpp: device memory, typed views of it, and pinned host memory.
//
// Ownership: a Buffer owns its device memory (move-only RAII) unless it was made by
// Buffer::adopt_*, in which case it only references memory the caller owns. A
// BufferView<T> is a non-owning, range-checked (offset, count) window into a Buffer;
// it must not outlive the Buffer. Views are what every API call takes.
//
// Thread-safety: every const member (size, view, native handle, device) may be called
// from several threads at once on the same Buffer or PinnedBuffer, and one buffer may be
// handed to work on several streams driven by different threads. Moving, reset() and
// destruction must not overlap any other use of the same object. The memory's contents
// are not synchronized by Axle: work on different streams that writes a buffer another
// stream reads must be ordered with events (Stream::record / Stream::wait), and host
// access to pinned memory with synchronize().
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "axle/device.hpp"
#include "axle/error.hpp"

namespace axle {

namespace detail {
class BufferImpl;
class PinnedImpl;
[[noreturn]] void throw_view_out_of_range(std::size_t offset, std::size_t count, std::size_t elem_size,
                                          std::size_t buffer_bytes);
}  // namespace detail

template <typename T>
class BufferView;

class Buffer {
 public:
  Buffer() noexcept;
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  bool valid() const noexcept { return impl_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  std::size_t size_bytes() const noexcept;
  const Device& device() const noexcept { return device_; }

  /// Typed view of `count` elements starting at element `offset`; count == npos
  /// means "to the end". Throws OutOfRange when it does not fit.
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  template <typename T>
  BufferView<T> view(std::size_t offset = 0, std::size_t count = npos) const;

  /// Release the memory now (also done by the destructor).
  void reset() noexcept;

  detail::BufferImpl& impl() const;
  /// The native handle: cl_mem on OpenCL, CUdeviceptr (as an integer) on CUDA.
  void* native_handle() const;

  /// Internal: used by the front end.
  Buffer(Device device, std::unique_ptr<detail::BufferImpl> impl) noexcept;

 private:
  Device device_;
  std::unique_ptr<detail::BufferImpl> impl_;
};

/// A typed window (offset and count in elements of T) into a Buffer. Cheap to copy.
template <typename T>
class BufferView {
  static_assert(std::is_trivially_copyable_v<T>, "BufferView<T> needs a trivially copyable T");

 public:
  using value_type = T;
  BufferView() = default;
  BufferView(const Buffer& buffer, std::size_t offset, std::size_t count)
      : buffer_(&buffer), offset_(offset), count_(count) {
    if (!buffer.valid()) throw InvalidArgument("BufferView of an empty (moved-from or reset) Buffer");
    const std::size_t cap = buffer.size_bytes() / sizeof(T);
    if (offset > cap || count > cap - offset)
      detail::throw_view_out_of_range(offset, count, sizeof(T), buffer.size_bytes());
  }

  const Buffer& buffer() const {
    if (!buffer_) throw InvalidArgument("use of an empty BufferView");
    return *buffer_;
  }
  bool valid() const noexcept { return buffer_ != nullptr; }
  std::size_t offset() const noexcept { return offset_; }  ///< in elements
  std::size_t size() const noexcept { return count_; }     ///< in elements
  std::size_t offset_bytes() const noexcept { return offset_ * sizeof(T); }
  std::size_t size_bytes() const noexcept { return count_ * sizeof(T); }
  const Device& device() const { return buffer().device(); }

  /// A sub-window, relative to this view. Throws OutOfRange when it does not fit.
  BufferView sub(std::size_t offset, std::size_t count = Buffer::npos) const {
    if (offset > count_)
      detail::throw_view_out_of_range(offset, count == Buffer::npos ? 0 : count, sizeof(T), count_ * sizeof(T));
    if (count == Buffer::npos) count = count_ - offset;
    if (count > count_ - offset) detail::throw_view_out_of_range(offset, count, sizeof(T), count_ * sizeof(T));
    return BufferView(buffer(), offset_ + offset, count);
  }
  /// Reinterpret as another element type (byte offsets must stay aligned).
  template <typename U>
  BufferView<U> as() const {
    if (offset_bytes() % sizeof(U) != 0 || size_bytes() % sizeof(U) != 0)
      throw InvalidArgument("BufferView::as: byte offset/size not a multiple of the new element size");
    return BufferView<U>(buffer(), offset_bytes() / sizeof(U), size_bytes() / sizeof(U));
  }

 private:
  const Buffer* buffer_ = nullptr;
  std::size_t offset_ = 0;
  std::size_t count_ = 0;
};

template <typename T>
BufferView<T> Buffer::view(std::size_t offset, std::size_t count) const {
  if (!valid()) throw InvalidArgument("view of an empty (moved-from or reset) Buffer");
  const std::size_t cap = size_bytes() / sizeof(T);
  if (count == npos) {
    if (offset > cap) detail::throw_view_out_of_range(offset, 0, sizeof(T), size_bytes());
    count = cap - offset;
  }
  return BufferView<T>(*this, offset, count);
}

template <typename T>
Buffer Device::alloc(std::size_t count) const {
  if (count != 0 && count > static_cast<std::size_t>(-1) / sizeof(T))
    throw InvalidArgument("Device::alloc: element count " + std::to_string(count) + " overflows size_t");
  return alloc_bytes(count * sizeof(T));
}

/// Untyped pinned host allocation (owned, move-only). Destroying or resetting it first
/// waits for all work enqueued on its device (copies into or out of it may be pending
/// on any of the device's streams). A copy between it and a stream of another device
/// must be complete (synchronized) before it is destroyed.
class PinnedMemory {
 public:
  PinnedMemory() noexcept;
  PinnedMemory(PinnedMemory&&) noexcept;
  PinnedMemory& operator=(PinnedMemory&&) noexcept;
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;
  ~PinnedMemory();

  void* data() const noexcept { return data_; }
  std::size_t size_bytes() const noexcept { return bytes_; }
  const Device& device() const noexcept { return device_; }
  void reset() noexcept;

  PinnedMemory(Device device, std::unique_ptr<detail::PinnedImpl> impl);

 private:
  Device device_;
  std::unique_ptr<detail::PinnedImpl> impl_;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Page-locked host memory of `size()` elements of T, usable as a host range in copies.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(PinnedMemory mem) : mem_(std::move(mem)) {}
  T* data() const noexcept { return static_cast<T*>(mem_.data()); }
  std::size_t size() const noexcept { return mem_.size_bytes() / sizeof(T); }
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + size(); }
  void reset() noexcept { mem_.reset(); }

 private:
  PinnedMemory mem_;
};

/// Untyped form of Device::alloc_pinned.
PinnedMemory alloc_pinned_bytes(const Device& device, std::size_t bytes);

template <typename T>
PinnedBuffer<T> Device::alloc_pinned(std::size_t count) const {
  if (count != 0 && count > static_cast<std::size_t>(-1) / sizeof(T))
    throw InvalidArgument("Device::alloc_pinned: element count " + std::to_string(count) + " of " +
                          std::to_string(sizeof(T)) + "-byte elements overflows size_t");
  return PinnedBuffer<T>(alloc_pinned_bytes(*this, count * sizeof(T)));
}

}  // namespace axle
