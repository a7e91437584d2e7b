// NVRTC compile checks: every kernel in the tree, and the portable dialect, compile to
// CUBIN with NVRTC for sm_80, sm_90 and sm_90a. No GPU and no driver are needed; the
// test FAILS (never skips) when NVRTC cannot be loaded in a build made with the CUDA
// toolkit (AXLE_TEST_EXPECT_NVRTC).
//
// Kernel files compiled:
//   samples/**/*.cl and kernels/src/cl/*.cl   portable dialect (CUDA prelude prepended)
//   kernels/src/cuda/*.cu                     native CUDA C++
//   tests/cuda/*.cu                           native CUDA C++ the backend tests run
//
// Conventions a kernel file may declare in comment lines among its leading lines (the
// comment block before the first line of code):
//
//   // axle-variant: -DMR=4 -DNR=16
//       One compile variant: each -DNAME=VALUE (or -DNAME) token is a define, any other
//       token a compiler flag. One line per variant; a file with none is compiled once
//       with no defines. Variants are compiled for every architecture.
//   // axle-arch: sm_90a
//       The architectures the file is compiled for (space- or comma-separated), for
//       kernels that need one (WGMMA/TMA: sm_90a). Without it: sm_80, sm_90, sm_90a.
//
// A compile failure prints NVRTC's full log. The dialect tests below also build the
// same sources on an OpenCL device when one is available (e.g. PoCL), so the two
// preludes are checked against each other.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "axle/axle.hpp"
#include "backend/backend.hpp"
#include "nvrtc_compile.hpp"

namespace fs = std::filesystem;
using axle::BuildOptions;
using axle::SourceKind;
using axle::detail::NvrtcResult;

namespace {

const std::vector<std::string> kDefaultArchs = {"sm_80", "sm_90", "sm_90a"};
// Portable kernels are built for the device's own architecture (sm_90 on Hopper: the
// "a" targets serve only the CUDA files that use wgmma), so sm_90a would repeat sm_90.
// Every variant compiles for sm_90; for sm_80 the first variant of each file does (the
// front end sees the same text for both: what differs per architecture is ptxas).
const std::vector<std::string> kPortableArchs = {"sm_90", "sm_80"};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Variant {
  std::string label;  ///< the variant line, for messages
  BuildOptions options;
};

struct KernelFile {
  fs::path path;
  SourceKind kind;
  std::string text;
  std::vector<Variant> variants;
  std::vector<std::string> archs;
};

Variant parse_variant(const std::string& line) {
  Variant v;
  v.label = line;
  std::istringstream in(line);
  for (std::string tok; in >> tok;) {
    if (tok.rfind("-D", 0) == 0 && tok.size() > 2) {
      const auto eq = tok.find('=');
      if (eq == std::string::npos) v.options.define(tok.substr(2));
      else v.options.define(tok.substr(2, eq - 2), tok.substr(eq + 1));
    } else {
      v.options.flags += (v.options.flags.empty() ? "" : " ") + tok;
    }
  }
  return v;
}

KernelFile load_kernel_file(const fs::path& p, SourceKind kind) {
  KernelFile kf{p, kind, read_file(p), {}, kind == SourceKind::Portable ? kPortableArchs : kDefaultArchs};
  std::istringstream in(kf.text);
  static const std::regex kVariant(R"(^\s*//\s*axle-variant:\s*(.*)$)");
  static const std::regex kArch(R"(^\s*//\s*axle-arch:\s*(.*)$)");
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    if (line.compare(first, 2, "//") != 0) break;  // end of the leading comment block
    std::smatch m;
    if (std::regex_match(line, m, kVariant)) kf.variants.push_back(parse_variant(m[1]));
    if (std::regex_match(line, m, kArch)) {
      std::string list = m[1];
      std::replace(list.begin(), list.end(), ',', ' ');
      std::istringstream ls(list);
      kf.archs.clear();
      for (std::string a; ls >> a;) kf.archs.push_back(a);
    }
  }
  if (kf.variants.empty()) kf.variants.push_back(Variant{"(no defines)", {}});
  // Shared headers beside a kernel file (*.cuh for CUDA, *.clh for the portable dialect)
  // are passed as named headers, as the kernel library does with BuildOptions::header.
  std::error_code ec;
  const std::string header_ext = kind == SourceKind::CUDA ? ".cuh" : ".clh";
  for (const auto& e : fs::directory_iterator(p.parent_path(), ec))
    if (e.is_regular_file() && e.path().extension() == header_ext)
      for (auto& v : kf.variants) v.options.header(e.path().filename().string(), read_file(e.path()));
  return kf;
}

