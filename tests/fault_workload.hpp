// A representative workload for the fault-injection sweeps (any backend): allocation,
// copies in all three directions, a fill, program builds (fresh each run, and one
// loaded from the disk cache), a launch with a sub-buffer view and several arguments,
// events (record, query, wait, elapsed time), a second stream, pinned memory and a
// GEMM. run() throws whatever the backend throws; check() compares the results of a
// completed run with a host reference.
#pragma once

#include <cmath>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "backend/backend.hpp"
#include "fault_injection.hpp"
#include "test_util.hpp"

namespace axle_test::faults {

inline const char* const kWorkloadSource = R"(
AXLE_KERNEL void axpy(AXLE_GLOBAL float* y, AXLE_GLOBAL const float* x, float a, uint n) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i < n) y[i] += a * x[i];
}
)";
inline const char* const kCachedSource = R"(
AXLE_KERNEL void scale(AXLE_GLOBAL float* y, float s, uint n) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i < n) y[i] *= s;
}
)";

class Workload {
 public:
  static constexpr std::size_t kN = 1000;                   // elements of the launch
  static constexpr std::size_t kOff = 256;                  // element offset of the launch's view (1 KiB)
  static constexpr std::size_t kM = 19, kNc = 23, kK = 13;  // GEMM shape

  Workload(const axle::Device& dev, axle::Stream& s) : dev_(dev), s_(s) {
    src_host_.resize(kN);
    keep_host_.resize(777);
    for (std::size_t i = 0; i < kN; ++i) src_host_[i] = static_cast<float>(i % 37) - 11.0f;
    for (std::size_t i = 0; i < keep_host_.size(); ++i) keep_host_[i] = static_cast<int>(i * 2654435761u);
    a_host_.resize(kM * kK);
    b_host_.resize(kK * kNc);
    for (std::size_t i = 0; i < a_host_.size(); ++i) a_host_[i] = static_cast<float>((i * 7) % 11) - 5.0f;
    for (std::size_t i = 0; i < b_host_.size(); ++i) b_host_[i] = static_cast<float>((i * 5) % 13) - 6.0f;
    src_ = dev_.alloc<float>(kN);
    keep_ = dev_.alloc<int>(keep_host_.size());
    s_.copy(src_host_, src_.view<float>());
    s_.copy(keep_host_, keep_.view<int>());
    s_.synchronize();
  }

  /// One pass. `salt` makes this run's programs new to the in-memory cache, so that
  /// each run builds (and loads from the disk cache) again.
  void run(int salt) {
    z_host_.assign(kOff + kN, 0.0f);
    pinned_out_.assign(kOff + kN, 0.0f);
    c_host_.assign(kM * kNc, 0.0f);
    axle::Buffer y = dev_.alloc<float>(kOff + kN);
    s_.fill(y.view<float>(), 1.0f);
    axle::BuildOptions o;
    o.disk_cache = false;
    o.define("FAULT_SALT", std::to_string(salt));
    axle::Program p = dev_.build(axle::Source::portable(kWorkloadSource, "fault_axpy.cl"), o);
    axle::Kernel k = p.kernel("axpy");
    axle::Event e0 = s_.record();
    s_.launch(k, axle::Range{axle::round_up(kN, std::size_t{64})}, axle::Range{64}, y.view<float>(kOff, kN),
              src_.view<float>(), 2.0f, static_cast<unsigned>(kN));
    axle::Buffer z = dev_.alloc<float>(kOff + kN);
    s_.copy(y.view<float>(), z.view<float>());
    // A program loaded from the disk cache: built (and stored), dropped from the
    // device's in-memory cache, then built again.
    axle::BuildOptions oc;
    oc.define("FAULT_SALT", std::to_string(salt));
    const std::string key = dev_.build(axle::Source::portable(kCachedSource, "fault_scale.cl"), oc).cache_key();
    forget_program(key);
    axle::Program cached = dev_.build(axle::Source::portable(kCachedSource, "fault_scale.cl"), oc);
    loaded_from_disk_ = cached.from_disk_cache();
    s_.launch(cached.kernel("scale"), axle::Range{kOff + kN}, axle::Range{}, z.view<float>(), 0.5f,
              static_cast<unsigned>(kOff + kN));
    axle::Event e1 = s_.record();
    e1.synchronize();
    if (!e1.query()) throw std::runtime_error("a synchronized event is not complete");
    elapsed_ = e1.elapsed_ms(e0);
    // A second stream waits for the first, then copies into pinned memory.
    std::optional<axle::Stream> s2 = dev_.create_stream();
    std::optional<axle::PinnedBuffer<float>> pinned = dev_.alloc_pinned<float>(kOff + kN);
    s2->wait(e1);
    s2->copy(z.view<float>(), *pinned);
    s2->synchronize();
    pinned_out_.assign(pinned->begin(), pinned->end());
    // GEMM: C = A * B (row-major), on the first stream.
    axle::Buffer a = dev_.alloc<float>(a_host_.size()), b = dev_.alloc<float>(b_host_.size()),
                 c = dev_.alloc<float>(c_host_.size());
    s_.copy(a_host_, a.view<float>());
    s_.copy(b_host_, b.view<float>());
    axle::blas::gemm(s_, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, kM, kNc, kK, 1.0, a.view<float>(), kK,
                     b.view<float>(), kNc, 0.0, c.view<float>(), kNc);
    s_.copy(z.view<float>(), z_host_);
    s_.copy(c.view<float>(), c_host_);
    s_.synchronize();
    Teardown t;  // failures from here on are logged by destructors
    pinned.reset();
    s2.reset();
  }

