// launch_cuda_bench: Axle's CUDA backend against raw driver-API calls, in one run.
//
//   1. empty-kernel launch: host enqueue time per launch and launch+synchronize round
//      trip, through axle::Stream::launch and through cuLaunchKernel on a raw
//      non-blocking stream (same CUfunction, same pattern); medians; ratio Axle/raw.
//   2. first launch of a kernel: with a cold kernel cache (a fresh AXLE_CACHE_DIR) and
//      with a warm disk cache (the same directory, second process): each measured in a
//      child process (this program run with --first-launch) so nothing is cached in memory.
//   3. host<->device copy bandwidth from 64 MiB of pinned memory: Axle vs
//      cuMemcpyHtoDAsync / cuMemcpyDtoHAsync on the raw stream.
//
// Usage: launch_cuda_bench [--json FILE] [--reps N]
// Without a CUDA device it prints why and exits 0.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/interop/cuda.hpp"
#include "cuda_api.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

const char* kEmpty = "AXLE_KERNEL void axle_bench_empty(int x) { (void)x; }\n";

// A kernel with enough code that compiling it takes a noticeable time.
const char* kFirstLaunch = R"(
AXLE_FUNC float poly(float x) {
  float r = 0.0f;
  for (int i = 0; i < 16; ++i) r = fma(r, x, (float)i * 0.5f);
  return r;
}
AXLE_KERNEL void axle_bench_first(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* out, uint n,
                                  AXLE_LOCAL_PTR(float) tile) {
  const uint i = (uint)AXLE_GLOBAL_ID(0), l = (uint)AXLE_LOCAL_ID(0);
  tile[l] = i < n ? in[i] : 0.0f;
  AXLE_BARRIER();
  float4 acc = AXLE_SPLAT(float4, 0.0f);
  for (uint k = 0; k < AXLE_LOCAL_SIZE(0); k += 4) {
    acc.x += poly(tile[k]);
    acc.y += native_exp(tile[k + 1]);
    acc.z += sqrt(fabs(tile[k + 2]));
    acc.w += tanh(tile[k + 3]);
  }
  if (i < n) out[i] = acc.x + acc.y + acc.z + acc.w;
}
)";

const auto& drv() { return axle::detail::cuda::driver(); }

void cu(CUresult r, const char* what) {
  if (r != CUDA_SUCCESS) {
    std::fprintf(stderr, "%s failed: %s\n", what, axle::detail::cuda::status_name(r).c_str());
    std::exit(1);
  }
}

// Child mode: time build + first launch + synchronize of kFirstLaunch.
int first_launch_child() {
  const auto t_dev = Clock::now();
  axle::Device dev = axle::select_device("cuda:0");
  axle::Stream s = dev.create_stream();
  const double dev_ms = ms_since(t_dev);
  const unsigned n = 1 << 16;
  auto in = dev.alloc<float>(n), out = dev.alloc<float>(n);
  s.fill(in.view<float>(), 0.25f);
  s.synchronize();
  const auto t0 = Clock::now();
  axle::Program p = dev.build(axle::Source::portable(kFirstLaunch, "bench_first_launch"));
  const double build_ms = ms_since(t0);
  s.launch(p.kernel("axle_bench_first"), axle::Range{n}, axle::Range{256}, in.view<float>(), out.view<float>(), n,
           axle::local<float>(256));
  s.synchronize();
  std::printf("first_launch_ms=%.3f build_ms=%.3f device_init_ms=%.3f from_disk_cache=%d\n", ms_since(t0), build_ms,
              dev_ms, p.from_disk_cache() ? 1 : 0);
  return 0;
}

struct ChildResult {
  double first_ms = -1, build_ms = -1, init_ms = -1;
  int from_disk = -1;
};

