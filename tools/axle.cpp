// The `axle` command-line tool: query devices, manage the kernel cache, tune kernels.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "axle/axle.hpp"
#include "axle/cache.hpp"

#if AXLE_TOOL_HAS_TUNE
int axle_tune_main(int argc, char** argv);
#endif

namespace {

std::string human_bytes(std::uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%llu (%.2f GiB)", (unsigned long long)b, b / 1073741824.0);
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%llu (%.2f MiB)", (unsigned long long)b, b / 1048576.0);
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%llu (%.1f KiB)", (unsigned long long)b, b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu", (unsigned long long)b);
  return buf;
}

int query(bool json) {
  auto bs = axle::backends();
  auto ds = axle::devices();
  if (json) {
    // nlohmann-json writes the document: names with quotes or control characters stay
    // valid JSON (invalid UTF-8 in a driver string becomes U+FFFD).
    nlohmann::ordered_json doc;
    doc["version"] = axle::version();
    doc["backends"] = nlohmann::ordered_json::array();
    for (const auto& b : bs)
      doc["backends"].push_back({{"name", b.name},
                                 {"available", b.available},
                                 {"reason", b.reason},
                                 {"device_count", b.device_count},
                                 {"failed_devices", b.failed_devices}});
    doc["devices"] = nlohmann::ordered_json::array();
    for (const auto& dev : ds) {
      const auto& d = dev.info();
      doc["devices"].push_back({{"id", dev.id()},
                                {"backend", d.backend},
                                {"index", d.index},
                                {"name", d.name},
                                {"vendor", d.vendor},
                                {"type", axle::to_string(d.type)},
                                {"platform", d.platform},
                                {"driver_version", d.driver_version},
                                {"version", d.version},
                                {"architecture", d.architecture},
                                {"compute_units", d.compute_units},
                                {"max_clock_mhz", d.max_clock_mhz},
                                {"global_mem_bytes", d.global_mem_bytes},
                                {"max_alloc_bytes", d.max_alloc_bytes},
                                {"local_mem_bytes", d.local_mem_bytes},
                                {"cache_bytes", d.cache_bytes},
                                {"max_work_group_size", d.max_work_group_size},
                                {"max_work_item_sizes",
                                 {d.max_work_item_sizes[0], d.max_work_item_sizes[1], d.max_work_item_sizes[2]}},
                                {"sub_group_size", d.sub_group_size},
                                {"preferred_vector_width_float", d.preferred_vector_width_float},
                                {"fp16", d.fp16},
                                {"fp64", d.fp64},
                                {"unified_memory", d.unified_memory}});
    }
    std::cout << doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << "Axle " << axle::version() << "\n\nBackends:\n";
  for (auto& b : bs) {
    std::cout << "  " << b.name << ": ";
    if (b.available) std::cout << "available, " << b.device_count << " device(s)\n";
    else std::cout << "unavailable: " << b.reason << "\n";
    for (auto& f : b.failed_devices) std::cout << "    unavailable device " << f << "\n";
  }
  std::cout << "\nDevices (default order):\n";
  if (ds.empty()) std::cout << "  none\n";
  for (auto& dev : ds) {
    const auto& d = dev.info();
    auto row = [](const char* k, const std::string& v) { std::printf("    %-30s %s\n", k, v.c_str()); };
    std::cout << "\n  " << dev.id() << "  " << d.name << "\n";
    row("Backend", d.backend);
    row("Type", axle::to_string(d.type));
    row("Vendor", d.vendor);
    if (!d.platform.empty()) row("Platform", d.platform);
    row("Version", d.version);
    row("Driver version", d.driver_version);
    row("Architecture", d.architecture);
    row("Compute units", std::to_string(d.compute_units));
    row("Max clock (MHz)", std::to_string(d.max_clock_mhz));
    row("Global memory (bytes)", human_bytes(d.global_mem_bytes));
    row("Max allocation (bytes)", human_bytes(d.max_alloc_bytes));
    row("Local memory (bytes)", human_bytes(d.local_mem_bytes));
    row("Global memory cache (bytes)", d.cache_bytes ? human_bytes(d.cache_bytes) : std::string("unknown"));
    row("Max work-group size", std::to_string(d.max_work_group_size));
    row("Max work-item sizes", std::to_string(d.max_work_item_sizes[0]) + " x " + std::to_string(d.max_work_item_sizes[1]) +
                                   " x " + std::to_string(d.max_work_item_sizes[2]));
    row("Sub-group / warp size", d.sub_group_size ? std::to_string(d.sub_group_size) : "unknown");
    row("Preferred float vector width", std::to_string(d.preferred_vector_width_float));
    row("fp16 / fp64", std::string(d.fp16 ? "yes" : "no") + " / " + (d.fp64 ? "yes" : "no"));
    row("Unified memory", d.unified_memory ? "yes" : "no");
  }
  try {
    auto def = axle::default_device();
    std::cout << "\nDefault device: " << def.id() << " (" << def.name() << ")\n";
  } catch (const axle::Error& e) {
    std::cout << "\nDefault device: none: " << e.what() << "\n";
  }
  return 0;
}

int cache(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "list";
  if (sub != "list" && sub != "clear" && sub != "dir") {
    std::cerr << "axle cache: unknown subcommand '" << sub << "' (list, clear, dir)\n";
    return 2;
  }
  const std::string dir = axle::cache_dir();
  if (dir.empty()) {
    std::cerr << "axle cache: " << axle::cache_dir_problem() << "; kernels are built in memory\n";
    return 1;
  }
  if (const std::string problem = axle::cache_dir_problem(dir); !problem.empty()) {
    std::cerr << "axle cache: " << problem << "\n";
    if (sub != "dir") return 1;
  }
  if (sub == "list") {
    auto entries = axle::cache_entries(dir);
    std::cout << "Kernel cache: " << dir << " (" << entries.size() << " entries)\n";
    std::uint64_t total = 0;
    for (auto& e : entries) {
      total += e.bytes;
      std::printf("  %s  %-7s %9llu  %-20s %s%s\n", e.key.substr(0, 16).c_str(), e.backend.c_str(),
                  (unsigned long long)e.bytes, e.program.c_str(), e.device.c_str(), e.valid ? "" : "  [corrupt]");
    }
    std::cout << "Total: " << human_bytes(total) << " bytes\n";
    return 0;
  }
  if (sub == "clear") {
    std::cout << "Removed " << axle::clear_cache(dir) << " file(s) (entries and leftover temporaries) from " << dir
              << "\n";
    return 0;
  }
  std::cout << dir << "\n";
  return 0;
}

void usage() {
  std::cout << "usage: axle <command>\n\n"
               "  query [--json]        backends (with why one is unavailable) and devices\n"
               "  cache list|clear|dir  the on-disk kernel cache\n"
#if AXLE_TOOL_HAS_TUNE
               "  tune gemm|conv [opts] search GEMM parameters or conv algorithms on the device in use\n"
               "                        (axle tune --help)\n"
#endif
               "  version               print the version\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "query";
    if (cmd == "query") return query(argc > 2 && std::strcmp(argv[2], "--json") == 0);
    if (cmd == "cache") return cache(argc, argv);
    if (cmd == "version" || cmd == "--version") {
      std::cout << axle::version() << "\n";
      return 0;
    }
#if AXLE_TOOL_HAS_TUNE
    if (cmd == "tune") return axle_tune_main(argc - 1, argv + 1);
#endif
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      usage();
      return 0;
    }
    std::cerr << "axle: unknown command '" << cmd << "'\n";
    usage();
    return 2;
  } catch (const axle::Error& e) {
    std::cerr << "axle: " << e.what() << "\n";
    return 1;
  }
}
