// Internal: one State object per device, created on first use and never destroyed.
//
// The kernel paths cache Program/Kernel handles per device in such a State. They are
// never released during static destruction, when the backend may already be gone.
// Thread-safe; the State itself guards its own members.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

#include "axle/device.hpp"

namespace axle::blas::detail {

template <typename State>
State& per_device(const Device& device) {
  static std::mutex* mutex = new std::mutex;
  static auto* map = new std::unordered_map<const void*, std::unique_ptr<State>>;
  std::lock_guard<std::mutex> lock(*mutex);
  auto& slot = (*map)[device.shared_impl().get()];
  if (!slot) slot = std::make_unique<State>();
  return *slot;
}

}  // namespace axle::blas::detail
