// Axle used from many threads and processes at once, on every available device: host
// threads each driving their own streams (copies, fills, kernels, GEMM, convolution,
// events across streams) while others create and destroy streams; events queried and
// waited on while another thread re-records them; one source built from many threads
// and from many processes into one disk cache; the library's caches reset while in use;
// and the first use of the library from many threads at once in a fresh process.
// Every result is checked against a host reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "axle/cache.hpp"
#include "axle/dnn.hpp"
#include "conv_reference.hpp"
#include "log_levels.hpp"
#include "test_util.hpp"

namespace {

constexpr const char* kSource = R"(
// y[i] = a * x[i] + b * y[i] for i < n.
AXLE_KERNEL void axpby(AXLE_GLOBAL const float* x, AXLE_GLOBAL float* y, float a, float b, int n) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i < n) y[i] = a * x[i] + b * y[i];
}
AXLE_KERNEL void tick(AXLE_GLOBAL int* x) { x[AXLE_GLOBAL_ID(0)] += 1; }
// slots[r] = r + 1 (one work-item).
AXLE_KERNEL void set_slot(AXLE_GLOBAL int* slots, int r) {
  if (AXLE_GLOBAL_ID(0) == 0) slots[r] = r + 1;
}
)";

// The child of FirstUse.ManyThreadsAtOnceInAFreshProcess must not touch the library before
// its test starts, so the per-device suites are left empty there.
bool first_use_child() {
  const char* c = std::getenv("AXLE_TEST_CHILD");
  return c && std::string(c) == "first_use";
}
std::vector<axle::Device> test_devices() { return first_use_child() ? std::vector<axle::Device>{} : axle::devices(); }

// Failures seen in worker threads, reported by the test's own thread.
class Failures {
 public:
  void add(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (list_.size() < 20) list_.push_back(what);
    ++count_;
  }
  // Runs fn, recording any exception it throws.
  void guard(const std::string& where, const std::function<void()>& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      add(where + ": " + e.what());
    }
  }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string s = std::to_string(count_) + " failure(s)";
    for (const auto& f : list_) s += "\n  " + f;
    return s;
  }
  bool empty() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_ == 0;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> list_;
  std::size_t count_ = 0;
};

// Releases every waiting thread at once when the last of `n` arrives.
class Barrier {
 public:
  explicit Barrier(std::size_t n) : n_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (++arrived_ == n_) {
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return arrived_ >= n_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t n_, arrived_ = 0;
};

// First index where got and want differ beyond tol (relative), or "" when they agree.
std::string compare(const std::vector<float>& got, const std::vector<float>& want, double tol,
                    const std::string& what) {
  if (got.size() != want.size())
    return what + ": " + std::to_string(got.size()) + " values, want " + std::to_string(want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1.0 + std::fabs(want[i]))))
      return what + "[" + std::to_string(i) + "] = " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
  return "";
}

// Small dyadic values: products and sums of them are exact in float.
float value(std::size_t i, std::size_t salt, int modulo = 11) {
  return static_cast<float>(static_cast<int>((i * 7 + salt * 3) % static_cast<std::size_t>(modulo)) - modulo / 2) *
         0.125f;
}

// ---- GEMM and convolution with host references ----

struct GemmCase {
  std::size_t m, n, k;
};

// C = A * B + 0.5 * C (row-major, C starts at 1); returns "" or the first mismatch.
std::string run_gemm(axle::Stream& s, const GemmCase& g, std::size_t salt) {
  const axle::Device& dev = s.device();
  std::vector<float> a(g.m * g.k), b(g.k * g.n), c(g.m * g.n, 1.0f);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = value(i, salt);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = value(i, salt + 5, 13);
  std::vector<float> want(c.size());
  for (std::size_t i = 0; i < g.m; ++i)
    for (std::size_t j = 0; j < g.n; ++j) {
      double acc = 0;
      for (std::size_t q = 0; q < g.k; ++q) acc += double(a[i * g.k + q]) * b[q * g.n + j];
      want[i * g.n + j] = static_cast<float>(acc + 0.5);
    }
  axle::Buffer da = dev.alloc<float>(a.size()), db = dev.alloc<float>(b.size()), dc = dev.alloc<float>(c.size());
  s.copy(a, da);
  s.copy(b, db);
  s.fill(dc.view<float>(), 1.0f);
  axle::blas::gemm(s, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, g.m, g.n, g.k, 1.0, da.view<float>(), g.k,
                   db.view<float>(), g.n, 0.5, dc.view<float>(), g.n);
  std::vector<float> got(c.size());
  s.copy(dc, got);
  s.synchronize();
  return compare(got, want, 1e-5,
                 "gemm " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k));
}