ChildResult run_child(const std::string& cache_dir) {
  ChildResult r;
  setenv("AXLE_CACHE_DIR", cache_dir.c_str(), 1);
  const std::string cmd = "/proc/" + std::to_string(getpid()) + "/exe --first-launch";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  char line[512];
  while (std::fgets(line, sizeof line, f))
    std::sscanf(line, "first_launch_ms=%lf build_ms=%lf device_init_ms=%lf from_disk_cache=%d", &r.first_ms,
                &r.build_ms, &r.init_ms, &r.from_disk);
  pclose(f);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int reps = 5000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--first-launch")) return first_launch_child();
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(100, std::atoi(argv[++i]));
  }
  try {
    bool have = false;
    std::string why = "the CUDA backend is not compiled in";
    for (const auto& b : axle::backends())
      if (b.name == "cuda") {
        have = b.available && b.device_count > 0;
        why = b.reason;
      }
    if (!have) {
      std::printf("launch_cuda_bench: no CUDA device (%s); nothing to measure\n", why.c_str());
      return 0;
    }

    // ---- 2. first launch, cold then warm disk cache (child processes) ----
    char tmpl[] = "/tmp/axle_bench_cache_XXXXXX";
    const char* dir = mkdtemp(tmpl);
    ChildResult cold, warm;
    if (dir) {
      cold = run_child(dir);
      warm = run_child(dir);
      std::system((std::string("rm -rf '") + dir + "'").c_str());
    }

    axle::Device dev = axle::select_device("cuda:0");
    const auto& d = drv();
    axle::Stream s = dev.create_stream();
    axle::BuildOptions nocache;
    nocache.disk_cache = false;
    axle::Kernel k = dev.build(axle::Source::portable(kEmpty, "bench_empty"), nocache).kernel("axle_bench_empty");
    CUfunction fn = axle::cuda::function(k);
    // Axle leaves the thread's current context as it found it; raw calls need Axle's.
    cu(d.cuCtxSetCurrent(axle::cuda::context(dev)), "cuCtxSetCurrent");
    CUstream raw = nullptr;
    cu(d.cuStreamCreate(&raw, CU_STREAM_NON_BLOCKING), "cuStreamCreate");

    // ---- 1. empty-kernel launches ----
    int arg = 0;
    void* params[] = {&arg};
    auto axle_launch = [&] { s.launch(k, axle::Range{32}, axle::Range{32}, arg); };
    auto raw_launch = [&] { cu(d.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, raw, params, nullptr), "cuLaunchKernel"); };
    auto axle_sync = [&] { s.synchronize(); };
    auto raw_sync = [&] { cu(d.cuStreamSynchronize(raw), "cuStreamSynchronize"); };
    auto enqueue_us = [&](const std::function<void()>& launch, const std::function<void()>& sync) {
      std::vector<double> t;
      t.reserve(static_cast<std::size_t>(reps));
      for (int i = 0; i < 200; ++i) launch();  // warm-up
      sync();
      for (int i = 0; i < reps; ++i) {
        const auto t0 = Clock::now();
        launch();
        t.push_back(ms_since(t0) * 1000.0);
        if (i % 500 == 499) sync();  // keep the queue short
      }
      sync();
      return median(t);
    };
    auto roundtrip_us = [&](const std::function<void()>& launch, const std::function<void()>& sync) {
      std::vector<double> t;
      const int n = std::max(100, reps / 5);
      for (int i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        launch();
        sync();
        t.push_back(ms_since(t0) * 1000.0);
      }
      return median(t);
    };
    // Interleave the two so clock/boost drift affects both alike.
    const double enq_axle = enqueue_us(axle_launch, axle_sync);
    const double enq_raw = enqueue_us(raw_launch, raw_sync);
    const double rt_axle = roundtrip_us(axle_launch, axle_sync);
    const double rt_raw = roundtrip_us(raw_launch, raw_sync);

    // ---- 3. pinned copies, 64 MiB ----
    const std::size_t bytes = 64u << 20;
    auto pin = dev.alloc_pinned<std::uint8_t>(bytes);
    std::memset(pin.data(), 1, bytes);
    auto buf = dev.alloc<std::uint8_t>(bytes);
    const CUdeviceptr dptr = axle::cuda::devptr(buf);
    auto gbps = [&](const std::function<void()>& copy, const std::function<void()>& sync) {
      copy();
      sync();
      std::vector<double> t;
      for (int i = 0; i < 10; ++i) {
        const auto t0 = Clock::now();
        copy();
        sync();
        t.push_back(bytes / (ms_since(t0) * 1e-3) / 1e9);
      }
      return median(t);
    };
    const double h2d_axle = gbps([&] { s.copy(pin, buf.view<std::uint8_t>()); }, axle_sync);
    const double h2d_raw =
        gbps([&] { cu(d.cuMemcpyHtoDAsync(dptr, pin.data(), bytes, raw), "cuMemcpyHtoDAsync"); }, raw_sync);
    const double d2h_axle = gbps([&] { s.copy(buf.view<std::uint8_t>(), pin); }, axle_sync);
    const double d2h_raw =
        gbps([&] { cu(d.cuMemcpyDtoHAsync(pin.data(), dptr, bytes, raw), "cuMemcpyDtoHAsync"); }, raw_sync);
    cu(d.cuStreamDestroy(raw), "cuStreamDestroy");

    const auto& inf = dev.info();
    std::printf("launch_cuda_bench on %s (%s, %s)\n", inf.name.c_str(), inf.architecture.c_str(), inf.version.c_str());
    std::printf("%-38s %12s %12s %8s\n", "measure", "axle", "raw driver", "ratio");
    std::printf("%-38s %12.2f %12.2f %8.2f\n", "empty launch enqueue, median us", enq_axle, enq_raw,
                enq_raw > 0 ? enq_axle / enq_raw : 0.0);
    std::printf("%-38s %12.2f %12.2f %8.2f\n", "empty launch + sync, median us", rt_axle, rt_raw,
                rt_raw > 0 ? rt_axle / rt_raw : 0.0);
    std::printf("%-38s %12.2f %12.2f %8.2f\n", "H2D 64 MiB pinned, GB/s", h2d_axle, h2d_raw,
                h2d_raw > 0 ? h2d_axle / h2d_raw : 0.0);
    std::printf("%-38s %12.2f %12.2f %8.2f\n", "D2H 64 MiB pinned, GB/s", d2h_axle, d2h_raw,
                d2h_raw > 0 ? d2h_axle / d2h_raw : 0.0);
    std::printf("first launch (build+launch+sync), cold cache: %.1f ms (build %.1f ms, from disk %d)\n", cold.first_ms,
                cold.build_ms, cold.from_disk);
    std::printf("first launch (build+launch+sync), warm disk cache: %.1f ms (build %.1f ms, from disk %d)\n",
                warm.first_ms, warm.build_ms, warm.from_disk);
    std::printf("device init (select + stream) in a fresh process: %.1f ms\n", cold.init_ms);

    if (!json_path.empty()) {
      std::ofstream j(json_path);
      j << "{\n  \"device\": \"" << inf.name << "\", \"arch\": \"" << inf.architecture << "\", \"version\": \""
        << inf.version << "\",\n"
        << "  \"launch_enqueue_us\": {\"axle\": " << enq_axle << ", \"raw\": " << enq_raw << "},\n"
        << "  \"launch_roundtrip_us\": {\"axle\": " << rt_axle << ", \"raw\": " << rt_raw << "},\n"
        << "  \"h2d_pinned_64MiB_GBps\": {\"axle\": " << h2d_axle << ", \"raw\": " << h2d_raw << "},\n"
        << "  \"d2h_pinned_64MiB_GBps\": {\"axle\": " << d2h_axle << ", \"raw\": " << d2h_raw << "},\n"
        << "  \"first_launch_ms\": {\"cold\": " << cold.first_ms << ", \"warm_disk\": " << warm.first_ms
        << ", \"cold_from_disk\": " << cold.from_disk << ", \"warm_from_disk\": " << warm.from_disk << "},\n"
        << "  \"device_init_ms\": " << cold.init_ms << "\n}\n";
      std::printf("wrote %s\n", json_path.c_str());
    }
    return 0;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "launch_cuda_bench: %s\n", e.what());
    return 1;
  }
}
