#include "axle/buffer.hpp"

#include "backend/backend.hpp"
#include "log.hpp"

namespace axle {

namespace detail {
void throw_view_out_of_range(std::size_t offset, std::size_t count, std::size_t elem_size, std::size_t buffer_bytes) {
  throw OutOfRange("view of " + std::to_string(count) + " element(s) of " + std::to_string(elem_size) +
                   " bytes at element offset " + std::to_string(offset) + " does not fit a buffer of " +
                   std::to_string(buffer_bytes) + " bytes (" + std::to_string(buffer_bytes / elem_size) +
                   " elements)");
}
}  // namespace detail

Buffer::Buffer() noexcept = default;
Buffer::Buffer(Device device, std::unique_ptr<detail::BufferImpl> impl) noexcept
    : device_(std::move(device)), impl_(std::move(impl)) {}
Buffer::Buffer(Buffer&& o) noexcept : device_(std::move(o.device_)), impl_(std::move(o.impl_)) {}
Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::move(o.device_);
    impl_ = std::move(o.impl_);
  }
  return *this;
}
Buffer::~Buffer() { reset(); }

void Buffer::reset() noexcept {
  impl_.reset();  // backend destructors never throw
  device_ = Device();
}

std::size_t Buffer::size_bytes() const noexcept { return impl_ ? impl_->size_bytes() : 0; }

detail::BufferImpl& Buffer::impl() const {
  if (!impl_) throw InvalidArgument("use of an empty (moved-from or reset) Buffer");
  return *impl_;
}
void* Buffer::native_handle() const { return impl().native(); }

PinnedMemory::PinnedMemory() noexcept = default;
PinnedMemory::PinnedMemory(Device device, std::unique_ptr<detail::PinnedImpl> impl)
    : device_(std::move(device)), impl_(std::move(impl)), data_(impl_->data()), bytes_(impl_->size_bytes()) {}
PinnedMemory::PinnedMemory(PinnedMemory&& o) noexcept
    : device_(std::move(o.device_)), impl_(std::move(o.impl_)), data_(o.data_), bytes_(o.bytes_) {
  o.data_ = nullptr;
  o.bytes_ = 0;
}
PinnedMemory& PinnedMemory::operator=(PinnedMemory&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::move(o.device_);
    impl_ = std::move(o.impl_);
    data_ = o.data_;
    bytes_ = o.bytes_;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
PinnedMemory::~PinnedMemory() { reset(); }
void PinnedMemory::reset() noexcept {
  if (impl_) {
    // Copies into or out of this memory may still be pending on the device's streams:
    // wait for them before the memory goes (no destructor may throw: log instead).
    try {
      device_.impl().synchronize();
    } catch (const std::exception& e) {
      detail::logger("mem")->warn("freeing pinned memory: synchronizing {} failed: {}", device_.id(), e.what());
    }
  }
  impl_.reset();
  device_ = Device();
  data_ = nullptr;
  bytes_ = 0;
}

}  // namespace axle
