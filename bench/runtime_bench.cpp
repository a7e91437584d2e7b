// runtime_bench: the cost of Axle's runtime layer on the default device.
//
//   (a) launch latency of an empty kernel through Axle vs raw clSetKernelArg +
//       clEnqueueNDRangeKernel on the same queue and kernel object (OpenCL devices);
//   (b) host<->device copy bandwidth through Axle vs raw clEnqueueWrite/ReadBuffer,
//       from pageable and from pinned host memory (OpenCL devices);
//   (c) first-launch time of a new kernel with a cold disk cache vs a warm one, each
//       measured in a fresh process (this program re-executes itself).
//
// Usage: axle_runtime_bench [--device SPEC] [--launches N] [--repeats R] [--copy-mib M]
//                           [--cache-runs C] [--json PATH]
// The raw OpenCL side loads libOpenCL.so.1 at run time, like Axle does.
#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "axle/axle.hpp"

#if AXLE_BENCH_HAVE_OPENCL
#include "axle/interop/opencl.hpp"
#endif

namespace {

using Clock = std::chrono::steady_clock;

const char* const kEmptyKernel = R"AXLE(
AXLE_KERNEL void empty(AXLE_GLOBAL int* p, int v) {
  if (v < 0 && AXLE_GLOBAL_ID(0) == 0) p[0] = v;
}
)AXLE";

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double best_of(const std::vector<double>& v, bool higher_is_better) {
  if (v.empty()) return 0;
  return higher_is_better ? *std::max_element(v.begin(), v.end()) : *std::min_element(v.begin(), v.end());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Options {
  std::string device;
  std::string json;
  int launches = 2000;
  int repeats = 7;
  std::size_t copy_mib = 64;
  int cache_runs = 3;
};

struct Record {
  std::string bench, variant, impl, unit;
  double value = 0, ratio = 0;  // median; ratio: Axle's median relative to raw (0 when not applicable)
  double best = 0;              // the best repeat (least disturbed by other load)
};

#if AXLE_BENCH_HAVE_OPENCL
// The few raw OpenCL entry points the comparison needs, from the same loader Axle uses.
struct RawCl {
  decltype(&::clSetKernelArg) set_arg = nullptr;
  decltype(&::clEnqueueNDRangeKernel) enqueue_kernel = nullptr;
  decltype(&::clEnqueueWriteBuffer) write = nullptr;
  decltype(&::clEnqueueReadBuffer) read = nullptr;
  decltype(&::clFinish) finish = nullptr;

  bool load(std::string& why) {
    void* h = ::dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      why = ::dlerror();
      return false;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (!fn) why = std::string("missing ") + name;
      return fn != nullptr;
    };
    return sym(set_arg, "clSetKernelArg") && sym(enqueue_kernel, "clEnqueueNDRangeKernel") &&
           sym(write, "clEnqueueWriteBuffer") && sym(read, "clEnqueueReadBuffer") && sym(finish, "clFinish");
  }
};
#endif

// ---------------------------------------------------------------- (c) child process

// Runs in a fresh process: build a kernel from `file` with the disk cache in the
// environment and launch it once. Prints "first_launch_ms=<ms> source=<disk|compiled>".
int probe_build(const std::string& device_spec, const std::string& file) {
  try {
    axle::Device dev = axle::select_device(device_spec);
    axle::Stream s = dev.create_stream();
    axle::Buffer b = dev.alloc<int>(1);
    s.synchronize();
    const auto t0 = Clock::now();
    axle::Program p = dev.build(axle::Source::from_file(file, axle::SourceKind::Portable));
    s.launch(p.kernel("empty"), axle::Range{1}, axle::Range{1}, b.view<int>(), 1);
    s.synchronize();
    const double ms = seconds_since(t0) * 1e3;
    std::printf("first_launch_ms=%.3f source=%s\n", ms, p.from_disk_cache() ? "disk" : "compiled");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "probe: %s\n", e.what());
    return 1;
  }
}

bool run_child(const std::string& self, const std::string& cache_dir, const std::string& device,
               const std::string& file, double& ms, std::string& source) {
  const std::string cmd = "AXLE_CACHE_DIR='" + cache_dir + "' '" + self + "' --probe-build '" + device + "' '" +
                          file + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return false;
  char line[256] = {0};
  std::string out;
  while (std::fgets(line, sizeof(line), p)) out += line;
  const int st = ::pclose(p);
  char src[32] = {0};
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || std::sscanf(out.c_str(), "first_launch_ms=%lf source=%31s", &ms, src) != 2)
    return false;
  source = src;
  return true;
}

void remove_dir(const std::string& dir) {
  const std::string cmd = "rm -rf '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
}

// ---------------------------------------------------------------- main

