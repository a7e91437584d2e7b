// soak: a mixed workload from several threads for a set time, every result checked.
//
//   soak [--seconds N] [--threads T] [--device SPEC] [--progress S] [--json PATH]
//
// Each thread owns two streams and runs, in turn: host<->device and device-to-device
// copies, fills, kernel launches, GEMMs (axle::blas), convolutions (axle::dnn), events
// across its two streams, program builds (a few variants, built over and over from every
// thread: cache hits and concurrent first builds) and stream/event creation and
// destruction. Every S seconds it prints the operations done so far and the resident
// memory; at the end, operations and failures per kind and the RSS at start, after the
// warm-up (the first 10% of the run, at least 5 s, at most 60 s) and at the end. Exit
// status 1 when any operation failed.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "axle/dnn.hpp"

namespace axle::embedded {
std::string_view soak_kernel(std::string_view relative_path);
}

namespace {

using Clock = std::chrono::steady_clock;

enum Kind { kCopy, kFill, kKernel, kGemm, kConv, kEvent, kBuild, kStream, kKinds };
constexpr const char* kKindNames[kKinds] = {"copy", "fill", "kernel", "gemm", "conv", "event", "build", "stream"};
constexpr int kVariants = 6;  // distinct programs the build operation cycles through

std::array<std::atomic<unsigned long long>, kKinds> g_ops{};
std::array<std::atomic<unsigned long long>, kKinds> g_failures{};
std::mutex g_print_mutex;
std::atomic<int> g_failure_lines{0};

// Resident set size in bytes (from /proc/self/statm).
long long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long long pages_total = 0, pages_resident = 0;
  f >> pages_total >> pages_resident;
  return pages_resident * static_cast<long long>(::sysconf(_SC_PAGESIZE));
}
double mib(long long bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

void fail(Kind kind, const std::string& what) {
  g_failures[kind].fetch_add(1);
  if (g_failure_lines.fetch_add(1) < 50) {
    std::lock_guard<std::mutex> lock(g_print_mutex);
    std::fprintf(stderr, "FAIL [%s] %s\n", kKindNames[kind], what.c_str());
  }
}

// Small dyadic values: their products and sums are exact in float.
float dyadic(std::size_t i, std::size_t salt, int modulo) {
  return static_cast<float>(static_cast<int>((i * 7 + salt * 3) % static_cast<std::size_t>(modulo)) - modulo / 2) *
         0.125f;
}

std::string first_mismatch(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  for (std::size_t i = 0; i < want.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1.0 + std::fabs(want[i]))))
      return "[" + std::to_string(i) + "] = " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
  return "";
}

struct Shared {
  axle::Device device;
  std::string source;
  Clock::time_point deadline;
};

class Worker {
 public:
  Worker(const Shared& shared, unsigned index)
      : sh_(shared), index_(index), a_(shared.device.create_stream()), b_(shared.device.create_stream()) {}

  void run() {
    for (std::size_t step = index_; Clock::now() < sh_.deadline; ++step) {
      const Kind kind = static_cast<Kind>(step % kKinds);
      try {
        const std::string bad = op(kind, step);
        if (bad.empty())
          g_ops[kind].fetch_add(1);
        else
          fail(kind, "thread " + std::to_string(index_) + ": " + bad);
      } catch (const std::exception& e) {
        fail(kind, "thread " + std::to_string(index_) + ": " + e.what());
      }
    }
  }

 private:
  std::string op(Kind kind, std::size_t step) {
    switch (kind) {
      case kCopy:
        return copy(step);
      case kFill:
        return fill(step);
      case kKernel:
        return kernel(step);
      case kGemm:
        return gemm(step);
      case kConv:
        return conv(step);
      case kEvent:
        return event(step);
      case kBuild:
        return build(step);
      case kStream:
        return stream(step);
      default:
        return "unknown kind";
    }
  }

  axle::Program program(int variant) const {
    axle::BuildOptions o;
    o.define("SOAK_VARIANT", variant);
    return sh_.device.build(axle::Source::portable(sh_.source, "soak.cl"), o);
  }

  // host -> device, device -> device (at an offset), device -> host.
  std::string copy(std::size_t step) {
    const std::size_t n = 4096 + step % 977;
    std::vector<float> h(n), back(n - 3);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>((i * 31 + step) % 1000);
    axle::Buffer x = sh_.device.alloc<float>(n), y = sh_.device.alloc<float>(n);
    a_.copy(h, x);
    a_.copy(x.view<float>(3, n - 3), y.view<float>(0, n - 3));
    a_.copy(y.view<float>(0, n - 3), back.data(), back.size());
    a_.synchronize();
    std::vector<float> want(h.begin() + 3, h.end());
    return first_mismatch(back, want, 0);
  }

