// Backend registry, device enumeration and device selection.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "axle/buffer.hpp"
#include "axle/config.hpp"
#include "axle/event.hpp"
#include "axle/stream.hpp"
#include "backend/backend.hpp"
#include "log.hpp"

namespace axle {
namespace detail {
namespace {

class Registry final : public BackendRegistry {
 public:
  Registry() { register_backends(*this); }
  void add(const std::string& name, Factory factory) override { entries_.push_back(Entry{name, factory, nullptr}); }

  // Every backend, created on first use (creation probes the vendor library).
  std::vector<Backend*> all() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Backend*> out;
    for (auto& e : entries_) out.push_back(ensure(e));
    return out;
  }
  Backend* find(std::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : entries_)
      if (e.name == name) return ensure(e);
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (auto& e : entries_) n.push_back(e.name);
    return n;
  }

 private:
  struct Entry {
    std::string name;
    Factory factory;
    std::unique_ptr<Backend> backend;
  };
  Backend* ensure(Entry& e) {
    if (!e.backend) {
      e.backend = e.factory();
      auto lg = logger("rt");
      if (e.backend->available())
        lg->debug("backend {}: {} device(s)", e.name, e.backend->device_count());
      else
        lg->debug("backend {}: unavailable: {}", e.name, e.backend->reason());
    }
    return e.backend.get();
  }
  std::mutex mu_;
  std::vector<Entry> entries_;
};

// Never destroyed: devices, contexts and cached programs live until the process
// ends, so no destructor runs after a vendor library has shut down.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}
std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

int type_rank(const DeviceInfo& i) {
  if (i.backend == "cuda") return 0;
  if (i.type == DeviceType::GPU) return 1;
  if (i.type == DeviceType::Accelerator) return 2;
  return 3;
}

std::vector<Device> backend_devices(Backend& b) {
  std::vector<Device> out;
  if (!b.available()) return out;
  for (int i = 0; i < b.device_count(); ++i) out.push_back(b.device(i)->handle());
  return out;
}

// "cuda: unavailable (reason)" / "opencl: 1 device: opencl:0 'name' (CPU)".
std::string describe_backends() {
  std::string s;
  for (Backend* b : registry().all()) {
    s += "\n  " + b->name() + ": ";
    if (!b->available()) {
      s += "unavailable: " + b->reason();
      continue;
    }
    auto devs = backend_devices(*b);
    s += std::to_string(devs.size()) + " device(s)";
    for (auto& d : devs) s += "; " + d.id() + " '" + d.info().name + "' (" + to_string(d.info().type) + ")";
  }
  if (registry().names().empty()) s += "\n  (no backend was compiled into this build)";
  return s;
}

bool parse_index(const std::string& s, int& out) {
  if (s.empty() || s.size() > 6) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  out = std::atoi(s.c_str());
  return true;
}

// Returns the matching device or an empty handle; `why` says why not.
Device try_select(const std::string& spec_in, std::string& why) {
  const std::string spec = lower(trim(spec_in));
  if (spec.empty()) {
    why = "empty device spec";
    return {};
  }
  std::string backend_name, rest = spec;
  auto colon = spec.find(':');
  auto names = registry().names();
  if (colon != std::string::npos) {
    backend_name = spec.substr(0, colon);
    rest = spec.substr(colon + 1);
  } else if (spec == "cuda" || spec == "opencl" || std::find(names.begin(), names.end(), spec) != names.end()) {
    // A backend name, even one not compiled in: the error must say so, not search device names.
    backend_name = spec;
    rest.clear();
  }
  std::vector<Device> candidates;
  if (!backend_name.empty()) {
    Backend* b = registry().find(backend_name);
    if (!b) {
      if (backend_name == "cuda" || backend_name == "opencl")
        why = "backend '" + backend_name + "' was not compiled into this build";
      else
        why = "unknown backend '" + backend_name + "'";
      return {};
    }
    if (!b->available()) {
      why = "backend '" + backend_name + "' is unavailable: " + b->reason();
      return {};
    }
    candidates = backend_devices(*b);
  } else {
    candidates = devices();
  }
  if (candidates.empty()) {
    why = "no device is available";
    return {};
  }
  int index = 0;
  if (rest.empty()) {
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Device& a, const Device& b) { return type_rank(a.info()) < type_rank(b.info()); });
    return candidates.front();
  }
  if (!backend_name.empty() && parse_index(rest, index)) {
    for (auto& d : candidates)
      if (d.info().index == index) return d;
    why = "'" + spec + "': " + backend_name + " has " + std::to_string(candidates.size()) + " device(s), no index " +
          std::to_string(index);
    return {};
  }
  static const std::pair<const char*, DeviceType> kTypes[] = {
      {"gpu", DeviceType::GPU}, {"cpu", DeviceType::CPU}, {"accelerator", DeviceType::Accelerator}};
  for (auto& [word, type] : kTypes) {
    if (rest == word) {
      for (auto& d : candidates)
        if (d.info().type == type) return d;
      why = "'" + spec + "': no " + word + " device" + (backend_name.empty() ? "" : " on " + backend_name);
      return {};
    }
  }
  for (auto& d : candidates)
    if (lower(d.info().name).find(rest) != std::string::npos) return d;
  why = "'" + spec + "': no device whose name contains '" + rest + "'";
  return {};
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------- Device