std::vector<KernelFile> collect(const fs::path& dir, const std::string& ext, SourceKind kind, bool recursive) {
  std::vector<fs::path> paths;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ext) paths.push_back(e.path());
  } else {
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ext) paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<KernelFile> out;
  for (const auto& p : paths) out.push_back(load_kernel_file(p, kind));
  return out;
}

::testing::AssertionResult compiled(const NvrtcResult& r, const std::string& what) {
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << r.error << "\n--- NVRTC log ---\n"
                                       << r.log << "\n--- options ---\n"
                                       << r.options;
}

// fn(0) .. fn(n - 1) on up to 8 threads (NVRTC is thread-safe).
void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next++) < n;) fn(i);
  };
  const unsigned nthreads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < nthreads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

// Compile every variant of every file for its architectures (in parallel: NVRTC is
// thread-safe); returns the count.
int compile_all(const std::vector<KernelFile>& files) {
  struct Job {
    const KernelFile* file;
    const Variant* variant;
    std::string arch;
    NvrtcResult result;
    double seconds = 0;
  };
  std::vector<Job> jobs;
  for (const auto& f : files)
    for (const auto& v : f.variants)
      for (const auto& arch : f.archs)
        if (f.kind != SourceKind::Portable || arch == f.archs.front() || &v == &f.variants.front())
          jobs.push_back(Job{&f, &v, arch, {}});
  parallel_for(jobs.size(), [&](std::size_t i) {
    const auto t0 = std::chrono::steady_clock::now();
    jobs[i].result = axle::detail::nvrtc_compile_for_test(jobs[i].file->kind, jobs[i].file->text,
                                                          jobs[i].variant->options, jobs[i].arch);
    jobs[i].seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });
  // The slowest compiles, to keep an eye on what this test costs.
  std::vector<const Job*> by_time;
  for (const auto& j : jobs) by_time.push_back(&j);
  std::sort(by_time.begin(), by_time.end(), [](const Job* a, const Job* b) { return a->seconds > b->seconds; });
  for (std::size_t i = 0; i < std::min<std::size_t>(3, by_time.size()); ++i)
    std::printf("  %.1f s: %s [%s] for %s\n", by_time[i]->seconds, by_time[i]->file->path.filename().string().c_str(),
                by_time[i]->variant->label.c_str(), by_time[i]->arch.c_str());
  for (const auto& j : jobs) {
    const std::string what = j.file->path.string() + " [" + j.variant->label + "] for " + j.arch;
    const NvrtcResult& r = j.result;
    EXPECT_TRUE(compiled(r, what));
    if (r.ok) {
      EXPECT_TRUE(r.is_cubin) << what;
      EXPECT_GT(r.binary.size(), 4u) << what;
      // An ELF image: the driver loads it with cuModuleLoadData.
      if (r.binary.size() > 4) EXPECT_EQ(0, std::memcmp(r.binary.data(), "\x7f" "ELF", 4)) << what;
    }
  }
  return static_cast<int>(jobs.size());
}

class NvrtcTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef AXLE_TEST_EXPECT_NVRTC
    ASSERT_TRUE(axle::detail::nvrtc_available())
        << "this build was made with the CUDA toolkit, so NVRTC must load: " << axle::detail::nvrtc_status();
#else
    if (!axle::detail::nvrtc_available()) GTEST_SKIP() << axle::detail::nvrtc_status();
#endif
  }
};

// ---------------------------------------------------------------- dialect sources
// Each exercises part of the prelude; together they use every AXLE_ macro, every
// vector helper, the half/bfloat16 helpers and local-memory parameters.

