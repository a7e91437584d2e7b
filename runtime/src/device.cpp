// Backend registry, device enumeration and device selection.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
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

std::atomic<DeviceOpenHook> g_device_open_hook{nullptr};

// One device of a backend as the front end opened it: the device, or why it cannot be
// created. Each device is opened once per process.
struct DeviceSlot {
  bool opened = false;
  std::shared_ptr<DeviceImpl> impl;
  std::string error;
};

class Registry final : public BackendRegistry {
 public:
  Registry() { register_backends(*this); }
  void add(const std::string& name, Factory factory) override { entries_.push_back(Entry{name, factory, nullptr, {}}); }

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
  // Every device of `b`, opened once: one slot per index. A device whose creation
  // throws is remembered with the error's text and never tried again.
  std::vector<DeviceSlot> slots(Backend& b) {
    Entry* entry = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);  // ensure() sets Entry::backend under mu_
      for (auto& e : entries_)
        if (e.backend.get() == &b) entry = &e;
    }
    if (!entry || !b.available()) return {};
    std::lock_guard<std::mutex> lock(devices_mu_);
    auto& slots = entry->slots;
    slots.resize(static_cast<std::size_t>(std::max(0, b.device_count())));
    for (std::size_t i = 0; i < slots.size(); ++i) {
      DeviceSlot& slot = slots[i];
      if (slot.opened) continue;
      slot.opened = true;
      const int index = static_cast<int>(i);
      try {
        if (DeviceOpenHook hook = g_device_open_hook.load()) hook(b.name(), index);
        slot.impl = b.device(index);
      } catch (const std::exception& e) {
        slot.error = e.what();
        logger("rt")->warn("{}:{} cannot be opened: {}", b.name(), index, slot.error);
      }
    }
    return slots;
  }

 private:
  struct Entry {
    std::string name;
    Factory factory;
    std::unique_ptr<Backend> backend;
    std::vector<DeviceSlot> slots;
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
  std::mutex devices_mu_;
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

// `s` with control characters (a NUL would end what() early; an escape would reach the
// terminal) written as \xNN, for messages that quote a spec.
std::string printable(std::string_view s) {
  std::string o;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      o += hex;
    } else {
      o += c;
    }
  }
  return o;
}

int type_rank(const DeviceInfo& i) {
  if (i.backend == "cuda") return 0;
  if (i.type == DeviceType::GPU) return 1;
  if (i.type == DeviceType::Accelerator) return 2;
  return 3;
}

// The devices of `b` that opened; `failed` (when given) gets "opencl:1: why" for the others.
std::vector<Device> backend_devices(Backend& b, std::vector<std::string>* failed = nullptr) {
  std::vector<Device> out;
  const auto slots = registry().slots(b);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].impl)
      out.push_back(slots[i].impl->handle());
    else if (failed)
      failed->push_back(b.name() + ":" + std::to_string(i) + ": " + slots[i].error);
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
  return s;
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
    std::vector<std::string> failed;
    auto devs = backend_devices(*b, &failed);
    s += std::to_string(devs.size()) + " device(s)";
    for (auto& d : devs) s += "; " + d.id() + " '" + d.info().name + "' (" + to_string(d.info().type) + ")";
    for (auto& f : failed) s += "; unavailable: " + f;
  }
  if (registry().names().empty()) s += "\n  (no backend was compiled into this build)";
  return s;
}

// A device spec taken apart (see select_device in axle/device.hpp).
struct Spec {
  enum class Kind { Best, Index, Type, Name };
  std::string backend;  // "" = every backend
  Kind kind = Kind::Best;
  int index = -1;  // -1: an index too large to exist
  DeviceType type = DeviceType::Other;
  std::string needle;          // Kind::Name
  std::string unknown_prefix;  // "vulkan" of "vulkan:0", matched as a name
};

constexpr const char* kSpecForms =
    "forms: cuda, cuda:0, opencl, opencl:1, opencl:cpu, opencl:gpu, gpu, cpu, opencl:NAME, name=NAME, "
    "or part of a device name";

bool all_of(const std::string& s, const char* set) {
  return !s.empty() && s.find_first_not_of(set) == std::string::npos;
}

