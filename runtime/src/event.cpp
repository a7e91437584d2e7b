#include "axle/event.hpp"

#include "axle/error.hpp"
#include "backend/backend.hpp"

namespace axle {

Event::Event() noexcept = default;
Event::Event(Device device, std::unique_ptr<detail::EventImpl> impl) noexcept
    : device_(std::move(device)), impl_(std::move(impl)) {}
Event::Event(Event&& o) noexcept : device_(std::move(o.device_)), impl_(std::move(o.impl_)) {}
Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    impl_ = std::move(o.impl_);
    device_ = std::move(o.device_);
  }
  return *this;
}
Event::~Event() = default;

detail::EventImpl& Event::impl() const {
  if (!impl_) throw InvalidArgument("use of an empty (moved-from) Event");
  return *impl_;
}
bool Event::recorded() const noexcept { return impl_ && impl_->recorded(); }

void Event::synchronize() const {
  if (!impl().recorded()) throw InvalidArgument("Event::synchronize: the event was never recorded on a stream");
  impl_->synchronize();
}
bool Event::query() const {
  if (!impl().recorded()) throw InvalidArgument("Event::query: the event was never recorded on a stream");
  return impl_->query();
}
float Event::elapsed_ms(const Event& start) const {
  if (!impl().recorded() || !start.impl().recorded())
    throw InvalidArgument("Event::elapsed_ms: both events must have been recorded");
  if (start.device() != device())
    throw InvalidArgument("Event::elapsed_ms: events of different devices (" + start.device().id() + " and " +
                          device().id() + ")");
  return impl_->elapsed_ms(start.impl());
}
void* Event::native_handle() const { return impl().native(); }

}  // namespace axle