struct DialectCase {
  const char* name;
  const char* text;
};

const DialectCase kDialect[] = {
    {"ids_and_qualifiers", R"(
AXLE_CONSTANT float kScale[4] = {1.0f, 2.0f, 3.0f, 4.0f};
AXLE_FUNC float twice(float x) { return 2.0f * x; }
AXLE_KERNEL void ids(AXLE_GLOBAL float* AXLE_RESTRICT out, AXLE_CONSTANT float* coef, uint n) {
  const size_t gx = AXLE_GLOBAL_ID(0), gy = AXLE_GLOBAL_ID(1), gz = AXLE_GLOBAL_ID(2);
  const size_t lx = AXLE_LOCAL_ID(0), ly = AXLE_LOCAL_ID(1), lz = AXLE_LOCAL_ID(2);
  const size_t wx = AXLE_GROUP_ID(0), wy = AXLE_GROUP_ID(1), wz = AXLE_GROUP_ID(2);
  const size_t sx = AXLE_LOCAL_SIZE(0), sy = AXLE_LOCAL_SIZE(1), sz = AXLE_LOCAL_SIZE(2);
  const size_t nx = AXLE_GLOBAL_SIZE(0), ny = AXLE_GLOBAL_SIZE(1), nz = AXLE_GLOBAL_SIZE(2);
  const size_t qx = AXLE_NUM_GROUPS(0), qy = AXLE_NUM_GROUPS(1), qz = AXLE_NUM_GROUPS(2);
  const size_t i = gx + nx * (gy + ny * gz);
  if (i < n)
    out[i] = twice((float)(lx + ly + lz + wx + wy + wz + sx + sy + sz + qx + qy + qz)) * coef[0] + kScale[i & 3];
}
)"},
    {"reqd_work_group_and_local_arrays", R"(
AXLE_KERNEL AXLE_REQD_WG(16, 8, 1) void tile_sum(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* out) {
  AXLE_LOCAL float tile[8][16];
  const int lx = (int)AXLE_LOCAL_ID(0), ly = (int)AXLE_LOCAL_ID(1);
  tile[ly][lx] = in[AXLE_GLOBAL_ID(1) * AXLE_GLOBAL_SIZE(0) + AXLE_GLOBAL_ID(0)];
  AXLE_BARRIER();
  if (lx == 0) {
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) s += tile[ly][k];
    out[AXLE_GROUP_ID(1) * 8 + ly] = s;
  }
  AXLE_BARRIER_GLOBAL();
}
)"},
    {"local_memory_params", R"(
AXLE_FUNC float sum_local(AXLE_LOCAL_PTR(float) p, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += p[i];
  return s;
}
AXLE_KERNEL void two_locals(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* out,
                            AXLE_LOCAL_PTR(float) a, AXLE_LOCAL_PTR(int) b) {
  const uint l = (uint)AXLE_LOCAL_ID(0);
  AXLE_LOCAL float fixed[4];
  a[l] = in[AXLE_GLOBAL_ID(0)];
  b[l] = (int)l;
  if (l < 4) fixed[l] = 1.0f;
  AXLE_BARRIER();
  AXLE_LOCAL_PTR(float) shifted = a + 1;
  AXLE_LOCAL_PTR(float) fx = fixed;
  if (l == 0) out[AXLE_GROUP_ID(0)] = sum_local(a, (int)AXLE_LOCAL_SIZE(0)) + shifted[0] + (float)b[1] + sum_local(fx, 4);
}
)"},
    {"vectors", R"(
AXLE_KERNEL void vec_ops(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* out) {
  const size_t i = AXLE_GLOBAL_ID(0);
  float2 a2 = AXLE_VLOAD(2, i, in);
  float4 a4 = AXLE_VLOAD(4, i, in);
  float8 a8 = AXLE_VLOAD(8, i, in);
  float16 a16 = AXLE_VLOAD(16, i, in);
  float2 b2 = AXLE_SPLAT(float2, 2.0f);
  float4 b4 = AXLE_SPLAT(float4, 0.5f);
  float8 b8 = AXLE_SPLAT(float8, 1.5f);
  float16 b16 = AXLE_SPLAT(float16, -1.0f);
  a2 = a2 * b2 + a2 - b2 / b2;
  a4 = fma(a4, b4, a4) * 3.0f + 1.0f;
  a4 = 2.0f * a4 - 1.0f;
  a4 += b4;
  a4 -= b4;
  a4 *= b4;
  a4 /= b4;
  a4 *= 2.0f;
  a8 = fma(a8, b8, b8) / 2.0f;
  a16 = a16 * b16 - a16;
  a16 += b16;
  a4.x += a2.y + a8.s7 + a16.sf;
  a4 = -a4;
  AXLE_VSTORE(2, a2, i, out);
  AXLE_VSTORE(4, a4, i, out);
  AXLE_VSTORE(8, a8, i, out);
  AXLE_VSTORE(16, a16, i, out);
}
)"},
    {"half_and_bfloat16", R"(
AXLE_KERNEL void convert(AXLE_GLOBAL const AXLE_HALF* h, AXLE_GLOBAL AXLE_HALF* ho,
                         AXLE_GLOBAL const ushort* b, AXLE_GLOBAL ushort* bo, uint n) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i >= n) return;
  const float x = AXLE_LOAD_HALF(i, h);
  AXLE_STORE_HALF(x * 2.0f, i, ho);
  const float y = axle_bf16_to_float(b[i]);
  bo[i] = axle_float_to_bf16(y + 1.0f);
}
)"},
    {"builtins_and_types", R"(
AXLE_KERNEL void builtins(AXLE_GLOBAL float* f, AXLE_GLOBAL int* c, AXLE_GLOBAL uint* u,
                          AXLE_GLOBAL ulong* w, AXLE_GLOBAL uchar* b, AXLE_GLOBAL double* d) {
  const size_t i = AXLE_GLOBAL_ID(0);
  float x = f[i];
  x = mad(x, 2.0f, 1.0f) + clamp(x, 0.0f, 1.0f) + native_exp(x) + native_recip(x + 1.0f) + native_divide(x, 3.0f);
  x += sqrt(x) + exp(x) + log(x + 1.0f) + fabs(x) + fmin(x, 1.0f) + fmax(x, 0.0f) + pow(x, 2.0f) + floor(x);
  x += rsqrt(x + 1.0f) + native_sqrt(x) + native_rsqrt(x + 1.0f) + native_log(x + 1.0f) + tanh(x) + erf(x);
  x += as_float(as_uint(x)) + as_float(as_int(x)) + (float)isnan(x) + (float)isinf(x);
  f[i] = x;
  c[i] = max(c[i], 0) + min(c[i], 7) + clamp(c[i], -1, 1) + abs(c[i]) + mul24(c[i], 3) + mad24(c[i], 2, 1);
  u[i] = max(u[i], 1u) + clamp(u[i], 2u, 9u);
  w[i] = (ulong)u[i] << 33;
  b[i] = (uchar)(b[i] + 1);
  d[i] = fma(d[i], 2.0, 1.0) + sqrt(d[i]);
  atomic_add(c, 1);
  atomic_sub(c + 1, 1);
  atomic_inc(c + 2);
  atomic_dec(c + 3);
  atomic_max(c + 4, 5);
  atomic_min(c + 5, 5);
  atomic_xchg(c + 6, 9);
  atomic_cmpxchg(c + 7, 0, 1);
  atomic_and(u, 3u);
  atomic_or(u + 1, 3u);
  atomic_xor(u + 2, 3u);
  atomic_add(u + 3, 1u);
}
)"},
    {"backend_macros", R"(
#if defined(AXLE_CUDA) == defined(AXLE_OPENCL)
#error exactly one of AXLE_CUDA / AXLE_OPENCL must be defined
#endif
#if defined(AXLE_BACKEND_CUDA) == defined(AXLE_BACKEND_OPENCL)
#error exactly one of AXLE_BACKEND_CUDA / AXLE_BACKEND_OPENCL must be defined
#endif
AXLE_KERNEL void noop(void) {}
AXLE_KERNEL void one_arg(AXLE_GLOBAL int* p) { p[0] = 1; }
)"},
};