axle::dnn::Conv2dDesc conv_case(std::size_t variant) {
  axle::dnn::Conv2dDesc d;
  d.n = 2;
  d.c = 3;
  d.h = 9 + variant % 2;
  d.w = 11;
  d.k = 4;
  d.r = d.s = 3;
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  return d;
}

// y = conv(x, w) (NCHW, cross-correlation); returns "" or the first mismatch.
std::string run_conv(axle::Stream& s, const axle::dnn::Conv2dDesc& d, std::size_t salt) {
  using axle_test::conv::w_index;
  using axle_test::conv::x_index;
  using axle_test::conv::y_index;
  const axle::Device& dev = s.device();
  std::vector<float> x(d.x_elems()), w(d.w_elems()), want(d.y_elems());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = value(i, salt);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = value(i, salt + 3, 7);
  const std::size_t P = d.out_h(), Q = d.out_w();
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t k = 0; k < d.k; ++k)
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t q = 0; q < Q; ++q) {
          double acc = 0;
          for (std::size_t c = 0; c < d.c; ++c)
            for (std::size_t r = 0; r < d.r; ++r)
              for (std::size_t t = 0; t < d.s; ++t) {
                const long ih = long(p + r) - long(d.pad_top), iw = long(q + t) - long(d.pad_left);
                if (ih < 0 || iw < 0 || ih >= long(d.h) || iw >= long(d.w)) continue;
                acc += double(x[x_index(d, n, c, std::size_t(ih), std::size_t(iw))]) * w[w_index(d, k, c, r, t)];
              }
          want[y_index(d, n, k, p, q)] = static_cast<float>(acc);
        }
  axle::Buffer dx = dev.alloc<float>(x.size()), dw = dev.alloc<float>(w.size()), dy = dev.alloc<float>(want.size());
  s.copy(x, dx);
  s.copy(w, dw);
  s.fill(dy.view<float>(), -7.0f);
  axle::dnn::Conv2dArgs args;
  args.x = dx.view<float>();
  args.w = dw.view<float>();
  args.y = dy.view<float>();
  axle::dnn::conv2d_forward(s, d, args);
  std::vector<float> got(want.size());
  s.copy(dy, got);
  s.synchronize();
  return compare(got, want, 1e-5, "conv " + d.str());
}