// Parses the spec (already trimmed and lower case); returns "" or why it is malformed.
std::string parse_spec(const std::string& spec, Spec& out) {
  if (spec.empty()) return "it is empty";
  for (char c : spec)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "it holds a control character";
  auto names = registry().names();
  auto is_backend = [&](const std::string& n) {
    return n == "cuda" || n == "opencl" || std::find(names.begin(), names.end(), n) != names.end();
  };
  std::string rest = spec;
  const auto colon = spec.find(':');
  if (colon == std::string::npos) {
    if (is_backend(spec)) {
      // A backend name, even one not compiled in: the error must say so, not search device names.
      out.backend = spec;
      return "";
    }
  } else {
    const std::string prefix = spec.substr(0, colon);
    if (prefix.empty()) return "nothing before ':' (a backend: cuda or opencl)";
    if (is_backend(prefix)) {
      out.backend = prefix;
      rest = spec.substr(colon + 1);
      if (rest.empty())
        return "nothing after '" + prefix + ":' (an index, cpu, gpu, accelerator or part of a device name)";
    } else if (all_of(prefix, "abcdefghijklmnopqrstuvwxyz_")) {
      out.unknown_prefix = prefix;
    }
  }
  if (rest.rfind("name=", 0) == 0) {
    out.kind = Spec::Kind::Name;
    out.needle = rest.substr(5);
    if (out.needle.empty()) return "'name=' needs part of a device name after it";
    return "";
  }
  if (all_of(rest, "0123456789+-:.")) {
    if (out.backend.empty())
      return "a number alone does not say which backend: write opencl:" + rest + " or cuda:" + rest +
             " for an index, or name=" + rest + " to match device names";
    if (!all_of(rest, "0123456789")) return "'" + rest + "' is not a device index (a decimal number from 0)";
    out.kind = Spec::Kind::Index;
    out.index = rest.size() > 9 ? -1 : std::atoi(rest.c_str());
    return "";
  }
  static const std::pair<const char*, DeviceType> kTypes[] = {
      {"gpu", DeviceType::GPU}, {"cpu", DeviceType::CPU}, {"accelerator", DeviceType::Accelerator}};
  for (auto& [word, type] : kTypes) {
    if (rest == word) {
      out.kind = Spec::Kind::Type;
      out.type = type;
      return "";
    }
  }
  out.kind = Spec::Kind::Name;
  out.needle = rest;
  return "";
}

struct Selection {
  Device device;
  bool malformed = false;
  std::string why;  // when !device.valid()
};

// The device a spec names, or why none (malformed: the spec itself is wrong).
Selection try_select(const std::string& spec_in) {
  Selection sel;
  const std::string spec = lower(trim(spec_in));
  Spec p;
  if (std::string bad = parse_spec(spec, p); !bad.empty()) {
    sel.malformed = true;
    sel.why = "'" + printable(trim(spec_in)) + "' is not a device spec: " + bad + " (" + kSpecForms + ")";
    return sel;
  }
  std::vector<Device> candidates;
  std::vector<std::string> failed;
  if (!p.backend.empty()) {
    Backend* b = registry().find(p.backend);
    if (!b) {
      sel.why = "backend '" + p.backend + "' was not compiled into this build";
      return sel;
    }
    if (!b->available()) {
      sel.why = "backend '" + p.backend + "' is unavailable: " + b->reason();
      return sel;
    }
    candidates = backend_devices(*b, &failed);
    if (p.kind == Spec::Kind::Index) {
      for (auto& d : candidates)
        if (d.info().index == p.index) {
          sel.device = d;
          return sel;
        }
      const std::string prefix = p.backend + ":" + std::to_string(p.index) + ": ";
      for (auto& f : failed)
        if (p.index >= 0 && f.rfind(prefix, 0) == 0) {
          sel.why = "'" + spec + "': " + p.backend + ":" + std::to_string(p.index) +
                    " cannot be opened: " + f.substr(prefix.size());
          return sel;
        }
      sel.why = "'" + spec + "': " + p.backend + " has " + std::to_string(b->device_count()) + " device(s), no index " +
                spec.substr(spec.find(':') + 1);
      return sel;
    }
  } else {
    for (Backend* b : registry().all()) {
      if (b->available()) backend_devices(*b, &failed);
    }
    candidates = devices();
  }
  const std::string on = p.backend.empty() ? "" : " on " + p.backend;
  const std::string failures = failed.empty() ? "" : " (unavailable: " + join(failed, "; ") + ")";
  if (candidates.empty()) {
    sel.why = "no device" + on + " is available" + failures;
    return sel;
  }
  switch (p.kind) {
    case Spec::Kind::Best:
    case Spec::Kind::Index:  // handled above
      std::stable_sort(candidates.begin(), candidates.end(),
                       [](const Device& a, const Device& b) { return type_rank(a.info()) < type_rank(b.info()); });
      sel.device = candidates.front();
      return sel;
    case Spec::Kind::Type:
      for (auto& d : candidates)
        if (d.info().type == p.type) {
          sel.device = d;
          return sel;
        }
      sel.why = "'" + spec + "': no " + lower(to_string(p.type)) + " device" + on + failures;
      return sel;
    case Spec::Kind::Name:
      for (auto& d : candidates)
        if (lower(d.info().name).find(p.needle) != std::string::npos) {
          sel.device = d;
          return sel;
        }
      sel.why = "'" + spec + "': no device" + on + " whose name contains '" + p.needle + "'" + failures;
      if (!p.unknown_prefix.empty())
        sel.why += ", and '" + p.unknown_prefix + "' is not a backend (unknown backend '" + p.unknown_prefix +
                   "'; backends: " + join(registry().names(), ", ") + ")";
      return sel;
  }
  return sel;
}