  /// The results of a completed run() against a host reference; "" when right.
  std::string check() const {
    for (std::size_t i = 0; i < kOff + kN; ++i) {
      const float y = i < kOff ? 1.0f : 1.0f + 2.0f * src_host_[i - kOff];
      const float want = 0.5f * y;
      if (z_host_[i] != want)
        return "z[" + std::to_string(i) + "] = " + std::to_string(z_host_[i]) + ", want " + std::to_string(want);
      if (pinned_out_[i] != want)
        return "pinned[" + std::to_string(i) + "] = " + std::to_string(pinned_out_[i]) + ", want " +
               std::to_string(want);
    }
    for (std::size_t i = 0; i < kM; ++i)
      for (std::size_t j = 0; j < kNc; ++j) {
        float want = 0.0f;
        for (std::size_t l = 0; l < kK; ++l) want += a_host_[i * kK + l] * b_host_[l * kNc + j];
        if (std::fabs(c_host_[i * kNc + j] - want) > 1e-3f)
          return "C[" + std::to_string(i) + "][" + std::to_string(j) + "] = " + std::to_string(c_host_[i * kNc + j]) +
                 ", want " + std::to_string(want);
      }
    if (!(elapsed_ >= 0.0f)) return "elapsed time " + std::to_string(elapsed_);
    if (!loaded_from_disk_) return "the cached program was not loaded from the disk cache";
    return {};
  }

  /// The buffers no run writes still hold what was put there; "" when they do.
  std::string check_untouched() {
    std::vector<float> src(kN);
    std::vector<int> keep(keep_host_.size());
    s_.copy(src_.view<float>(), src);
    s_.copy(keep_.view<int>(), keep);
    s_.synchronize();
    if (src != src_host_) return "the launch's input buffer changed";
    if (keep != keep_host_) return "a buffer the workload never uses changed";
    return {};
  }

  /// Drops every program the device holds (and the GEMM library's), so that a test can
  /// count the native programs and kernels left.
  void forget_all_programs() {
    axle::blas::reset_gemm_caches();
    auto& impl = dev_.impl();
    std::lock_guard<std::mutex> lock(impl.program_cache_mutex);
    impl.program_cache.clear();
  }

 private:
  void forget_program(const std::string& key) {
    auto& impl = dev_.impl();
    std::lock_guard<std::mutex> lock(impl.program_cache_mutex);
    impl.program_cache.erase(key);
  }

  const axle::Device& dev_;
  axle::Stream& s_;
  axle::Buffer src_, keep_;
  std::vector<float> src_host_, a_host_, b_host_;
  std::vector<int> keep_host_;
  std::vector<float> z_host_, pinned_out_, c_host_;
  float elapsed_ = -1.0f;
  bool loaded_from_disk_ = false;
};

/// Whether `e` names the failed call and its status in its message.
inline std::string names_the_failure(const axle::Error& e, const std::string& call, const std::string& status) {
  const std::string what = e.what();
  if (what.find(call) == std::string::npos) return "the message does not name " + call + ": " + what;
  if (what.find(status) == std::string::npos) return "the message does not name " + status + ": " + what;
  if (e.call().rfind(call, 0) != 0) return "Error::call() is '" + e.call() + "', not " + call;  // or call_v2
  if (e.status_name() != status) return "Error::status_name() is '" + e.status_name() + "', not " + status;
  return {};
}

}  // namespace axle_test::faults