class Concurrency : public ::testing::TestWithParam<axle::Device> {
 protected:
  const axle::Device& dev() const { return GetParam(); }
  axle::Program program() const { return dev().build(axle::Source::portable(kSource, "concurrency.cl")); }
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(Devices, Concurrency, ::testing::ValuesIn(test_devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Concurrency);

// N host threads x M streams each: copies, fills, a kernel, a wait across two streams of
// one thread, GEMM and convolution, all checked; meanwhile one more thread creates and
// destroys streams and events and synchronizes the device.
TEST_P(Concurrency, ThreadsTimesStreamsOfCopiesFillsKernelsGemmAndConv) {
  constexpr std::size_t kThreads = 6, kStreams = 2, kRounds = 6;
  const axle::Kernel axpby = program().kernel("axpby");
  const GemmCase gemms[] = {{37, 29, 23}, {16, 33, 9}, {5, 64, 40}};
  Failures failures;
  std::atomic<std::size_t> checks{0};
  std::atomic<bool> done{false};
  Barrier start(kThreads + 1);

  auto worker = [&](std::size_t t) {
    std::vector<axle::Stream> streams;
    failures.guard("thread " + std::to_string(t) + " setup", [&] {
      for (std::size_t m = 0; m < kStreams; ++m) streams.push_back(dev().create_stream());
    });
    start.arrive_and_wait();
    if (streams.size() != kStreams) return;
    for (std::size_t r = 0; r < kRounds; ++r) {
      for (std::size_t m = 0; m < kStreams; ++m) {
        const std::string where =
            "thread " + std::to_string(t) + " stream " + std::to_string(m) + " round " + std::to_string(r);
        failures.guard(where, [&] {
          axle::Stream& s = streams[m];
          axle::Stream& other = streams[(m + 1) % kStreams];
          const std::size_t n = 1000 + 37 * t + 5 * m + r, salt = t * 100 + m * 10 + r;
          std::vector<float> hx(n), want(n);
          for (std::size_t i = 0; i < n; ++i) {
            hx[i] = static_cast<float>((i + salt) % 17);
            want[i] = 2.0f * hx[i] + 0.5f * 3.0f;
          }
          // x is produced on the other stream; this stream waits for it through an event.
          axle::Buffer bx = dev().alloc<float>(n), by = dev().alloc<float>(n), bz = dev().alloc<float>(n);
          other.copy(hx, bx);
          axle::Event ready = other.record();
          s.fill(by.view<float>(), 3.0f);
          s.wait(ready);
          s.launch(axpby, axle::Range{axle::round_up(n, 64)}, axle::Range{}, bx.view<float>(), by.view<float>(), 2.0f,
                   0.5f, static_cast<int>(n));
          // A shifted device-to-device copy and a fill of the element it leaves.
          s.copy(by.view<float>(1, n - 1), bz.view<float>(0, n - 1));
          s.fill(bz.view<float>(n - 1, 1), -1.0f);
          std::vector<float> hy(n), hz(n);
          s.copy(by, hy);
          s.copy(bz, hz);
          s.synchronize();
          std::vector<float> want_z(want.begin() + 1, want.end());
          want_z.push_back(-1.0f);
          std::string bad = compare(hy, want, 0, "axpby");
          if (bad.empty()) bad = compare(hz, want_z, 0, "shifted copy");
          if (bad.empty()) bad = run_gemm(s, gemms[(t + m + r) % 3], salt);
          if (bad.empty()) bad = run_conv(s, conv_case(t + r), salt);
          if (!bad.empty()) failures.add(where + ": " + bad);
          checks += 4;
        });
      }
    }
  };

  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  std::size_t churned = 0;
  std::thread churn([&] {
    start.arrive_and_wait();
    failures.guard("churn", [&] {
      const axle::Kernel tick = program().kernel("tick");
      while (!done.load() || churned == 0) {
        axle::Stream s = dev().create_stream();
        axle::Buffer b = dev().alloc<int>(64);
        s.fill(b.view<int>(), 41);
        s.launch(tick, axle::Range{64}, axle::Range{}, b.view<int>());
        axle::Event e = s.record();
        dev().synchronize();
        if (!e.query()) failures.add("churn: event not complete after Device::synchronize");
        std::vector<int> h(64);
        s.copy(b, h);
        s.synchronize();
        if (std::count(h.begin(), h.end(), 42) != 64) failures.add("churn: kernel result wrong");
        ++churned;
      }  // the stream, its buffer and its event are destroyed here, while others work
    });
  });
  for (auto& th : threads) th.join();
  done = true;
  churn.join();
  EXPECT_TRUE(failures.empty()) << failures.text();
  EXPECT_EQ(checks.load(), kThreads * kStreams * kRounds * 4);
  EXPECT_GT(churned, 0u);
}

// One thread re-records an event after each kernel while another queries it (and times
// it) and a third makes its own stream wait on it and reads what the work before the
// record wrote: the record it waited for must be at least the one published before.
TEST_P(Concurrency, EventQueriedAndWaitedOnWhileAnotherThreadReRecordsIt) {
  constexpr int kRounds = 3000;
  const axle::Program prog = program();
  const axle::Kernel tick = prog.kernel("tick"), set_slot = prog.kernel("set_slot");
  axle::Stream s = dev().create_stream();
  axle::Buffer counter = dev().alloc<int>(64), slots = dev().alloc<int>(kRounds);
  s.fill(counter.view<int>(), 0);
  s.fill(slots.view<int>(), 0);
  axle::Event first = s.record();
  axle::Event e = s.record();
  s.synchronize();
  std::atomic<int> published{0};
  std::atomic<bool> stop{false};
  std::atomic<int> queries{0}, waits{0};
  Failures failures;

  std::thread poller([&] {
    failures.guard("poller", [&] {
      while (!stop.load()) {
        if (!e.recorded()) failures.add("poller: a recorded event reads as never recorded");
        (void)e.query();
        (void)e.native_handle();
        if (queries.fetch_add(1) % 64 == 0 && !(e.elapsed_ms(first) >= 0.0f))
          failures.add("poller: negative time from the first record to a later one");
      }
    });
  });
  std::thread waiter([&] {
    failures.guard("waiter", [&] {
      axle::Stream w = dev().create_stream();
      for (;;) {
        const bool last = stop.load();
        const int n = published.load();
        w.wait(e);
        std::vector<int> h(static_cast<std::size_t>(std::max(n, 1)));
        if (n > 0) w.copy(slots.view<int>(0, static_cast<std::size_t>(n)), h.data(), h.size());
        w.synchronize();
        for (int i = 0; i < n; ++i)
          if (h[static_cast<std::size_t>(i)] != i + 1) {
            failures.add("waiter: after waiting for record " + std::to_string(n) + ", slot " + std::to_string(i) +
                         " holds " + std::to_string(h[static_cast<std::size_t>(i)]));
            return;
          }
        waits.fetch_add(1);
        if (last) return;
      }
    });
  });
  for (int r = 0; r < kRounds; ++r) {
    s.launch(tick, axle::Range{64}, axle::Range{}, counter.view<int>());
    s.launch(set_slot, axle::Range{1}, axle::Range{}, slots.view<int>(), r);
    s.record(e);
    published.store(r + 1);
    if (r % 256 == 0) s.synchronize();
  }
  s.synchronize();
  // Let the poller see the final record too, then stop both (the waiter checks once more).
  const int seen = queries.load();
  while (queries.load() < seen + 10 && failures.empty()) std::this_thread::yield();
  stop = true;
  poller.join();
  waiter.join();
  EXPECT_TRUE(failures.empty()) << failures.text();
  EXPECT_GT(waits.load(), 0);
  EXPECT_TRUE(e.query());
  std::vector<int> h(64);
  s.copy(counter, h);
  s.synchronize();
  for (int v : h) ASSERT_EQ(v, kRounds);
}

// One new source built by many threads released at once: one compile, one Program and
// one kernel object for all of them, one valid disk-cache entry, and every thread's
// launch right. A source that does not compile gives every thread the same BuildError.
TEST_P(Concurrency, ThreadsBuildingOneSourceGetOneProgram) {
  constexpr std::size_t kThreads = 8;
  axle_test::TempDir tmp;
  const std::string dir = tmp.file("cache");
  axle_test::ScopedEnv cache("AXLE_CACHE_DIR", dir);
  const std::string text = "// " + axle_test::unique_token() +
                           "\nAXLE_KERNEL void probe(AXLE_GLOBAL int* out, long v) {\n"
                           "  out[AXLE_GLOBAL_ID(0)] = 321 + (int)v + (int)AXLE_GLOBAL_ID(0);\n}\n";
  std::vector<axle::Program> programs(kThreads);
  std::vector<void*> kernels(kThreads);
  Failures failures;
  Barrier start(kThreads);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      failures.guard("thread " + std::to_string(t), [&] {
        programs[t] = dev().build(axle::Source::portable(text, "probe.cl"));
        axle::Kernel k = programs[t].kernel("probe");
        kernels[t] = k.native_handle();
        axle::Stream s = dev().create_stream();
        axle::Buffer b = dev().alloc<int>(16);
        s.launch(k, axle::Range{16}, axle::Range{}, b.view<int>(), static_cast<std::int64_t>(t));
        std::vector<int> h(16);
        s.copy(b, h);
        s.synchronize();
        for (int i = 0; i < 16; ++i)
          if (h[static_cast<std::size_t>(i)] != 321 + static_cast<int>(t) + i)
            failures.add("thread " + std::to_string(t) + ": out[" + std::to_string(i) +
                         "] = " + std::to_string(h[static_cast<std::size_t>(i)]));
      });
    });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(failures.empty()) << failures.text();
  for (std::size_t t = 1; t < kThreads; ++t) {
    EXPECT_EQ(programs[t].native_handle(), programs[0].native_handle()) << "thread " << t << " got another Program";
    EXPECT_EQ(kernels[t], kernels[0]) << "thread " << t << " got another kernel object";
  }
  EXPECT_FALSE(programs[0].from_disk_cache());
  std::size_t matching = 0;
  for (const auto& entry : axle::cache_entries(dir)) {
    EXPECT_TRUE(entry.valid) << entry.path;
    if (entry.key == programs[0].cache_key()) ++matching;
  }
  EXPECT_EQ(matching, 1u);
  for (const auto& name : axle_test::list_dir(dir)) EXPECT_EQ(name.find(".tmp."), std::string::npos) << name;