int run(const Options& opt, const std::string& self) {
  axle::Device dev = axle::default_device(opt.device);
  const bool is_cl = dev.backend() == "opencl";
  std::printf("device %s: %s (%s)\n", dev.id().c_str(), dev.name().c_str(), dev.info().platform.c_str());
  std::vector<Record> records;

#if AXLE_BENCH_HAVE_OPENCL
  RawCl raw;
  std::string why;
  const bool have_raw = is_cl && raw.load(why);
  if (is_cl && !have_raw) std::printf("raw OpenCL comparison unavailable: %s\n", why.c_str());
#else
  const bool have_raw = false;
#endif
  if (!is_cl) std::printf("raw comparison skipped: it is implemented for OpenCL devices (this is %s)\n", dev.backend().c_str());

  axle::Stream s = dev.create_stream();
  axle::BuildOptions no_disk;
  no_disk.disk_cache = false;
  axle::Kernel k = dev.build(axle::Source::portable(kEmptyKernel, "empty.cl"), no_disk).kernel("empty");
  axle::Buffer kbuf = dev.alloc<int>(1);

  // ---- (a) launch latency
  {
    const int n = opt.launches;
    auto axle_run = [&] {
      const auto t0 = Clock::now();
      for (int i = 0; i < n; ++i) s.launch(k, axle::Range{1}, axle::Range{1}, kbuf, i);
      s.synchronize();
      return seconds_since(t0) * 1e6 / n;
    };
    std::function<double()> raw_run;
#if AXLE_BENCH_HAVE_OPENCL
    if (have_raw) {
      raw_run = [&] {
        cl_command_queue q = axle::opencl::queue(s);
        cl_kernel kern = axle::opencl::kernel(k);
        cl_mem m = axle::opencl::mem(kbuf);
        const std::size_t g = 1, l = 1;
        const auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) {
          raw.set_arg(kern, 0, sizeof(cl_mem), &m);
          raw.set_arg(kern, 1, sizeof(int), &i);
          raw.enqueue_kernel(q, kern, 1, nullptr, &g, &l, 0, nullptr, nullptr);
        }
        raw.finish(q);
        return seconds_since(t0) * 1e6 / n;
      };
    }
#endif
    axle_run();  // warm-up: first launch compiles for the work-group size on some drivers
    if (raw_run) raw_run();
    std::vector<double> a, r;
    for (int rep = 0; rep < opt.repeats; ++rep) {  // interleaved, so drift hits both
      a.push_back(axle_run());
      if (raw_run) r.push_back(raw_run());
    }
    const double am = median(a), rm = raw_run ? median(r) : 0;
    records.push_back({"launch_latency", "empty kernel, 2 args", "axle", "us/launch", am, rm > 0 ? am / rm : 0,
                       best_of(a, false)});
    if (raw_run)
      records.push_back({"launch_latency", "empty kernel, 2 args", "raw_opencl", "us/launch", rm, 0, best_of(r, false)});
  }

  // ---- (b) copy bandwidth
  {
    const std::size_t bytes = opt.copy_mib << 20;
    axle::Buffer d = dev.alloc_bytes(bytes);
    std::vector<std::uint8_t> pageable(bytes, 1);
    axle::PinnedBuffer<std::uint8_t> pinned = dev.alloc_pinned<std::uint8_t>(bytes);
    std::fill(pinned.begin(), pinned.end(), 2);
    auto gbps = [&](double sec) { return static_cast<double>(bytes) / sec / 1e9; };
    for (int host_kind = 0; host_kind < 2; ++host_kind) {
      std::uint8_t* host = host_kind == 0 ? pageable.data() : pinned.data();
      const char* hk = host_kind == 0 ? "pageable" : "pinned";
      for (int dir = 0; dir < 2; ++dir) {
        const char* dk = dir == 0 ? "h2d" : "d2h";
        auto axle_run = [&] {
          const auto t0 = Clock::now();
          if (dir == 0)
            s.copy(host, bytes, d.view<std::uint8_t>());
          else
            s.copy(d.view<std::uint8_t>(), host, bytes);
          s.synchronize();
          return gbps(seconds_since(t0));
        };
        std::function<double()> raw_run;
#if AXLE_BENCH_HAVE_OPENCL
        if (have_raw) {
          raw_run = [&] {
            cl_command_queue q = axle::opencl::queue(s);
            cl_mem m = axle::opencl::mem(d);
            const auto t0 = Clock::now();
            if (dir == 0)
              raw.write(q, m, CL_FALSE, 0, bytes, host, 0, nullptr, nullptr);
            else
              raw.read(q, m, CL_FALSE, 0, bytes, host, 0, nullptr, nullptr);
            raw.finish(q);
            return gbps(seconds_since(t0));
          };
        }
#endif
        axle_run();
        if (raw_run) raw_run();
        std::vector<double> a, r;
        for (int rep = 0; rep < opt.repeats; ++rep) {
          a.push_back(axle_run());
          if (raw_run) r.push_back(raw_run());
        }
        const double am = median(a), rm = raw_run ? median(r) : 0;
        const std::string variant = std::string(dk) + " " + hk + " " + std::to_string(opt.copy_mib) + " MiB";
        records.push_back({"copy_bandwidth", variant, "axle", "GB/s", am, rm > 0 ? am / rm : 0, best_of(a, true)});
        if (raw_run) records.push_back({"copy_bandwidth", variant, "raw_opencl", "GB/s", rm, 0, best_of(r, true)});
      }
    }
  }

  // ---- (c) first launch with a cold vs a warm disk cache, each in a new process
  {
    std::vector<double> cold, warm;
    for (int run = 0; run < opt.cache_runs; ++run) {
      char tmpl[] = "/tmp/axle_bench_cache_XXXXXX";
      if (!::mkdtemp(tmpl)) break;
      const std::string dir = tmpl;
      const std::string file = dir + "/kernel.cl";
      {
        std::ofstream f(file);
        // A text no cache has seen (Axle's or the driver's).
        f << "// " << ::getpid() << " " << Clock::now().time_since_epoch().count() << " " << run << "\n"
          << kEmptyKernel;
      }
      const std::string cache = dir + "/cache";
      double ms = 0;
      std::string src;
      if (run_child(self, cache, dev.id(), file, ms, src) && src == "compiled") cold.push_back(ms);
      else std::fprintf(stderr, "cold run %d failed or was not compiled (%s)\n", run, src.c_str());
      if (run_child(self, cache, dev.id(), file, ms, src) && src == "disk") warm.push_back(ms);
      else std::fprintf(stderr, "warm run %d failed or did not load from disk (%s)\n", run, src.c_str());
      remove_dir(dir);
    }
    if (!cold.empty())
      records.push_back({"first_launch", "cold disk cache (new process)", "axle", "ms", median(cold), 0,
                         best_of(cold, false)});
    if (!warm.empty())
      records.push_back({"first_launch", "warm disk cache (new process)", "axle", "ms", median(warm), 0,
                         best_of(warm, false)});
  }

  // ---- report
  std::printf("\n%-16s %-32s %-11s %10s %10s %-10s %8s\n", "bench", "variant", "impl", "median", "best", "unit",
              "axle/raw");
  for (const auto& r : records) {
    char ratio[32] = "";
    if (r.ratio > 0) std::snprintf(ratio, sizeof(ratio), "%.3f", r.ratio);
    std::printf("%-16s %-32s %-11s %10.3f %10.3f %-10s %8s\n", r.bench.c_str(), r.variant.c_str(), r.impl.c_str(),
                r.value, r.best, r.unit.c_str(), ratio);
  }
  std::printf("(launch: %d launches + finish per repeat; copies: one copy + finish per repeat; %d repeats; "
              "first launch: median of %d processes each)\n",
              opt.launches, opt.repeats, opt.cache_runs);

  if (!opt.json.empty()) {
    nlohmann::ordered_json doc;
    doc["device"] = dev.id();
    doc["device_name"] = dev.name();
    doc["backend"] = dev.backend();
    doc["records"] = nlohmann::ordered_json::array();
    for (const auto& r : records) {
      nlohmann::ordered_json o{{"bench", r.bench}, {"variant", r.variant}, {"impl", r.impl},
                               {"median", r.value}, {"best", r.best},       {"unit", r.unit}};
      if (r.ratio > 0) o["ratio_to_raw"] = r.ratio;
      doc["records"].push_back(std::move(o));
    }
    std::ofstream f(opt.json);
    f << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", opt.json.c_str());
      return 1;
    }
    std::printf("wrote %s\n", opt.json.c_str());
  }
  return 0;
}

std::string self_path(const char* argv0) {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
  return argv0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--probe-build") return probe_build(argv[2], argv[3]);
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") opt.device = next();
    else if (a == "--json") opt.json = next();
    else if (a == "--launches") opt.launches = std::max(1, std::atoi(next().c_str()));
    else if (a == "--repeats") opt.repeats = std::max(1, std::atoi(next().c_str()));
    else if (a == "--copy-mib") opt.copy_mib = static_cast<std::size_t>(std::max(1, std::atoi(next().c_str())));
    else if (a == "--cache-runs") opt.cache_runs = std::max(1, std::atoi(next().c_str()));
    else {
      std::fprintf(stderr,
                   "usage: %s [--device SPEC] [--launches N] [--repeats R] [--copy-mib M] [--cache-runs C] "
                   "[--json PATH]\n",
                   argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  try {
    return run(opt, self_path(argv[0]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runtime_bench: %s\n", e.what());
    return 1;
  }
}
