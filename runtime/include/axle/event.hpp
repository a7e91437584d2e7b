// axle/event.hpp: markers in a stream's work, for ordering and timing.
//
// An Event is recorded on a stream (Stream::record); another stream can wait on it
// (Stream::wait), the host can wait on it, and two events give the elapsed device
// time between them. Move-only.
//
// Thread-safety: recorded(), query(), synchronize(), elapsed_ms() and native_handle()
// may be called from any number of threads at once, also while other threads record the
// same event again (Stream::record(Event&)) or make streams wait on it (Stream::wait):
// each call works on one complete record, the latest it saw. Recording one event on two
// streams from two threads at once is allowed; it then marks whichever record came last.
// The handle native_handle() returns may be released by the next record (OpenCL: a
// record makes a new cl_event); retain it (clRetainEvent) to keep it. Moving or
// destroying an Event must not overlap any other use of it.
#pragma once

#include <memory>

#include "axle/device.hpp"

namespace axle {

namespace detail {
class EventImpl;
}

class Event {
 public:
  Event() noexcept;
  Event(Event&&) noexcept;
  Event& operator=(Event&&) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event();

  bool valid() const noexcept { return impl_ != nullptr; }
  /// True once it has been recorded on some stream.
  bool recorded() const noexcept;
  /// Block the host until the work before the record point has finished.
  void synchronize() const;
  /// True when the work before the record point has finished (never blocks).
  bool query() const;
  /// Device time in milliseconds from `start` to this event. Both must be recorded
  /// on the same device and complete (this call waits for them). Throws
  /// InvalidArgument when either is not recorded or they are of different devices,
  /// and Unsupported when the device kept no timestamps for one of them (on OpenCL:
  /// recorded on a queue adopted without CL_QUEUE_PROFILING_ENABLE).
  float elapsed_ms(const Event& start) const;
  const Device& device() const noexcept { return device_; }
  /// cl_event of the last record on OpenCL, CUevent on CUDA.
  void* native_handle() const;

  detail::EventImpl& impl() const;
  Event(Device device, std::unique_ptr<detail::EventImpl> impl) noexcept;

 private:
  Device device_;
  std::unique_ptr<detail::EventImpl> impl_;
};

/// Milliseconds between two recorded events (end.elapsed_ms(start)).
inline float elapsed_ms(const Event& start, const Event& end) { return end.elapsed_ms(start); }

}  // namespace axle