  std::string fill(std::size_t step) {
    const std::size_t n = 2048 + step % 511;
    const int v = static_cast<int>(step % 100000);
    axle::Buffer x = sh_.device.alloc<int>(n);
    b_.fill(x.view<int>(), v);
    b_.fill(x.view<int>(n / 2, n / 4), -v);
    std::vector<int> h(n);
    b_.copy(x, h);
    b_.synchronize();
    for (std::size_t i = 0; i < n; ++i) {
      const int want = i >= n / 2 && i < n / 2 + n / 4 ? -v : v;
      if (h[i] != want) return "fill [" + std::to_string(i) + "] = " + std::to_string(h[i]);
    }
    return "";
  }

  std::string kernel(std::size_t step) {
    const int variant = static_cast<int>(step % kVariants);
    const axle::Kernel k = program(variant).kernel("soak_axpby");
    const std::size_t n = 3000 + step % 101;
    std::vector<float> x(n), want(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = static_cast<float>(i % 19);
      want[i] = 2.0f * x[i] + 0.5f * 4.0f + static_cast<float>(variant);
    }
    axle::Buffer bx = sh_.device.alloc<float>(n), by = sh_.device.alloc<float>(n);
    a_.copy(x, bx);
    a_.fill(by.view<float>(), 4.0f);
    a_.launch(k, axle::Range{axle::round_up(n, 64)}, axle::Range{}, bx.view<float>(), by.view<float>(), 2.0f, 0.5f,
              static_cast<int>(n));
    std::vector<float> got(n);
    a_.copy(by, got);
    a_.synchronize();
    return first_mismatch(got, want, 0);
  }

