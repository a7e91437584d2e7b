// The catalogue of bad input (docs/errors.md), checked row by row: each row's id names a
// case below; the case does the bad thing, and the test checks that exactly the listed
// axle::Error subclass is thrown with every listed fragment in its message. A row without
// a case or a case without a row is a failure, so the document follows the code.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <climits>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "axle/cache.hpp"
#include "axle/dnn.hpp"
#include "test_util.hpp"

namespace {

// ---------------------------------------------------------------- the document

struct Row {
  std::string id, error;
  std::vector<std::string> fragments;
  int line = 0;
};

// Names the row in test listings (CTest shows GetParam()).
void PrintTo(const Row& r, std::ostream* os) { *os << r.id; }

std::vector<std::string> backticked(const std::string& cell) {
  std::vector<std::string> out;
  for (std::size_t a = cell.find('`'); a != std::string::npos; a = cell.find('`', a + 1)) {
    const std::size_t b = cell.find('`', a + 1);
    if (b == std::string::npos) break;
    out.push_back(cell.substr(a + 1, b - a - 1));
    a = b;
  }
  return out;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 1;  // after the leading '|'
  // A '|' inside backticks is part of a cell.
  bool code = false;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '`') code = !code;
    if (line[i] == '|' && !code) {
      std::string c = line.substr(start, i - start);
      const auto first = c.find_first_not_of(' '), last = c.find_last_not_of(' ');
      out.push_back(first == std::string::npos ? "" : c.substr(first, last - first + 1));
      start = i + 1;
    }
  }
  return out;
}

std::vector<Row> doc_rows() {
  std::vector<Row> rows;
  std::ifstream f(AXLE_SOURCE_DIR "/docs/errors.md");
  int n = 0;
  for (std::string line; std::getline(f, line);) {
    ++n;
    if (line.rfind("| `", 0) != 0) continue;  // table rows start with an id
    const auto c = cells(line);
    Row r;
    r.line = n;
    if (c.size() == 4) {
      const auto id = backticked(c[0]);
      const auto err = backticked(c[2]);
      r.id = id.empty() ? "" : id[0];
      r.error = err.empty() ? c[2] : err[0];
      r.fragments = backticked(c[3]);
    }
    rows.push_back(r);
  }
  return rows;
}

// The most derived Axle type of `e`, as docs/errors.md names it.
std::string type_of(const axle::Error& e) {
  if (dynamic_cast<const axle::KernelNotFound*>(&e)) return "KernelNotFound";
  if (dynamic_cast<const axle::OutOfRange*>(&e)) return "OutOfRange";
  if (dynamic_cast<const axle::InvalidArgument*>(&e)) return "InvalidArgument";
  if (dynamic_cast<const axle::OutOfMemory*>(&e)) return "OutOfMemory";
  if (dynamic_cast<const axle::BackendError*>(&e)) return "BackendError";
  if (dynamic_cast<const axle::BuildError*>(&e)) return "BuildError";
  if (dynamic_cast<const axle::ConfigError*>(&e)) return "ConfigError";
  if (dynamic_cast<const axle::DeviceUnavailable*>(&e)) return "DeviceUnavailable";
  if (dynamic_cast<const axle::Unsupported*>(&e)) return "Unsupported";
  return "Error";
}

// ---------------------------------------------------------------- the cases

constexpr const char* kSource = R"(
AXLE_KERNEL void iota(AXLE_GLOBAL int* out, int base) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  out[i] = base + (int)i;
}
AXLE_KERNEL void group_sum(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* sums, AXLE_LOCAL_PTR(float) scratch) {
  scratch[AXLE_LOCAL_ID(0)] = in[AXLE_GLOBAL_ID(0)];
  AXLE_BARRIER();
  if (AXLE_LOCAL_ID(0) == 0) sums[AXLE_GROUP_ID(0)] = scratch[0];
}
)";

// What the cases share: OpenCL device 0 (and 1 for the two-device rows), a stream, a
// program, and small buffers.
struct Ctx {
  axle::Device dev, dev1;
  std::optional<axle::Stream> s, s1;
  axle::Program prog;
  axle::Kernel iota, group_sum;
  axle::Buffer b64, b64b, b100, b4096;  // bytes / floats as named

  explicit Ctx(bool open) {
    if (!open) return;  // for the cases that need no device
    const auto cl = axle::devices("opencl");
    if (cl.empty()) return;
    dev = cl[0];
    if (cl.size() > 1) dev1 = cl[1];
    s.emplace(dev.create_stream());
    axle::BuildOptions o;
    prog = dev.build(axle::Source::portable(kSource, "catalogue.cl"), o);
    iota = prog.kernel("iota");
    group_sum = prog.kernel("group_sum");
    b64 = dev.alloc_bytes(64);
    b64b = dev.alloc_bytes(64);
    b100 = dev.alloc<float>(100);
    b4096 = dev.alloc_bytes(4096);
    if (dev1.valid()) s1.emplace(dev1.create_stream());
  }
  axle::Stream& st() { return *s; }
};