// ---------------------------------------------------------------- prelude parity

std::set<std::string> prelude_names(const std::string& text) {
  std::set<std::string> names;
  static const std::regex kDef(R"(#\s*define\s+(AXLE_[A-Z0-9_]+))");
  static const std::regex kFn(R"(\b(axle_(?:bf16_to_float|float_to_bf16)[a-z0-9_]*)\s*\()");
  for (std::sregex_iterator it(text.begin(), text.end(), kDef), end; it != end; ++it) names.insert((*it)[1]);
  for (std::sregex_iterator it(text.begin(), text.end(), kFn), end; it != end; ++it) names.insert((*it)[1]);
  return names;
}

}  // namespace

TEST_F(NvrtcTest, ReportsVersionAndTargets) {
  const std::string s = axle::detail::nvrtc_status();
  std::printf("%s\n", s.c_str());
  EXPECT_NE(s.find("NVRTC"), std::string::npos);
}

TEST_F(NvrtcTest, PortableSamples) {
  auto files = collect(fs::path(AXLE_SOURCE_DIR) / "samples", ".cl", SourceKind::Portable, true);
  const int n = compile_all(files);
  std::printf("compiled %zu sample file(s), %d compile(s)\n", files.size(), n);
  EXPECT_FALSE(files.empty()) << "no samples/**/*.cl found";
}

