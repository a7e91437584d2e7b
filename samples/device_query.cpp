// device_query: every backend (and why one is unavailable), every device, and the
// device Axle picks by default (AXLE_DEVICE, axle.toml, or the best present).
#include <cstdio>

#include "axle/axle.hpp"

int main() {
  try {
    std::printf("Axle %s\n", axle::version());
    for (const auto& b : axle::backends()) {
      if (b.available) std::printf("  backend %-7s available, %d device(s)\n", b.name.c_str(), b.device_count);
      else std::printf("  backend %-7s unavailable: %s\n", b.name.c_str(), b.reason.c_str());
    }
    for (const auto& d : axle::devices()) {
      const auto& i = d.info();
      std::printf("  %-9s %s [%s] %u CUs, %.1f GiB global, %llu KiB local, max work-group %zu\n", d.id().c_str(),
                  i.name.c_str(), axle::to_string(i.type), i.compute_units, i.global_mem_bytes / 1073741824.0,
                  (unsigned long long)(i.local_mem_bytes / 1024), i.max_work_group_size);
    }
    axle::Device dev = axle::default_device();
    std::printf("default device: %s (%s)\n", dev.id().c_str(), dev.name().c_str());
    return 0;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "device_query: %s\n", e.what());
    return 1;
  }
}