  // Every thread gets a BuildError (its own: a failed build is not shared), with the log.
  const std::string broken =
      "// " + axle_test::unique_token() + "\nAXLE_KERNEL void broken(AXLE_GLOBAL int* o) { o[0] = ; }\n";
  std::vector<std::string> errors(kThreads);
  Barrier start2(kThreads);
  threads.clear();
  for (std::size_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start2.arrive_and_wait();
      try {
        dev().build(axle::Source::portable(broken, "broken.cl"));
        errors[t] = "(built)";
      } catch (const axle::BuildError& e) {
        errors[t] = e.what() + std::string("\n") + e.log();
      } catch (const std::exception& e) {
        errors[t] = std::string("(not a BuildError) ") + e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (std::size_t t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(axle_test::contains_all(errors[t], {"'broken.cl'", "broken.cl:"})) << errors[t];
    EXPECT_EQ(errors[t], errors[0]) << "thread " << t;
  }
}

// Several processes started at once build one new source into one disk cache: each gets a
// working kernel, the cache ends with one valid entry and no temporary files, and a later
// process loads that entry.
TEST_P(Concurrency, ProcessesBuildingOneSourceShareOneDiskCacheEntry) {
  constexpr int kProcesses = 6;
  axle_test::TempDir tmp;
  const std::string dir = tmp.file("cache");
  const std::string src = tmp.write("probe.cl", "// " + axle_test::unique_token() +
                                                    "\nAXLE_KERNEL void probe(AXLE_GLOBAL int* out, long v) {\n"
                                                    "  out[AXLE_GLOBAL_ID(0)] = 4321 + (int)v;\n}\n");
  const std::string cmd = "AXLE_CACHE_DIR='" + dir + "' '" AXLE_CACHE_PROBE "' '" + dev().id() + "' '" + src + "' 2>&1";
  auto parse = [](const std::string& raw) {
    std::map<std::string, std::string> fields;
    std::size_t pos = 0;
    while (pos < raw.size()) {
      std::size_t nl = raw.find('\n', pos);
      if (nl == std::string::npos) nl = raw.size();
      const std::string line = raw.substr(pos, nl - pos);
      const auto eq = line.find('=');
      if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
      pos = nl + 1;
    }
    return fields;
  };
  // Start them all, then read them all: they run at the same time.
  std::vector<FILE*> pipes;
  for (int i = 0; i < kProcesses; ++i) {
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    pipes.push_back(p);
  }
  std::set<std::string> keys;
  for (int i = 0; i < kProcesses; ++i) {
    std::string raw;
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipes[static_cast<std::size_t>(i)])) raw += buf;
    const int st = ::pclose(pipes[static_cast<std::size_t>(i)]);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "process " << i << ":\n" << raw;
    auto f = parse(raw);
    EXPECT_EQ(f["value"], "4321") << "process " << i << ":\n" << raw;
    EXPECT_TRUE(f["source"] == "compiled" || f["source"] == "disk") << raw;
    keys.insert(f["key"]);
  }
  ASSERT_EQ(keys.size(), 1u) << "the processes computed different cache keys";
  const std::string key = *keys.begin();
  std::size_t matching = 0;
  for (const auto& entry : axle::cache_entries(dir)) {
    EXPECT_TRUE(entry.valid) << entry.path;
    if (entry.key == key) ++matching;
  }
  EXPECT_EQ(matching, 1u);
  for (const auto& name : axle_test::list_dir(dir)) EXPECT_EQ(name.find(".tmp."), std::string::npos) << name;
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string raw;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) raw += buf;
  EXPECT_EQ(::pclose(p), 0) << raw;
  auto f = parse(raw);
  EXPECT_EQ(f["source"], "disk") << raw;
  EXPECT_EQ(f["value"], "4321") << raw;
  EXPECT_EQ(f["key"], key);
}