TEST_F(NvrtcTest, PortableLibraryKernels) {
  auto files = collect(fs::path(AXLE_SOURCE_DIR) / "kernels/src/cl", ".cl", SourceKind::Portable, false);
  const int n = compile_all(files);
  std::printf("compiled %zu kernels/src/cl file(s), %d compile(s)\n", files.size(), n);
}

TEST_F(NvrtcTest, CudaLibraryKernels) {
  auto files = collect(fs::path(AXLE_SOURCE_DIR) / "kernels/src/cuda", ".cu", SourceKind::CUDA, false);
  const int n = compile_all(files);
  std::printf("compiled %zu kernels/src/cuda file(s), %d compile(s)\n", files.size(), n);
}

// ptxas resource use of every native CUDA kernel of the library (the first variant of
// each file, for the newest architecture it is built for): registers and spill bytes
// per entry function, printed as a table (and written to $AXLE_PTXAS_REPORT when set).
// The tensor-core and SIMT GEMM and convolution kernels are tuned to keep everything in
// registers: a spill there is a performance regression, so it fails the test.
TEST_F(NvrtcTest, CudaKernelRegistersAndSpills) {
  auto files = collect(fs::path(AXLE_SOURCE_DIR) / "kernels/src/cuda", ".cu", SourceKind::CUDA, false);
  ASSERT_FALSE(files.empty());
  struct Entry {
    std::string file, variant, arch, function;
    int registers = -1;
    long spill_stores = 0, spill_loads = 0;
  };
  std::vector<Entry> entries;
  std::mutex mu;
  parallel_for(files.size(), [&](std::size_t i) {
    const KernelFile& f = files[i];
    BuildOptions o = f.variants.front().options;
    o.flags += " --ptxas-options=-v";
    const std::string arch = f.archs.back();
    const NvrtcResult r = axle::detail::nvrtc_compile_for_test(f.kind, f.text, o, arch);
    EXPECT_TRUE(compiled(r, f.path.filename().string() + " with -v"));
    // ptxas info    : Compiling entry function 'name' for 'sm_90a'
    // ptxas info    : Used 168 registers, used 1 barriers, 384 bytes cmem[0]
    //     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    static const std::regex kEntry(R"(Compiling entry function '([^']+)')");
    static const std::regex kRegs(R"(Used (\d+) registers)");
    static const std::regex kSpill(R"((\d+) bytes spill stores, (\d+) bytes spill loads)");
    std::istringstream in(r.log);
    std::vector<Entry> mine;
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_search(line, m, kEntry)) {
        mine.push_back(Entry{f.path.filename().string(), f.variants.front().label, arch, m[1]});
      } else if (!mine.empty() && std::regex_search(line, m, kSpill)) {
        mine.back().spill_stores = std::stol(m[1]);
        mine.back().spill_loads = std::stol(m[2]);
      } else if (!mine.empty() && std::regex_search(line, m, kRegs)) {
        mine.back().registers = std::stoi(m[1]);
      }
    }
    EXPECT_FALSE(mine.empty()) << f.path.filename().string() << ": no ptxas report in the log:\n" << r.log;
    std::lock_guard<std::mutex> lock(mu);
    entries.insert(entries.end(), mine.begin(), mine.end());
  });
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.file != b.file ? a.file < b.file : a.function < b.function; });
  std::ostringstream table;
  table << "file | variant | arch | kernel | registers | spill stores | spill loads\n";
  for (const auto& e : entries) {
    table << e.file << " | " << e.variant << " | " << e.arch << " | " << e.function << " | " << e.registers << " | "
          << e.spill_stores << " | " << e.spill_loads << "\n";
    EXPECT_GT(e.registers, 0) << e.file << " " << e.function << ": no register count parsed";
    EXPECT_EQ(e.spill_stores + e.spill_loads, 0)
        << e.file << " " << e.function << " (" << e.arch << ") spills " << e.spill_stores << " bytes out, "
        << e.spill_loads << " bytes in";
  }
  std::printf("%s", table.str().c_str());
  if (const char* out = std::getenv("AXLE_PTXAS_REPORT")) {
    std::ofstream f(out);
    f << table.str();
  }
}