Ctx& ctx(bool open) {
  static Ctx none(false);
  if (!open) return none;
  static Ctx c(true);
  return c;
}

enum class Needs { Nothing, Device, TwoDevices };
struct Case {
  Needs needs;
  // Throws the row's error, or (for "(returned)" rows) returns the text to check.
  std::function<std::string(Ctx&)> run;
};

using axle::Layout;
using axle::Op;
using axle::dnn::Conv2dDesc;
using axle::dnn::TensorLayout;

Conv2dDesc make(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::size_t k, std::size_t r, std::size_t s,
                TensorLayout l = TensorLayout::NCHW) {
  Conv2dDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s, d.layout = l;
  return d;
}

// GEMM operands, m = 4, n = 5, k = 6, row-major.
struct Gemm {
  axle::Buffer a, b, c, bias, ad;
  explicit Gemm(const axle::Device& d)
      : a(d.alloc<float>(24)),
        b(d.alloc<float>(30)),
        c(d.alloc<float>(20)),
        bias(d.alloc<float>(4)),
        ad(d.alloc<double>(24)) {}
};
void gemm(axle::Stream& s, std::size_t m, const axle::BufferView<float>& a, std::size_t lda,
          const axle::BufferView<float>& b, const axle::BufferView<float>& c, std::size_t ldc,
          const axle::blas::Epilogue& ep = {}) {
  axle::blas::gemm(s, Layout::RowMajor, Op::N, Op::N, m, 5, 6, 1.0, a, lda, b, 5, 0.0, c, ldc, ep);
}
void batched(axle::Stream& s, Gemm& g, std::size_t stride_a, std::size_t stride_b, std::size_t stride_c,
             std::size_t batch, const axle::BufferView<float>& b) {
  axle::blas::gemm_strided_batched(s, Layout::RowMajor, Op::N, Op::N, 4, 5, 6, 1.0, g.a.view<float>(), 6, stride_a, b,
                                   5, stride_b, 0.0, g.c.view<float>(), 5, stride_c, batch);
}

// A convolution forward plan and good arguments, as in tests/conv_test.cpp.
struct Conv {
  Conv2dDesc d = make(2, 3, 6, 6, 4, 3, 3, TensorLayout::NHWC);
  axle::Buffer bx, bw, by, bb, bh;
  explicit Conv(const axle::Device& dev) {
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    bx = dev.alloc<float>(d.x_elems());
    bw = dev.alloc<float>(d.w_elems());
    by = dev.alloc<float>(d.y_elems());
    bb = dev.alloc<float>(d.k);
    bh = dev.alloc<axle::half_t>(1000);
  }
  axle::dnn::Conv2dPlan plan(const axle::Device& dev, bool bias) const {
    return axle::dnn::Conv2dPlan(dev, d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward,
                                 axle::dnn::Conv2dFusion{bias, false, axle::dnn::Activation::None});
  }
  axle::dnn::Conv2dArgs args(bool bias) const {
    axle::dnn::Conv2dArgs a;
    a.x = bx.view<float>();
    a.w = bw.view<float>();
    a.y = by.view<float>();
    if (bias) a.bias = bb.view<float>();
    return a;
  }
};

// Runs `f` with a clean configuration environment plus `name`=`value`.
std::string with_env(const std::string& name, const std::string& value, const std::function<void()>& f) {
  axle_test::TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  axle_test::ScopedEnv env(name, value);
  f();
  return {};
}

std::string parse(const std::string& text) {
  axle::parse_config(text, "/etc/test/axle.toml");
  return {};
}

#define CASE(id, needs) \
  {                     \
    id, Case {          \
      Needs::needs, [](Ctx& c) -> std::string {
#define END  \
  return {}; \
  }          \
  }          \
  }