  std::string gemm(std::size_t step) {
    static constexpr std::size_t kShapes[][3] = {{37, 29, 23}, {64, 48, 32}, {96, 80, 64}, {5, 128, 40}};
    const auto& sh = kShapes[step % 4];
    const std::size_t m = sh[0], n = sh[1], k = sh[2];
    std::vector<float> a(m * k), b(k * n), want(m * n);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = dyadic(i, step, 11);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = dyadic(i, step + 5, 13);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::size_t q = 0; q < k; ++q) acc += double(a[i * k + q]) * b[q * n + j];
        want[i * n + j] = static_cast<float>(acc + 0.5);
      }
    axle::Stream& s = step % 2 ? a_ : b_;
    axle::Buffer da = sh_.device.alloc<float>(a.size()), db = sh_.device.alloc<float>(b.size()),
                 dc = sh_.device.alloc<float>(want.size());
    s.copy(a, da);
    s.copy(b, db);
    s.fill(dc.view<float>(), 1.0f);
    axle::blas::gemm(s, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, m, n, k, 1.0, da.view<float>(), k,
                     db.view<float>(), n, 0.5, dc.view<float>(), n);
    std::vector<float> got(want.size());
    s.copy(dc, got);
    s.synchronize();
    const std::string bad = first_mismatch(got, want, 1e-5);
    return bad.empty() ? "" : "gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + bad;
  }

  std::string conv(std::size_t step) {
    axle::dnn::Conv2dDesc d;
    d.n = 2;
    d.c = 3 + step % 2;
    d.h = 10;
    d.w = 11;
    d.k = 8;
    d.r = d.s = 3;
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    std::vector<float> x(d.x_elems()), w(d.w_elems()), want(d.y_elems());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = dyadic(i, step, 11);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = dyadic(i, step + 3, 7);
    const std::size_t P = d.out_h(), Q = d.out_w();
    for (std::size_t n = 0; n < d.n; ++n)
      for (std::size_t k = 0; k < d.k; ++k)
        for (std::size_t p = 0; p < P; ++p)
          for (std::size_t q = 0; q < Q; ++q) {
            double acc = 0;
            for (std::size_t c = 0; c < d.c; ++c)
              for (std::size_t r = 0; r < d.r; ++r)
                for (std::size_t t = 0; t < d.s; ++t) {
                  const long ih = long(p + r) - 1, iw = long(q + t) - 1;
                  if (ih < 0 || iw < 0 || ih >= long(d.h) || iw >= long(d.w)) continue;
                  acc += double(x[((n * d.c + c) * d.h + std::size_t(ih)) * d.w + std::size_t(iw)]) *
                         w[((k * d.c + c) * d.r + r) * d.s + t];
                }
            want[((n * d.k + k) * P + p) * Q + q] = static_cast<float>(acc);
          }
    axle::Stream& s = step % 2 ? b_ : a_;
    axle::Buffer dx = sh_.device.alloc<float>(x.size()), dw = sh_.device.alloc<float>(w.size()),
                 dy = sh_.device.alloc<float>(want.size());
    s.copy(x, dx);
    s.copy(w, dw);
    axle::dnn::Conv2dArgs args;
    args.x = dx.view<float>();
    args.w = dw.view<float>();
    args.y = dy.view<float>();
    axle::dnn::conv2d_forward(s, d, args);
    std::vector<float> got(want.size());
    s.copy(dy, got);
    s.synchronize();
    const std::string bad = first_mismatch(got, want, 1e-5);
    return bad.empty() ? "" : "conv " + d.str() + bad;
  }

  // Stream a produces, b waits on an event recorded after it and consumes.
  std::string event(std::size_t step) {
    const axle::Kernel k = program(static_cast<int>(step % kVariants)).kernel("soak_scale");
    const std::size_t n = 1500 + step % 333;
    std::vector<int> h(n), got(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<int>((i + step) % 5000);
    axle::Buffer in = sh_.device.alloc<int>(n), out = sh_.device.alloc<int>(n);
    a_.copy(h, in);
    axle::Event produced = a_.record();
    b_.wait(produced);
    b_.launch(k, axle::Range{axle::round_up(n, 64)}, axle::Range{}, in.view<int>(), out.view<int>(),
              static_cast<int>(n));
    axle::Event consumed = b_.record();
    b_.copy(out, got);
    b_.synchronize();
    a_.synchronize();
    if (!produced.query() || !consumed.query()) return "events not complete after synchronize";
    // Queues of one device share its clock; only a NaN or a missing timestamp is wrong.
    if (std::isnan(consumed.elapsed_ms(produced))) return "elapsed time is NaN";
    for (std::size_t i = 0; i < n; ++i)
      if (got[i] != h[i] * 3 + 1) return "scale [" + std::to_string(i) + "] = " + std::to_string(got[i]);
    return "";
  }

  // A build of one of the variants (an in-memory cache hit after its first build).
  std::string build(std::size_t step) {
    const int variant = static_cast<int>((step / kKinds + index_) % kVariants);
    const axle::Program p = program(variant);
    const auto names = p.kernel_names();
    if (std::find(names.begin(), names.end(), "soak_axpby") == names.end())
      return "soak_axpby missing from the program";
    const axle::Program again = program(variant);
    if (again.native_handle() != p.native_handle()) return "two builds of one source gave different programs";
    return "";
  }

  // A stream of its own: work on it, an event, then both destroyed.
  std::string stream(std::size_t step) {
    axle::Stream s = sh_.device.create_stream();
    axle::Buffer b = sh_.device.alloc<int>(256);
    const int v = static_cast<int>(step);
    s.fill(b.view<int>(), v);
    axle::Event e = s.record();
    std::vector<int> h(256);
    s.copy(b, h);
    e.synchronize();
    s.synchronize();
    if (!e.query()) return "event not complete after synchronize";
    for (int x : h)
      if (x != v) return "fill on a fresh stream gave " + std::to_string(x);
    return "";
  }

  const Shared& sh_;
  unsigned index_;
  axle::Stream a_, b_;
};

unsigned long long total_ops() {
  unsigned long long n = 0;
  for (auto& c : g_ops) n += c.load();
  return n;
}
unsigned long long total_failures() {
  unsigned long long n = 0;
  for (auto& c : g_failures) n += c.load();
  return n;
}