TEST_F(NvrtcTest, CudaTestKernels) {
  // The kernels the CUDA backend tests run on a GPU (tensor maps, clusters).
  auto files = collect(fs::path(AXLE_SOURCE_DIR) / "tests/cuda", ".cu", SourceKind::CUDA, false);
  const int n = compile_all(files);
  std::printf("compiled %zu tests/cuda file(s), %d compile(s)\n", files.size(), n);
  EXPECT_FALSE(files.empty()) << "no tests/cuda/*.cu found";
}

TEST_F(NvrtcTest, DialectCompilesForEveryArch) {
  for (const auto& c : kDialect)
    for (const auto& arch : kDefaultArchs) {
      const NvrtcResult r = axle::detail::nvrtc_compile_for_test(SourceKind::Portable, c.text, {}, arch);
      EXPECT_TRUE(compiled(r, std::string("dialect case '") + c.name + "' for " + arch));
    }
}

TEST_F(NvrtcTest, DialectCompilesOnOpenCL) {
  // The same texts through the OpenCL prelude: the two preludes must accept the same dialect.
  std::vector<axle::Device> cl = axle::devices("opencl");
  if (cl.empty()) GTEST_SKIP() << "no OpenCL device here";
  for (const auto& c : kDialect) {
    axle::BuildOptions o;
    o.disk_cache = false;
    try {
      cl.front().build(axle::Source::portable(c.text, c.name), o);
    } catch (const axle::BuildError& e) {
      ADD_FAILURE() << "dialect case '" << c.name << "' on " << cl.front().id() << ":\n" << e.log();
    }
  }
}

TEST_F(NvrtcTest, EveryOpenCLPreludeMacroHasACudaTwin) {
  const std::string cl(axle::portable_prelude("opencl"));
  const std::string cu(axle::portable_prelude("cuda"));
  std::set<std::string> want = prelude_names(cl), have = prelude_names(cu);
  want.erase("AXLE_OPENCL");
  want.erase("AXLE_BACKEND_OPENCL");
  EXPECT_TRUE(have.count("AXLE_CUDA") && have.count("AXLE_BACKEND_CUDA"));
  for (const auto& n : want) EXPECT_TRUE(have.count(n)) << n << " is in axle_opencl.h but not in axle_cuda.h";
  EXPECT_GT(want.size(), 20u);
}