Device::Device(std::shared_ptr<detail::DeviceImpl> impl) : impl_(std::move(impl)) {}

detail::DeviceImpl& Device::impl() const {
  if (!impl_) throw InvalidArgument("use of an empty Device handle");
  return *impl_;
}
const DeviceInfo& Device::info() const { return impl().info(); }
std::string Device::id() const { return info().backend + ":" + std::to_string(info().index); }

Buffer Device::alloc_bytes(std::size_t bytes) const {
  const auto& inf = info();
  if (bytes == 0) throw InvalidArgument("Device::alloc: zero-byte allocation on " + id());
  if (inf.max_alloc_bytes && bytes > inf.max_alloc_bytes)
    throw InvalidArgument("Device::alloc: " + std::to_string(bytes) + " bytes exceeds the largest allocation of " +
                          id() + " ('" + inf.name + "'): " + std::to_string(inf.max_alloc_bytes) + " bytes");
  auto b = impl().alloc(bytes);
  detail::logger("mem")->trace("alloc {} bytes on {}", bytes, id());
  return Buffer(*this, std::move(b));
}

Stream Device::create_stream() const { return Stream(*this, impl().create_stream()); }
Event Device::create_event() const { return Event(*this, impl().create_event()); }
void Device::synchronize() const { impl().synchronize(); }

PinnedMemory alloc_pinned_bytes(const Device& device, std::size_t bytes) {
  if (bytes == 0) throw InvalidArgument("alloc_pinned: zero-byte allocation on " + device.id());
  return PinnedMemory(device, device.impl().alloc_pinned(bytes));
}

// ---------------------------------------------------------------- enumeration

std::vector<BackendStatus> backends() {
  std::vector<BackendStatus> out;
  for (detail::Backend* b : detail::registry().all())
    out.push_back(BackendStatus{b->name(), b->available(), b->available() ? "" : b->reason(),
                                b->available() ? b->device_count() : 0});
  return out;
}

std::vector<Device> devices(std::string_view backend) {
  detail::Backend* b = detail::registry().find(backend);
  if (!b) return {};
  return detail::backend_devices(*b);
}

std::vector<Device> devices() {
  std::vector<Device> out;
  for (detail::Backend* b : detail::registry().all()) {
    auto d = detail::backend_devices(*b);
    out.insert(out.end(), d.begin(), d.end());
  }
  std::stable_sort(out.begin(), out.end(), [](const Device& a, const Device& b) {
    return detail::type_rank(a.info()) < detail::type_rank(b.info());
  });
  return out;
}

Device select_device(std::string_view spec) {
  std::string why;
  Device d = detail::try_select(std::string(spec), why);
  if (d.valid()) return d;
  throw DeviceUnavailable("device '" + std::string(spec) + "' cannot serve: " + why +
                          "\nbackends in this build:" + detail::describe_backends());
}

Device default_device(std::string_view spec) {
  auto lg = detail::logger("rt");
  if (!spec.empty()) return select_device(spec);
  if (const char* env = std::getenv("AXLE_DEVICE"); env && *env) {
    std::string why;
    Device d = detail::try_select(env, why);
    if (d.valid()) {
      lg->debug("AXLE_DEVICE={} -> {}", env, d.id());
      return d;
    }
    throw DeviceUnavailable("AXLE_DEVICE=" + std::string(env) + " cannot serve: " + why +
                            "\nbackends in this build:" + detail::describe_backends());
  }
  const Config& cfg = active_config();
  if (!cfg.device.empty() || !cfg.fallback.empty()) {
    std::string attempts;
    std::vector<std::string> tries;
    if (!cfg.device.empty()) tries.push_back(cfg.device);
    tries.insert(tries.end(), cfg.fallback.begin(), cfg.fallback.end());
    for (auto& t : tries) {
      std::string why;
      Device d = detail::try_select(t, why);
      if (d.valid()) {
        lg->debug("config {} device '{}' -> {}", cfg.path, t, d.id());
        return d;
      }
      lg->debug("config {} device '{}' rejected: {}", cfg.path, t, why);
      attempts += "\n  " + t + ": " + why;
    }
    throw DeviceUnavailable("no device named by " + cfg.path + " (device, then fallback) can serve:" + attempts +
                            "\nbackends in this build:" + detail::describe_backends());
  }
  auto all = devices();
  if (all.empty())
    throw DeviceUnavailable("no device is available. Backends in this build:" + detail::describe_backends());
  return all.front();
}

}  // namespace axle