std::string utc_now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--seconds N] [--threads T] [--device SPEC] [--progress S] [--json PATH]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 60, progress = 10;
  unsigned threads = 4;
  std::string device_spec, json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage(argv[0]);
    const std::string v = argv[++i];
    if (a == "--seconds")
      seconds = std::atof(v.c_str());
    else if (a == "--threads")
      threads = static_cast<unsigned>(std::atoi(v.c_str()));
    else if (a == "--device")
      device_spec = v;
    else if (a == "--progress")
      progress = std::atof(v.c_str());
    else if (a == "--json")
      json_path = v;
    else
      return usage(argv[0]);
  }
  if (!(seconds > 0) || threads == 0 || !(progress > 0)) return usage(argv[0]);

  const long long rss_start = rss_bytes();
  Shared shared;
  try {
    shared.device = axle::default_device(device_spec);
    shared.source = std::string(axle::embedded::soak_kernel("kernels/soak.cl"));
    if (shared.source.empty()) throw axle::Error("kernels/soak.cl is not embedded");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "soak: %s\n", e.what());
    return 1;
  }
  const auto& info = shared.device.info();
  std::printf("soak: %s (%s '%s'), %u threads, %.0f s, started %s\n", shared.device.id().c_str(), info.vendor.c_str(),
              info.name.c_str(), threads, seconds, utc_now().c_str());
  std::printf("rss at start: %.1f MiB\n", mib(rss_start));
  std::fflush(stdout);

  const auto t0 = Clock::now();
  shared.deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const double warm_s = std::min(60.0, std::max(5.0, seconds * 0.1));
  std::vector<std::thread> pool;
  std::atomic<unsigned> ready{0};
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&shared, t, &ready] {
      try {
        Worker w(shared, t);
        ready.fetch_add(1);
        w.run();
      } catch (const std::exception& e) {
        ready.fetch_add(1);
        fail(kStream, "thread " + std::to_string(t) + " could not start: " + e.what());
      }
    });

  long long rss_warm = -1, rss_max_after_warm = 0;
  std::vector<std::pair<double, long long>> samples;
  auto next_progress = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(progress));
  while (Clock::now() < shared.deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double el = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rss_warm < 0 && el >= warm_s) {
      rss_warm = rss_bytes();
      std::printf("rss after warm-up (%.0f s): %.1f MiB\n", el, mib(rss_warm));
    }
    if (Clock::now() >= next_progress) {
      next_progress += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(progress));
      const long long rss = rss_bytes();
      if (rss_warm >= 0) rss_max_after_warm = std::max(rss_max_after_warm, rss);
      samples.emplace_back(el, rss);
      std::lock_guard<std::mutex> lock(g_print_mutex);
      std::printf("t=%5.0f s  ops=%llu  failures=%llu  rss=%.1f MiB\n", el, total_ops(), total_failures(), mib(rss));
      std::fflush(stdout);
    }
  }
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const long long rss_end = rss_bytes();
  if (rss_warm < 0) rss_warm = rss_end;

  std::printf("\n%-8s %12s %10s %10s\n", "kind", "ops", "ops/s", "failures");
  for (int k = 0; k < kKinds; ++k)
    std::printf("%-8s %12llu %10.1f %10llu\n", kKindNames[k], g_ops[k].load(), g_ops[k].load() / elapsed,
                g_failures[k].load());
  std::printf("%-8s %12llu %10.1f %10llu\n", "total", total_ops(), total_ops() / elapsed, total_failures());
  const double growth = mib(rss_end - rss_warm);
  std::printf("\nrss: start %.1f MiB, after warm-up %.1f MiB, max after warm-up %.1f MiB, end %.1f MiB\n",
              mib(rss_start), mib(rss_warm), mib(std::max(rss_max_after_warm, rss_end)), mib(rss_end));
  std::printf("rss growth from warm-up to end: %+.1f MiB (%+.1f%%) over %.0f s\n", growth,
              100.0 * static_cast<double>(rss_end - rss_warm) / static_cast<double>(rss_warm), elapsed - warm_s);
  std::printf("failures: %llu\n", total_failures());

  if (!json_path.empty()) {
    nlohmann::ordered_json doc;
    doc["tool"] = "soak";
    doc["finished"] = utc_now();
    doc["device"] = shared.device.id();
    doc["threads"] = threads;
    doc["seconds"] = elapsed;
    for (int k = 0; k < kKinds; ++k) {
      doc["ops"][kKindNames[k]] = g_ops[k].load();
      doc["failures"][kKindNames[k]] = g_failures[k].load();
    }
    doc["rss_bytes"] = {{"start", rss_start}, {"warm", rss_warm}, {"end", rss_end}};
    doc["rss_samples"] = nlohmann::ordered_json::array();
    for (const auto& smp : samples) doc["rss_samples"].push_back({smp.first, smp.second});
    std::ofstream j(json_path);
    j << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!j) std::fprintf(stderr, "soak: cannot write %s\n", json_path.c_str());
  }
  return total_failures() == 0 ? 0 : 1;
}