// clang-format off
const std::map<std::string, Case>& cases() {
  static const std::map<std::string, Case> all = {
      // ---- memory
      CASE("alloc-zero", Device) c.dev.alloc_bytes(0); END,
      CASE("alloc-too-large", Device) c.dev.alloc_bytes(static_cast<std::size_t>(c.dev.info().max_alloc_bytes) + 1); END,
      CASE("alloc-count-overflow", Device) c.dev.alloc<double>(SIZE_MAX / 4); END,
      CASE("pinned-zero", Device) c.dev.alloc_pinned<int>(0); END,
      CASE("pinned-count-overflow", Device) c.dev.alloc_pinned<double>(SIZE_MAX / 4); END,
      CASE("view-past-end", Device) c.b100.view<float>(90, 11); END,
      CASE("view-offset-past-end", Device) c.b100.view<float>(101); END,
      CASE("view-size-overflow", Device) c.b100.view<float>(1, SIZE_MAX - 1); END,
      CASE("subview-past-end", Device) c.b100.view<float>(0, 20).sub(21); END,
      CASE("view-reinterpret-misaligned", Device) c.b100.view<float>(1, 4).as<double>(); END,
      CASE("view-moved-from", Device) axle::Buffer b = c.dev.alloc<int>(4);
      axle::Buffer taken = std::move(b);
      b.view<int>(); END,
      CASE("view-empty-handle", Nothing) axle::BufferView<int>().buffer(); END,
      // ---- copies and fills
      CASE("copy-h2d-past-end", Device) std::vector<char> h(8);
      c.st().copy_h2d_bytes(h.data(), c.b64, 60, 8); END,
      CASE("copy-h2d-size-overflow", Device) std::vector<char> h(8);
      c.st().copy_h2d_bytes(h.data(), c.b64, 8, SIZE_MAX); END,
      CASE("copy-h2d-count-mismatch", Device) std::vector<int> ten(10);
      c.st().copy(ten, c.b64.view<int>(0, 11)); END,
      CASE("copy-d2h-past-end", Device) std::vector<char> h(65);
      c.st().copy_d2h_bytes(c.b64, 0, h.data(), 65); END,
      CASE("copy-d2h-offset-past-end", Device) std::vector<char> h(4);
      c.st().copy_d2h_bytes(c.b64, 64, h.data(), 4); END,
      CASE("copy-d2h-count-mismatch", Device) std::vector<int> ten(10);
      c.st().copy(c.b100.view<int>(2, 11), ten); END,
      CASE("copy-d2d-source-past-end", Device) c.st().copy_d2d_bytes(c.b64, 60, c.b64b, 0, 8); END,
      CASE("copy-d2d-destination-past-end", Device) c.st().copy_d2d_bytes(c.b64, 8, c.b64b, 57, 8); END,
      CASE("copy-d2d-count-mismatch", Device) c.st().copy(c.b64.view<int>(0, 4), c.b64b.view<int>(0, 5)); END,
      CASE("copy-d2d-overlap", Device) c.st().copy(c.b64.view<int>(0, 8), c.b64.view<int>(4, 8)); END,
      CASE("copy-null-host", Device) c.st().copy_h2d_bytes(nullptr, c.b64, 0, 8); END,
      CASE("copy-moved-from-buffer", Device) axle::Buffer b = c.dev.alloc<int>(4);
      axle::Buffer taken = std::move(b);
      std::vector<int> h(4);
      c.st().copy_h2d_bytes(h.data(), b, 0, 16); END,
      CASE("fill-pattern-size", Device) const char pat[3] = {1, 2, 3};
      c.st().fill_bytes(c.b4096, 0, 6, pat, 3); END,
      CASE("fill-misaligned", Device) const int pat = 7;
      c.st().fill_bytes(c.b4096, 2, 8, &pat, 4); END,
      CASE("fill-past-end", Device) const int pat = 7;
      c.st().fill_bytes(c.b4096, 4092, 8, &pat, 4); END,
      CASE("stream-moved-from", Device) axle::Stream s = c.dev.create_stream();
      axle::Stream taken = std::move(s);
      s.synchronize(); END,
      // ---- two devices
      CASE("copy-buffer-of-another-device", TwoDevices) std::vector<char> h(8);
      c.s1->copy_h2d_bytes(h.data(), c.b64, 0, 8); END,
      CASE("launch-kernel-of-another-device", TwoDevices) axle::Buffer out = c.dev1.alloc<int>(64);
      c.s1->launch(c.iota, axle::Range{64}, axle::Range{}, out.view<int>(), 1); END,
      CASE("launch-buffer-of-another-device", TwoDevices) axle::Program p =
          c.dev1.build(axle::Source::portable(kSource, "catalogue.cl"));
      c.s1->launch(p.kernel("iota"), axle::Range{16}, axle::Range{}, c.b64.view<int>(), 1); END,
      CASE("wait-event-of-another-device", TwoDevices) axle::Event e = c.st().record();
      c.s1->wait(e); END,
      CASE("gemm-operand-of-another-device", TwoDevices) Gemm g0(c.dev), g1(c.dev1);
      gemm(*c.s1, 4, g0.a.view<float>(), 6, g1.b.view<float>(), g1.c.view<float>(), 5); END,
      CASE("gemm-bias-of-another-device", TwoDevices) Gemm g0(c.dev), g1(c.dev1);
      gemm(*c.s1, 4, g1.a.view<float>(), 6, g1.b.view<float>(), g1.c.view<float>(), 5,
           axle::blas::Epilogue::with_bias(axle::blas::BiasMode::PerRow, g0.bias.view<float>())); END,
      CASE("conv-tensor-of-another-device", TwoDevices) Conv v0(c.dev), v1(c.dev1);
      auto a = v0.args(false);
      a.x = v1.bx.view<float>();
      v0.plan(c.dev, false).run(c.st(), a); END,
      CASE("conv-bias-of-another-device", TwoDevices) Conv v0(c.dev), v1(c.dev1);
      auto a = v0.args(false);
      a.bias = v1.bb.view<float>();
      v0.plan(c.dev, true).run(c.st(), a); END,
      CASE("conv-workspace-of-another-device", TwoDevices) Conv v0(c.dev);
      axle::Buffer ws = c.dev1.alloc<unsigned char>(1024);
      auto a = v0.args(false);
      a.workspace = ws.view<unsigned char>();
      v0.plan(c.dev, false).run(c.st(), a); END,
      CASE("conv-plan-of-another-device", TwoDevices) Conv v0(c.dev), v1(c.dev1);
      v0.plan(c.dev, false).run(*c.s1, v1.args(false)); END,
      // ---- programs and launches
      CASE("build-empty-source", Device) c.dev.build(axle::Source::portable("", "empty.cl")); END,
      CASE("build-bad-define", Device) axle::BuildOptions o;
      o.define("1x");
      c.dev.build(axle::Source::portable(kSource, "catalogue.cl"), o); END,
      CASE("build-syntax-error", Device) axle::BuildOptions o;
      o.disk_cache = false;
      c.dev.build(axle::Source::portable("AXLE_KERNEL void k( { nonsense }\n", "broken.cl"), o); END,
      CASE("build-cuda-source-on-opencl", Device) c.dev.build(axle::Source::cuda("__global__ void k() {}\n", "native.cu")); END,
      CASE("kernel-unknown-name", Device) c.prog.kernel("nope"); END,
      CASE("kernel-empty-handle", Device) c.st().launch(axle::Kernel{}, axle::Range{64}, axle::Range{}, c.b64.view<int>(), 1); END,
      CASE("launch-too-few-arguments", Device) c.st().launch(c.iota, axle::Range{16}, axle::Range{}, c.b64.view<int>()); END,
      CASE("launch-too-many-arguments", Device) c.st().launch(c.iota, axle::Range{16}, axle::Range{}, c.b64.view<int>(), 1, 2); END,
      CASE("launch-scalar-for-buffer", Device) c.st().launch(c.iota, axle::Range{16}, axle::Range{}, 1, 2); END,
      CASE("launch-buffer-for-scalar", Device) c.st().launch(c.iota, axle::Range{16}, axle::Range{}, c.b64.view<int>(),
                                                            c.b64b.view<int>()); END,
      CASE("launch-scalar-size", Device) c.st().launch(c.iota, axle::Range{16}, axle::Range{}, c.b64.view<int>(), 1.0); END,
      CASE("launch-empty-buffer-argument", Device) axle::Buffer b = c.dev.alloc<int>(4);
      axle::Buffer taken = std::move(b);
      c.st().launch(c.iota, axle::Range{4}, axle::Range{}, b.view<int>(), 1); END,
      CASE("launch-local-does-not-divide", Device) c.st().launch(c.iota, axle::Range{100}, axle::Range{64},
                                                                c.b100.view<int>(), 1); END,
      CASE("launch-local-dimensions", Device) c.st().launch(c.iota, axle::Range{64}, axle::Range{8, 8},
                                                           c.b100.view<int>(), 1); END,
      CASE("launch-zero-global", Device) c.st().launch(c.iota, axle::Range{64, 0}, axle::Range{}, c.b100.view<int>(), 1); END,
      CASE("launch-work-group-too-large", Device) const auto& items = c.dev.info().max_work_item_sizes;
      const std::size_t kmax = c.iota.max_work_group_size();
      const std::size_t lx = std::min(items[0], kmax), ly = kmax / lx + 1;
      c.st().launch(c.iota, axle::Range{lx, ly}, axle::Range{lx, ly}, c.b100.view<int>(), 1); END,
      CASE("launch-too-much-local-memory", Device) const std::size_t lm = c.dev.info().local_mem_bytes;
      c.st().launch(c.group_sum, axle::Range{64}, axle::Range{64}, c.b100.view<float>(), c.b100.view<float>(),
                    axle::LocalMem{lm + 4}); END,
      CASE("launch-zero-local-memory", Device) c.st().launch(c.group_sum, axle::Range{64}, axle::Range{64},
                                                            c.b100.view<float>(), c.b100.view<float>(),
                                                            axle::LocalMem{0}); END,
      CASE("launch-cluster-without-local", Device)
          c.st().launch(c.iota, axle::LaunchShape{axle::Range{64}, axle::Range{}, axle::Range{2}}, c.b100.view<int>(), 1); END,
      CASE("launch-cluster-does-not-divide", Device)
          c.st().launch(c.iota, axle::LaunchShape{axle::Range{64}, axle::Range{16}, axle::Range{3}}, c.b100.view<int>(), 1); END,
      CASE("launch-cluster-too-large", Device)
          c.st().launch(c.iota, axle::LaunchShape{axle::Range{64}, axle::Range{2}, axle::Range{32}}, c.b100.view<int>(), 1); END,
      CASE("launch-cluster-not-cuda", Device)
          c.st().launch(c.iota, axle::LaunchShape{axle::Range{64}, axle::Range{16}, axle::Range{2}}, c.b100.view<int>(), 1); END,
      // ---- configuration and environment
      CASE("config-malformed", Nothing) return parse("device = = \"x\"\n"); END,
      CASE("config-unknown-key", Nothing) return parse("device = \"opencl:0\"\nspeed = 3\n"); END,
      CASE("config-wrong-type", Nothing) return parse("device = 3\n"); END,
      CASE("config-fallback-not-array", Nothing) return parse("fallback = \"x\"\n"); END,
      CASE("config-cache-dir-type", Nothing) return parse("cache_dir = 1.5\n"); END,
      CASE("config-missing-file", Nothing) axle_test::TempDir tmp;
      return with_env("AXLE_CONFIG", tmp.file("missing.toml"), [] { axle::active_config(); }); END,
      CASE("config-device-malformed", Nothing) axle_test::TempDir tmp;
      const std::string cfg = tmp.write("axle.toml", "device = \"opencl:\"\n");
      return with_env("AXLE_CONFIG", cfg, [] { axle::default_device(); }); END,
      CASE("log-level-unknown", Nothing) axle::set_log_levels("jit=loud"); END,
      CASE("device-unknown-backend", Nothing) axle::select_device("vulkan:0"); END,
      CASE("device-index-out-of-range", Device) axle::select_device("opencl:7"); END,
      CASE("device-spec-empty", Nothing) axle::select_device(""); END,
      CASE("device-spec-no-index", Nothing) axle::select_device("opencl:"); END,
      CASE("env-device-number", Nothing) return with_env("AXLE_DEVICE", "1", [] { axle::default_device(); }); END,
      CASE("env-device-garbage", Nothing) return with_env("AXLE_DEVICE", ":1", [] { axle::default_device(); }); END,
      CASE("env-device-unknown", Nothing) return with_env("AXLE_DEVICE", "vulkan:3", [] { axle::default_device(); }); END,
      CASE("cache-dir-not-a-directory", Nothing) axle_test::TempDir tmp;
      return axle::cache_dir_problem(tmp.write("plain-file", "x")); END,
      CASE("cache-dir-writable-by-others", Nothing) axle_test::TempDir tmp;
      const std::string dir = tmp.file("open");
      ::mkdir(dir.c_str(), 0700);
      ::chmod(dir.c_str(), 0777);
      return axle::cache_dir_problem(dir); END,
      // ---- GEMM
      CASE("gemm-empty-stream", Device) Gemm g(c.dev);
      axle::Stream none;
      gemm(none, 4, g.a.view<float>(), 6, g.b.view<float>(), g.c.view<float>(), 5); END,
      CASE("gemm-empty-operand", Device) Gemm g(c.dev);
      gemm(c.st(), 4, axle::BufferView<float>(), 6, g.b.view<float>(), g.c.view<float>(), 5); END,
      CASE("gemm-lda-too-small", Device) Gemm g(c.dev);
      gemm(c.st(), 4, g.a.view<float>(), 5, g.b.view<float>(), g.c.view<float>(), 5); END,
      CASE("gemm-ldc-too-large", Device) Gemm g(c.dev);
      gemm(c.st(), 4, g.a.view<float>(), 6, g.b.view<float>(), g.c.view<float>(), std::size_t{1} << 31); END,
      CASE("gemm-operand-too-small", Device) Gemm g(c.dev);
      gemm(c.st(), 4, g.a.view<float>(0, 23), 6, g.b.view<float>(), g.c.view<float>(), 5); END,
      CASE("gemm-dimension-too-large", Device) Gemm g(c.dev);
      gemm(c.st(), (std::size_t{1} << 30) + 1, g.a.view<float>(), 6, g.b.view<float>(), g.c.view<float>(), 5); END,
      CASE("gemm-batch-zero", Device) Gemm g(c.dev);
      batched(c.st(), g, 0, 0, 20, 0, g.b.view<float>()); END,
      CASE("gemm-batch-too-large", Device) Gemm g(c.dev);
      batched(c.st(), g, 0, 0, 20, std::size_t{1} << 31, g.b.view<float>()); END,
      CASE("gemm-output-stride-zero", Device) Gemm g(c.dev);
      batched(c.st(), g, 0, 0, 0, 2, g.b.view<float>()); END,
      CASE("gemm-output-stride-overlap", Device) Gemm g(c.dev);
      batched(c.st(), g, 0, 0, 10, 2, g.b.view<float>()); END,
      CASE("gemm-batched-stride-too-large", Device) Gemm g(c.dev);
      batched(c.st(), g, 0, 30, 20, 2, g.b.view<float>()); END,
      CASE("gemm-mixed-double", Device) Gemm g(c.dev);
      axle::blas::gemm(c.st(), Layout::RowMajor, Op::N, Op::N, 4, 5, 6, 1.0, g.ad.view<double>(), 6, g.b.view<float>(),
                       5, 0.0, g.c.view<float>(), 5); END,
      CASE("gemm-bias-missing", Device) Gemm g(c.dev);
      axle::blas::Epilogue ep;
      ep.bias_mode = axle::blas::BiasMode::PerCol;
      gemm(c.st(), 4, g.a.view<float>(), 6, g.b.view<float>(), g.c.view<float>(), 5, ep); END,
      CASE("gemm-bias-too-short", Device) Gemm g(c.dev);
      gemm(c.st(), 4, g.a.view<float>(), 6, g.b.view<float>(), g.c.view<float>(), 5,
           axle::blas::Epilogue::with_bias(axle::blas::BiasMode::PerCol, g.bias.view<float>())); END,
      CASE("gemm-batched-lengths", Device) Gemm g(c.dev);
      std::vector<axle::BufferView<float>> a{g.a.view<float>(), g.a.view<float>()}, b{g.b.view<float>()},
          cc{g.c.view<float>(), g.c.view<float>()};
      axle::blas::gemm_batched(c.st(), Layout::RowMajor, Op::N, Op::N, 4, 5, 6, 1.0, a, 6, b, 5, 0.0, cc, 5); END,
      CASE("gemm-batched-entry", Device) Gemm g(c.dev);
      std::vector<axle::BufferView<float>> a{g.a.view<float>(), g.a.view<float>()},
          b{g.b.view<float>(), g.b.view<float>()}, cc{g.c.view<float>(), g.c.view<float>(0, 19)};
      axle::blas::gemm_batched(c.st(), Layout::RowMajor, Op::N, Op::N, 4, 5, 6, 1.0, a, 6, b, 5, 0.0, cc, 5); END,
      // ---- convolution
      CASE("conv-zero-size", Nothing) Conv2dDesc d = make(1, 4, 8, 8, 4, 3, 3);
      d.c = 0;
      axle::dnn::conv2d_output_shape(d); END,
      CASE("conv-zero-stride", Nothing) Conv2dDesc d = make(1, 4, 8, 8, 4, 3, 3);
      d.stride_h = 0;
      axle::dnn::conv2d_output_shape(d); END,
      CASE("conv-size-too-large", Device) Conv2dDesc d = make(1, 4, 8, 8, 4, 3, 3);
      d.h = std::size_t{1} << 31;
      axle::dnn::Conv2dPlan(c.dev, d, axle::dnn::Conv2dTypes{}); END,
      CASE("conv-tensor-too-large", Device)
          axle::dnn::Conv2dPlan(c.dev, make(1 << 16, 64, 1 << 8, 1 << 8, 4, 1, 1), axle::dnn::Conv2dTypes{}); END,
      CASE("conv-groups-do-not-divide-c", Device) Conv2dDesc d = make(1, 4, 8, 8, 4, 3, 3);
      d.groups = 3;
      axle::dnn::Conv2dPlan(c.dev, d, axle::dnn::Conv2dTypes{}); END,
      CASE("conv-groups-do-not-divide-k", Device) Conv2dDesc d = make(1, 6, 8, 8, 4, 3, 3);
      d.groups = 3;
      axle::dnn::Conv2dPlan(c.dev, d, axle::dnn::Conv2dTypes{}); END,
      CASE("conv-no-output", Device)
          axle::dnn::Conv2dPlan(c.dev, make(1, 4, 2, 8, 4, 3, 3), axle::dnn::Conv2dTypes{}); END,
      CASE("conv-mixed-types", Device) axle::dnn::Conv2dTypes t;
      t.w = axle::dnn::DataType::F16;
      axle::dnn::Conv2dPlan(c.dev, make(1, 4, 8, 8, 4, 3, 3), t); END,
      CASE("conv-empty-device", Nothing)
          axle::dnn::Conv2dPlan(axle::Device(), make(1, 4, 8, 8, 4, 3, 3), axle::dnn::Conv2dTypes{}); END,
      CASE("conv-forced-algorithm", Device) axle::dnn::Conv2dOptions opt;
      opt.algorithm = axle::dnn::Algorithm::Gemm1x1;
      axle::dnn::Conv2dPlan(c.dev, make(1, 4, 8, 8, 4, 3, 3), axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward,
                            {}, opt); END,
      CASE("conv-backward-activation", Device)
          axle::dnn::Conv2dPlan(c.dev, make(1, 4, 8, 8, 4, 3, 3), axle::dnn::Conv2dTypes{},
                                axle::dnn::Direction::BackwardWeights,
                                axle::dnn::Conv2dFusion{false, false, axle::dnn::Activation::ReLU}); END,
      CASE("conv-workspace-limit", Device) axle_test::ScopedEnv env("AXLE_CONV_IGEMM", "packed");
      Conv2dDesc d = make(1, 8, 6, 6, 20, 3, 3, TensorLayout::NHWC);
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      axle::dnn::Conv2dOptions opt;
      opt.algorithm = axle::dnn::Algorithm::ImplicitGemm;
      opt.workspace_limit = 1;
      axle::dnn::Conv2dPlan(c.dev, d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, opt); END,
      CASE("conv-one-shot-empty-filter", Device) Conv v(c.dev);
      auto a = v.args(false);
      a.w = axle::dnn::TensorRef();
      axle::dnn::conv2d_forward(c.st(), v.d, a); END,
      CASE("conv-bias-on-bwd-data", Device)
          axle::dnn::Conv2dPlan(c.dev, make(1, 4, 8, 8, 4, 3, 3), axle::dnn::Conv2dTypes{},
                                axle::dnn::Direction::BackwardData, axle::dnn::Conv2dFusion{true, false}); END,
      CASE("conv-packed-no-packed-form", Device) Conv v(c.dev);
      axle::dnn::Conv2dOptions o;
      o.algorithm = axle::dnn::Algorithm::Direct;
      axle::dnn::Conv2dPlan(c.dev, v.d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, o)
          .pack_weights(c.st(), v.bw.view<float>(), v.bh.view<unsigned char>()); END,
      CASE("conv-packed-one-shot", Device) Conv v(c.dev);
      auto a = v.args(false);
      a.packed_w = v.bh.view<unsigned char>();
      axle::dnn::conv2d_forward(c.st(), v.d, a); END,
      CASE("conv-packed-weights-backward", Device) axle::dnn::Conv2dOptions o;
      o.packed_weights = true;
      axle::dnn::Conv2dPlan(c.dev, make(1, 4, 8, 8, 4, 3, 3), axle::dnn::Conv2dTypes{},
                            axle::dnn::Direction::BackwardWeights, {}, o); END,
      CASE("conv-empty-plan", Device) Conv v(c.dev);
      axle::dnn::Conv2dPlan().run(c.st(), v.args(false)); END,
      CASE("conv-empty-stream", Device) Conv v(c.dev);
      axle::Stream none;
      v.plan(c.dev, false).run(none, v.args(false)); END,
      CASE("conv-tensor-too-small", Device) Conv v(c.dev);
      auto a = v.args(false);
      a.x = v.bx.view<float>(1);
      v.plan(c.dev, false).run(c.st(), a); END,
      CASE("conv-tensor-wrong-type", Device) Conv v(c.dev);
      auto a = v.args(false);
      a.y = v.bh.view<axle::half_t>();
      v.plan(c.dev, false).run(c.st(), a); END,
      CASE("conv-tensor-empty", Device) Conv v(c.dev);
      auto a = v.args(false);
      a.x = axle::dnn::TensorRef();
      v.plan(c.dev, false).run(c.st(), a); END,
      CASE("conv-bias-missing", Device) Conv v(c.dev);
      v.plan(c.dev, true).run(c.st(), v.args(false)); END,
      CASE("conv-bias-too-short", Device) Conv v(c.dev);
      auto a = v.args(true);
      a.bias = v.bb.view<float>(0, 3);
      v.plan(c.dev, true).run(c.st(), a); END,
      CASE("conv-unexpected-bias", Device) Conv v(c.dev);
      v.plan(c.dev, false).run(c.st(), v.args(true)); END,
      CASE("conv-unexpected-residual", Device) Conv v(c.dev);
      auto a = v.args(false);
      a.z = v.by.view<float>();
      v.plan(c.dev, false).run(c.st(), a); END,
      CASE("conv-workspace-misaligned", Device) axle_test::ScopedEnv env("AXLE_CONV_IGEMM", "packed");
      Conv2dDesc d = make(1, 8, 6, 6, 20, 3, 3, TensorLayout::NHWC);
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      axle::dnn::Conv2dOptions opt;
      opt.algorithm = axle::dnn::Algorithm::ImplicitGemm;
      axle::dnn::Conv2dPlan plan(c.dev, d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, opt);
      const std::size_t ws = plan.workspace_bytes();
      axle::Buffer bx = c.dev.alloc<float>(d.x_elems()), bw = c.dev.alloc<float>(d.w_elems()),
                   by = c.dev.alloc<float>(d.y_elems()), bws = c.dev.alloc<unsigned char>(ws + 48);
      axle::dnn::Conv2dArgs a;
      a.x = bx.view<float>();
      a.w = bw.view<float>();
      a.y = by.view<float>();
      a.workspace = bws.view<unsigned char>(3, ws);
      plan.run(c.st(), a); END,
      CASE("conv-workspace-too-small", Device) axle_test::ScopedEnv env("AXLE_CONV_IGEMM", "packed");
      Conv2dDesc d = make(1, 8, 6, 6, 20, 3, 3, TensorLayout::NHWC);
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      axle::dnn::Conv2dOptions opt;
      opt.algorithm = axle::dnn::Algorithm::ImplicitGemm;
      axle::dnn::Conv2dPlan plan(c.dev, d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, opt);
      const std::size_t ws = plan.workspace_bytes();
      axle::Buffer bx = c.dev.alloc<float>(d.x_elems()), bw = c.dev.alloc<float>(d.w_elems()),
                   by = c.dev.alloc<float>(d.y_elems()), bws = c.dev.alloc<unsigned char>(ws + 48);
      axle::dnn::Conv2dArgs a;
      a.x = bx.view<float>();
      a.w = bw.view<float>();
      a.y = by.view<float>();
      a.workspace = bws.view<unsigned char>(16, ws - 1);
      plan.run(c.st(), a); END,
  };
  return all;
}
// clang-format on