TEST_F(NvrtcTest, DefinesAndFlagsReachTheCompiler) {
  BuildOptions o;
  o.define("WIDTH", 4).define("EMPTY", std::string());
  o.flags = "-cl-fast-relaxed-math -cl-std=CL1.2";
  const char* src = R"(
#if WIDTH != 4
#error WIDTH
#endif
#ifndef EMPTY
#error EMPTY
#endif
AXLE_KERNEL void k(AXLE_GLOBAL float* p) { p[0] = (float)WIDTH; }
)";
  const NvrtcResult r = axle::detail::nvrtc_compile_for_test(SourceKind::Portable, src, o, "sm_90");
  ASSERT_TRUE(compiled(r, "defines"));
  // Defines travel in the source text, ahead of the prelude; never as options.
  EXPECT_EQ(r.text.rfind("#define WIDTH 4\n#define EMPTY\n", 0), 0u) << r.text.substr(0, 200);
  EXPECT_EQ(r.options.find("-D"), std::string::npos) << r.options;
  EXPECT_NE(r.options.find("--use_fast_math"), std::string::npos);
  EXPECT_EQ(r.options.find("-cl-std"), std::string::npos);
  EXPECT_NE(r.options.find("--gpu-architecture=sm_90"), std::string::npos);
}

TEST_F(NvrtcTest, DefineValuesArriveAsWrittenAndNeverBecomeOptions) {
  BuildOptions o;
  o.define("EXPR", "(3 + 4)").define("STR", "\"a b\"").define("BACKSLASH", "'\\\\'");
  o.define("INJECT", "1 -DY=2").define("FAST", "1 --use_fast_math").define("NOTHING", "");
  const char* src = R"(
#ifdef Y
#error a define's value defined Y
#endif
#if !defined(NOTHING)
#error NOTHING
#endif
static_assert(EXPR * 2 == 14, "EXPR keeps its parentheses");
static_assert(sizeof(STR) == 4, "STR is the literal \"a b\"");
static_assert(BACKSLASH == 92, "BACKSLASH is '\\\\'");
AXLE_KERNEL void k(AXLE_GLOBAL int* p) { int x = 5 NOTHING; p[0] = x + STR[1]; }
)";
  const NvrtcResult r = axle::detail::nvrtc_compile_for_test(SourceKind::Portable, src, o, "sm_80");
  ASSERT_TRUE(compiled(r, "define values"));
  EXPECT_EQ(r.options.find("use_fast_math"), std::string::npos) << r.options;
  EXPECT_NE(r.text.find("#define INJECT 1 -DY=2\n"), std::string::npos);
  // A name that is not an identifier is refused before NVRTC runs.
  BuildOptions bad;
  bad.define("A B", "1");
  const NvrtcResult rb = axle::detail::nvrtc_compile_for_test(SourceKind::Portable, src, bad, "sm_80");
  EXPECT_FALSE(rb.ok);
  EXPECT_NE(rb.error.find("'A B'"), std::string::npos) << rb.error;
}

namespace {
// What CudaDevice::compile hands NVRTC for a build: the front end's define lines and
// expanded source, the prelude, and no headers (the front end has expanded them).
NvrtcResult compile_as_the_backend(SourceKind kind, const std::string& text, const std::string& name,
                                   const BuildOptions& o) {
  namespace cu = axle::detail::cuda;
  const std::string full =
      cu::source_text(kind, axle::detail::define_lines(o), axle::detail::expand_source(text, name, o));
  return cu::compile(name, full, cu::native_options(o), "sm_80");
}
}  // namespace