// GEMM and convolution from several threads while another keeps dropping the library's
// kernel, parameter and plan caches: every result stays right.
TEST_P(Concurrency, LibraryCachesResetWhileOtherThreadsRunGemmAndConv) {
  constexpr std::size_t kThreads = 3, kRounds = 10;
  Failures failures;
  std::atomic<std::size_t> finished{0}, resets{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      failures.guard("thread " + std::to_string(t), [&] {
        axle::Stream s = dev().create_stream();
        for (std::size_t r = 0; r < kRounds; ++r) {
          std::string bad = run_gemm(s, GemmCase{21 + r, 17 + t, 30}, t * 10 + r);
          if (bad.empty()) bad = run_conv(s, conv_case(r), t * 10 + r);
          if (!bad.empty()) failures.add("thread " + std::to_string(t) + " round " + std::to_string(r) + ": " + bad);
        }
      });
      finished.fetch_add(1);
    });
  std::thread resetter([&] {
    while (finished.load() < kThreads || resets.load() == 0) {
      axle::blas::reset_gemm_caches();
      axle::dnn::reset_conv_caches();
      resets.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (auto& th : threads) th.join();
  resetter.join();
  EXPECT_TRUE(failures.empty()) << failures.text();
  EXPECT_GT(resets.load(), 0u);
}

// ---- first use of the library from many threads at once, in a fresh process ----

namespace {
constexpr std::size_t kFirstUseThreads = 16;
constexpr int kFirstUseLines = 5;
}  // namespace

// The parent: runs the child below in a process of its own, with a config file that
// names the device, a log spec and a cache directory, and checks its log output.
TEST(FirstUse, ManyThreadsAtOnceInAFreshProcess) {
  if (first_use_child()) GTEST_SKIP() << "this is the child";
  axle_test::TempDir tmp;
  const auto all = axle::devices();
  const std::string device = all.empty() ? "" : all.front().id();
  const std::string config =
      tmp.write("axle.toml", (device.empty() ? "" : "device = \"" + device + "\"\n") +
                                 "log = \"rt=info, mem=warn\"\ncache_dir = \"" + tmp.file("cache") + "\"\n");
  int status = 0;
  const std::string out = axle_test::rerun_self(
      "AXLE_TEST_CHILD=first_use AXLE_DEVICE= AXLE_LOG= AXLE_CACHE_DIR= AXLE_CONFIG='" + config +
          "' AXLE_TEST_FIRST_USE_DEVICE='" + device + "' AXLE_TEST_FIRST_USE_CACHE='" + tmp.file("cache") + "'",
      "FirstUseChild.*", status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(axle_test::contains_all(out, {"[  PASSED  ] 1 test"})) << out;
  EXPECT_EQ(out.find("SKIPPED"), std::string::npos) << out;
  // Every line each thread logged arrived once and whole.
  std::map<std::string, int> seen;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) nl = out.size();
    const std::string line = out.substr(pos, nl - pos);
    pos = nl + 1;
    const auto at = line.find("first-use thread ");
    if (at == std::string::npos) continue;
    EXPECT_NE(line.find("[axle.rt] [info] first-use thread "), std::string::npos) << "a split or mixed line: " << line;
    EXPECT_EQ(line.rfind("[", 0), 0u) << "a split or mixed line: " << line;
    ++seen[line.substr(at)];
  }
  for (std::size_t t = 0; t < kFirstUseThreads; ++t)
    for (int l = 0; l < kFirstUseLines; ++l) {
      const std::string text = "first-use thread " + std::to_string(t) + " line " + std::to_string(l) + " end";
      EXPECT_EQ(seen[text], 1) << "'" << text << "' in:\n" << out;
    }
}

// The child: many threads, released at once, each making its first calls in a different
// order: enumeration, configuration, logging, the default device, a build and a launch.
TEST(FirstUseChild, Threads) {
  if (!first_use_child()) GTEST_SKIP() << "run by FirstUse.ManyThreadsAtOnceInAFreshProcess";
  const char* device_env = std::getenv("AXLE_TEST_FIRST_USE_DEVICE");
  const char* cache_env = std::getenv("AXLE_TEST_FIRST_USE_CACHE");
  ASSERT_TRUE(device_env && cache_env) << "run by FirstUse.ManyThreadsAtOnceInAFreshProcess";
  const std::string want_device = device_env, want_cache = cache_env;
  const std::string text = "AXLE_KERNEL void first(AXLE_GLOBAL int* out, int v) { out[AXLE_GLOBAL_ID(0)] = v; }\n";
  struct Seen {
    std::vector<std::string> ids;
    std::string default_id, config_device, cache, rt_level, mem_level;
    void* program = nullptr;
  };
  std::vector<Seen> seen(kFirstUseThreads);
  Failures failures;
  Barrier start(kFirstUseThreads);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kFirstUseThreads; ++t)
    threads.emplace_back([&, t] {
      Seen& me = seen[t];
      const std::vector<std::function<void()>> steps = {
          [&] {
            for (const auto& d : axle::devices()) me.ids.push_back(d.id());
            (void)axle::backends();
          },
          [&] {
            me.config_device = axle::active_config().device;
            me.cache = axle::cache_dir();
          },
          [&] {
            for (int l = 0; l < kFirstUseLines; ++l)
              axle::log("rt", axle::LogLevel::Info,
                        "first-use thread " + std::to_string(t) + " line " + std::to_string(l) + " end");
            me.rt_level = axle::detail::log_level("rt");
            me.mem_level = axle::detail::log_level("mem");
          },
          [&] {
            if (want_device.empty()) {
              AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::DeviceUnavailable, {"no device"});
              return;
            }
            const axle::Device dev = axle::default_device();
            me.default_id = dev.id();
            axle::Program p = dev.build(axle::Source::portable(text, "first.cl"));
            me.program = p.native_handle();
            axle::Stream s = dev.create_stream();
            axle::Buffer b = dev.alloc<int>(8);
            s.launch(p.kernel("first"), axle::Range{8}, axle::Range{}, b.view<int>(), static_cast<int>(t));
            std::vector<int> h(8);
            s.copy(b, h);
            s.synchronize();
            if (std::count(h.begin(), h.end(), static_cast<int>(t)) != 8)
              failures.add("thread " + std::to_string(t) + ": wrong kernel result");
          },
      };
      start.arrive_and_wait();
      for (std::size_t i = 0; i < steps.size(); ++i)
        failures.guard("thread " + std::to_string(t) + " step " + std::to_string((t + i) % steps.size()),
                       steps[(t + i) % steps.size()]);
    });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(failures.empty()) << failures.text();
  std::vector<std::string> ids;
  for (const auto& d : axle::devices()) ids.push_back(d.id());
  for (std::size_t t = 0; t < kFirstUseThreads; ++t) {
    SCOPED_TRACE("thread " + std::to_string(t));
    EXPECT_EQ(seen[t].ids, ids);
    EXPECT_EQ(seen[t].config_device, want_device);
    EXPECT_EQ(seen[t].cache, want_cache);
    EXPECT_EQ(seen[t].rt_level, "info");
    EXPECT_EQ(seen[t].mem_level, "warn");
    EXPECT_EQ(seen[t].default_id, want_device);
    EXPECT_EQ(seen[t].program, seen[0].program);
  }
  if (!want_device.empty()) {
    EXPECT_NE(seen[0].program, nullptr);
  }
}