#undef CASE
#undef END

// ---------------------------------------------------------------- the tests

class ErrorCatalogue : public ::testing::TestWithParam<Row> {};

TEST_P(ErrorCatalogue, Row) {
  const Row& r = GetParam();
  SCOPED_TRACE("docs/errors.md:" + std::to_string(r.line) + " (" + r.id + ")");
  ASSERT_FALSE(r.id.empty()) << "a table row without a `id` in its first cell, or not 4 cells";
  ASSERT_FALSE(r.fragments.empty()) << "the row lists no message fragment";
  const auto it = cases().find(r.id);
  ASSERT_NE(it, cases().end()) << "no case is registered for this row in tests/error_catalogue_test.cpp";
  const Case& k = it->second;
  Ctx* c = &ctx(k.needs != Needs::Nothing);
  if (k.needs != Needs::Nothing) {
    if (!c->dev.valid()) GTEST_SKIP() << "no OpenCL device";
    if (k.needs == Needs::TwoDevices && !c->dev1.valid()) {
      // The CTest entry made for these rows sets AXLE_TEST_EXPECT_TWO_DEVICES.
      if (std::getenv("AXLE_TEST_EXPECT_TWO_DEVICES")) FAIL() << "two OpenCL devices were expected";
      GTEST_SKIP() << "needs two OpenCL devices (POCL_DEVICES=\"pthread pthread\")";
    }
  }
  std::string text, type = "(returned)";
  try {
    text = k.run(*c);
  } catch (const axle::Error& e) {
    text = e.what();
    type = type_of(e);
  } catch (const std::exception& e) {
    FAIL() << "not an axle::Error: " << e.what();
  }
  if (r.error == "(returned)") {
    EXPECT_EQ(type, "(returned)") << "the case threw " << type << ": " << text;
  } else {
    ASSERT_NE(type, "(returned)") << "nothing was thrown";
    EXPECT_EQ(type, r.error) << text;
  }
  for (const auto& f : r.fragments) EXPECT_NE(text.find(f), std::string::npos) << "'" << f << "' is not in: " << text;
  // Nothing was left behind on the stream: it still works.
  if (c->s) ASSERT_NO_THROW(c->s->synchronize());
}

std::string row_name(const ::testing::TestParamInfo<Row>& info) {
  std::string n = info.param.id.empty() ? "line_" + std::to_string(info.param.line) : info.param.id;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Doc, ErrorCatalogue, ::testing::ValuesIn(doc_rows()), row_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ErrorCatalogue);

TEST(ErrorCatalogueDoc, EveryCaseHasOneRow) {
  const auto rows = doc_rows();
  ASSERT_GT(rows.size(), 100u) << "docs/errors.md is missing or lost its tables";
  std::set<std::string> ids;
  for (const auto& r : rows) EXPECT_TRUE(ids.insert(r.id).second) << "id '" << r.id << "' appears twice";
  for (const auto& [id, k] : cases())
    EXPECT_EQ(ids.count(id), 1u) << "case '" << id << "' has no row in docs/errors.md";
}

}  // namespace