TEST_F(NvrtcTest, ErrorsNameTheUsersLineAfterAHeader) {
  BuildOptions o;
  std::string ten;
  for (int i = 1; i <= 10; ++i) ten += "#define TEN_" + std::to_string(i) + " " + std::to_string(i) + "\n";
  o.header("ten.h", ten);
  const char* portable =
      "#include \"ten.h\"\n"
      "AXLE_KERNEL void k(AXLE_GLOBAL int* p) {\n"
      "  p[0] = undeclared_on_line_3;\n"
      "}\n";
  const NvrtcResult r = compile_as_the_backend(SourceKind::Portable, portable, "user_source.cl", o);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.log.find("user_source.cl(3)"), std::string::npos) << r.log;
  const char* cuda =
      "#include \"ten.h\"\n"
      "extern \"C\" __global__ void k(int* p) {\n"
      "  p[0] = undeclared_on_line_3;\n"
      "}\n";
  const NvrtcResult rc = compile_as_the_backend(SourceKind::CUDA, cuda, "user_source.cu", o);
  ASSERT_FALSE(rc.ok);
  EXPECT_NE(rc.log.find("user_source.cu(3)"), std::string::npos) << rc.log;
  // The test entry point assembles a build the same way.
  const NvrtcResult rt = axle::detail::nvrtc_compile_for_test(SourceKind::Portable, portable, o, "sm_80");
  ASSERT_FALSE(rt.ok);
  EXPECT_NE(rt.log.find("portable.cl(3)"), std::string::npos) << rt.log;
  // An error in the header names the header's own line.
  o.headers[0].second = "#define A 1\nint header_error_on_line_2 = ;\n";
  const NvrtcResult rh = compile_as_the_backend(SourceKind::CUDA, cuda, "user_source.cu", o);
  ASSERT_FALSE(rh.ok);
  EXPECT_NE(rh.log.find("ten.h(2)"), std::string::npos) << rh.log;
}

TEST_F(NvrtcTest, SourceNamesWithNewlinesAndQuotesCompile) {
  const char* ok = "AXLE_KERNEL void k(AXLE_GLOBAL int* p) { p[0] = 42; }\n";
  for (const std::string name : {"my\nkernel.cl", "say \"hi\".cl", "dir\\kernel.cl"})
    EXPECT_TRUE(compiled(compile_as_the_backend(SourceKind::Portable, ok, name, {}), name));
  const char* broken = "\n\nAXLE_KERNEL void k(AXLE_GLOBAL int* p) { p[0] = undeclared; }\n";
  const NvrtcResult r = compile_as_the_backend(SourceKind::Portable, broken, "my\nkernel \"v2\".cl", {});
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.log.find("my_kernel _v2_.cl(3)"), std::string::npos) << r.log;
}

TEST_F(NvrtcTest, HeadersAreIncludable) {
  BuildOptions o;
  o.header("my_header.h", "#define FROM_HEADER 3\n");
  const NvrtcResult r = axle::detail::nvrtc_compile_for_test(
      SourceKind::CUDA, "#include \"my_header.h\"\nextern \"C\" __global__ void k(int* p) { p[0] = FROM_HEADER; }\n",
      o, "sm_80");
  EXPECT_TRUE(compiled(r, "headers"));
}

TEST_F(NvrtcTest, CompileErrorCarriesTheFullLog) {
  const NvrtcResult r = axle::detail::nvrtc_compile_for_test(
      SourceKind::Portable, "AXLE_KERNEL void broken(AXLE_GLOBAL float* p) { p[0] = undefined_name; }\n", {}, "sm_80");
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.log.find("undefined_name"), std::string::npos) << r.log;
  // #line maps errors to the user's own line 1.
  EXPECT_NE(r.log.find("(1)"), std::string::npos) << r.log;
  EXPECT_EQ(r.call, "nvrtcCompileProgram");
}

TEST_F(NvrtcTest, NativeOpenCLIsRejectedAndBadArchReported) {
  EXPECT_FALSE(axle::detail::nvrtc_compile_for_test(SourceKind::OpenCL, "__kernel void k() {}", {}, "sm_80").ok);
  const NvrtcResult r = axle::detail::nvrtc_compile_for_test(SourceKind::CUDA, "extern \"C\" __global__ void k() {}", {},
                                                             "sm_9");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("sm_9"), std::string::npos) << r.error;
}

TEST_F(NvrtcTest, Sm90aOnlyCodeNeedsSm90a) {
  // wgmma.fence exists only on sm_90a: it must compile there and fail on sm_90.
  const char* src = R"(extern "C" __global__ void k() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); })";
  EXPECT_TRUE(compiled(axle::detail::nvrtc_compile_for_test(SourceKind::CUDA, src, {}, "sm_90a"), "sm_90a"));
  EXPECT_FALSE(axle::detail::nvrtc_compile_for_test(SourceKind::CUDA, src, {}, "sm_90").ok);
}