[[noreturn]] void throw_selection(const Selection& sel, const std::string& what) {
  if (sel.malformed) throw InvalidArgument(what + ": " + sel.why);
  throw DeviceUnavailable(what + " cannot serve: " + sel.why + "\nbackends in this build:" + describe_backends());
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

namespace detail {
void set_device_open_hook_for_testing(DeviceOpenHook hook) { g_device_open_hook.store(hook); }
}  // namespace detail

std::vector<BackendStatus> backends() {
  std::vector<BackendStatus> out;
  for (detail::Backend* b : detail::registry().all()) {
    BackendStatus st{b->name(), b->available(), b->available() ? "" : b->reason(), 0, {}};
    if (st.available) {
      st.device_count = static_cast<int>(detail::backend_devices(*b, &st.failed_devices).size());
      if (st.device_count == 0) {
        st.available = false;
        st.reason = "no device can be opened: " + detail::join(st.failed_devices, "; ");
      }
    }
    out.push_back(std::move(st));
  }
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
  const detail::Selection sel = detail::try_select(std::string(spec));
  if (sel.device.valid()) return sel.device;
  detail::throw_selection(sel, "device '" + detail::printable(spec) + "'");
}

Device default_device(std::string_view spec) {
  auto lg = detail::logger("rt");
  if (!spec.empty()) return select_device(spec);
  if (const char* env = std::getenv("AXLE_DEVICE"); env && *env) {
    const detail::Selection sel = detail::try_select(env);
    if (sel.device.valid()) {
      lg->debug("AXLE_DEVICE={} -> {}", env, sel.device.id());
      return sel.device;
    }
    detail::throw_selection(sel, "AXLE_DEVICE=" + detail::printable(env));
  }
  const Config& cfg = active_config();
  if (!cfg.device.empty() || !cfg.fallback.empty()) {
    std::string attempts;
    std::vector<std::string> tries;
    if (!cfg.device.empty()) tries.push_back(cfg.device);
    tries.insert(tries.end(), cfg.fallback.begin(), cfg.fallback.end());
    for (auto& t : tries) {
      const detail::Selection sel = detail::try_select(t);
      if (sel.device.valid()) {
        lg->debug("config {} device '{}' -> {}", cfg.path, t, sel.device.id());
        return sel.device;
      }
      if (sel.malformed) throw InvalidArgument(cfg.path + ": device '" + detail::printable(t) + "': " + sel.why);
      lg->debug("config {} device '{}' rejected: {}", cfg.path, t, sel.why);
      attempts += "\n  " + t + ": " + sel.why;
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
