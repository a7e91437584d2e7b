// gemm_bench: Axle GEMM against the peers present, timed in the same process run.
//
//   OpenCL device: Axle vs CLBlast (same device, same queue) vs OpenBLAS (host, N threads)
//   CUDA device:   Axle vs cuBLAS (f32, TF32, f16, bf16)
//
// Usage: gemm_bench [--quick] [--device SPEC] [--dtype f32|f16|bf16|all] [--json PATH]
//                   [--sizes MxNxK,...] [--batch B] [--threads N] [--rounds R] [--cpu-time]
//                   [--only IMPL,...]
// --batch B times B contiguous products per call (Axle gemm_strided_batched, CLBlast
// GemmStridedBatched, cuBLAS GemmStridedBatchedEx, an OpenBLAS loop).
// --cpu-time divides by process CPU time (all threads) instead of wall time: a steadier
// way to compare implementations on a shared, busy machine (multiply by the thread
// count to compare with wall-clock figures).
// Each size is measured in R interleaved rounds (Axle, then each peer, repeated), each a
// median of several timed runs; the reported GFLOP/s is the median over rounds. Packing
// and every launch Axle makes are inside the timed region (wall clock, synchronised).
// After OpenBLAS's runs the bench waits 0.3 s: its pthread workers spin-wait about
// 0.1 s after a call and would otherwise slow whatever runs next on the same cores.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "axle/axle.hpp"
#include "axle/blas.hpp"

#ifdef AXLE_BENCH_HAVE_CLBLAST
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast.h>
#endif
#ifdef AXLE_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef AXLE_BENCH_HAVE_CUBLAS
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

namespace {

struct Shape {
  std::size_t m, n, k;
};
struct Record {
  std::string impl, backend, device, dtype;
  Shape s;
  double gflops;
  std::size_t batch;
};

// One Axle call: C = A B for `batch` contiguous m x k, k x n, m x n matrices.
template <typename T>
void axle_gemm(axle::Stream& s, std::size_t m, std::size_t n, std::size_t k, std::size_t batch, const axle::Buffer& a,
               const axle::Buffer& b, const axle::Buffer& c, const axle::blas::GemmOptions& o = {}) {
  if (batch == 1)
    axle::blas::gemm(s, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, m, n, k, 1.0, a.view<T>(), k, b.view<T>(), n,
                     0.0, c.view<T>(), n, {}, o);
  else
    axle::blas::gemm_strided_batched(s, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, m, n, k, 1.0, a.view<T>(), k,
                                     m * k, b.view<T>(), n, k * n, 0.0, c.view<T>(), n, m * n, batch, {}, o);
  s.synchronize();
}

bool g_cpu_time = false;  // --cpu-time: process CPU seconds / threads instead of wall seconds

double now_s() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Time f (which must block until done): a warm-up, then runs until ~budget seconds or reps.
double time_gflops(const std::function<void()>& f, double flops, double budget, bool warm_up = true) {
  if (warm_up) f();
  std::vector<double> t;
  const double start = now_s();
  do {
    const double a = now_s();
    f();
    t.push_back(now_s() - a);
  } while ((now_s() - start < budget && t.size() < 15) || t.size() < (budget > 0 ? 2u : 1u));
  return flops / median(t) * 1e-9;
}

std::vector<Shape> parse_sizes(const std::string& s) {
  std::vector<Shape> out;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string t = s.substr(i, j - i);
    Shape sh{};
    if (std::sscanf(t.c_str(), "%zux%zux%zu", &sh.m, &sh.n, &sh.k) != 3) sh.m = sh.n = sh.k = std::stoul(t);
    out.push_back(sh);
    i = j + 1;
  }
  return out;
}

template <typename T>
T conv(float v);
template <>
float conv<float>(float v) {
  return v;
}
template <>
axle::half_t conv<axle::half_t>(float v) {
  return axle::to_half(v);
}
template <>
axle::bfloat16_t conv<axle::bfloat16_t>(float v) {
  return axle::to_bfloat16(v);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string device_spec, dtype_arg = "f32", json_path, sizes_arg;
  int threads = 2, rounds = 3;
  std::size_t batch = 1;
  std::string only;  // --only NAME[,NAME]: run just these implementations
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") quick = true;
    else if (a == "--device") device_spec = next();
    else if (a == "--dtype") dtype_arg = next();
    else if (a == "--json") json_path = next();
    else if (a == "--sizes") sizes_arg = next();
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--rounds") rounds = std::stoi(next());
    else if (a == "--batch") batch = std::max(1, std::stoi(next()));
    else if (a == "--cpu-time") g_cpu_time = true;
    else if (a == "--only") only = next();
    else if (a == "--help" || a == "-h") {
      std::printf("usage: gemm_bench [--quick] [--device SPEC] [--dtype f32|f16|bf16|all] [--json PATH]\n"
                  "                  [--sizes MxNxK,...] [--batch B] [--threads N] [--rounds R] [--cpu-time]\n"
                  "                  [--only IMPL[,IMPL]]\n");
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  std::vector<Shape> sizes;
  if (!sizes_arg.empty()) {
    sizes = parse_sizes(sizes_arg);
  } else if (quick) {
    sizes = {{333, 333, 333}, {512, 512, 512}, {1000, 1000, 1000}, {1024, 1024, 1024},
             {2048, 2048, 2048}, {4096, 64, 4096}, {64, 4096, 4096}};
  } else {
    // Squares, then skinny, odd, GEMV-like, short-k and deep-k shapes.
    sizes = {{128, 128, 128},    {256, 256, 256},   {333, 333, 333},   {512, 512, 512},    {1000, 1000, 1000},
             {1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 4096, 4096}, {4096, 64, 4096},  {64, 4096, 4096},
             {127, 255, 257},    {4096, 1, 4096},   {4096, 4096, 16},  {256, 256, 65536}};
  }
  std::vector<std::string> dtypes;
  if (dtype_arg == "all") dtypes = {"f32", "f16", "bf16"};
  else dtypes = {dtype_arg};

  axle::Device dev = axle::default_device(device_spec);
  const axle::DeviceInfo& info = dev.info();
  axle::Stream stream = dev.create_stream();
  std::printf("device: %s (%s, %s)\n", info.name.c_str(), dev.id().c_str(), info.vendor.c_str());
#ifdef AXLE_BENCH_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
#ifdef AXLE_BENCH_HAVE_CUBLAS
  cublasHandle_t cublas = nullptr;
  if (dev.backend() == "cuda") {
    if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) cublas = nullptr;
    if (cublas) cublasSetStream(cublas, static_cast<cudaStream_t>(stream.native_handle()));
  }
#endif
  (void)threads;

  std::vector<Record> records;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);

  for (const std::string& dtype : dtypes) {
    std::printf("\n%-16s %-10s", "m x n x k", "dtype");
    std::vector<std::string> header_impls;
    bool header_done = false;
    for (const Shape& sh : sizes) {
      const std::size_t m = sh.m, n = sh.n, k = sh.k;
      const double flops = 2.0 * m * n * k * batch;
      const double budget = quick ? 0.25 : 0.6;
      const std::size_t sa = m * k, sb = k * n, sc = m * n;  // batch strides (contiguous matrices)
      std::vector<float> ha(sa * batch), hb(sb * batch);
      for (auto& x : ha) x = dist(rng);
      for (auto& x : hb) x = dist(rng);
      const std::size_t es = dtype == "f32" ? 4 : 2;
      axle::Buffer da = dev.alloc_bytes(sa * batch * es), db = dev.alloc_bytes(sb * batch * es),
                   dc = dev.alloc_bytes(sc * batch * es);
      auto upload = [&](const std::vector<float>& h, const axle::Buffer& b) {
        if (dtype == "f32") {
          stream.copy(h, b.view<float>());
        } else if (dtype == "f16") {
          std::vector<axle::half_t> t(h.size());
          for (std::size_t i = 0; i < h.size(); ++i) t[i] = conv<axle::half_t>(h[i]);
          stream.copy(t, b.view<axle::half_t>());
          stream.synchronize();
        } else {
          std::vector<axle::bfloat16_t> t(h.size());
          for (std::size_t i = 0; i < h.size(); ++i) t[i] = conv<axle::bfloat16_t>(h[i]);
          stream.copy(t, b.view<axle::bfloat16_t>());
          stream.synchronize();
        }
      };
      upload(ha, da);
      upload(hb, db);
      stream.synchronize();

      std::map<std::string, std::function<void()>> impls;
      const std::string axle_name = "axle-" + info.backend;
      impls[axle_name] = [&]() {
        if (dtype == "f32")
          axle_gemm<float>(stream, m, n, k, batch, da, db, dc);
        else if (dtype == "f16")
          axle_gemm<axle::half_t>(stream, m, n, k, batch, da, db, dc);
        else
          axle_gemm<axle::bfloat16_t>(stream, m, n, k, batch, da, db, dc);
      };
#ifdef AXLE_BENCH_HAVE_CLBLAST
      if (info.backend == "opencl" && dtype == "f32") {
        impls["clblast"] = [&]() {
          cl_command_queue q = static_cast<cl_command_queue>(stream.native_handle());
          const auto a = static_cast<cl_mem>(da.native_handle()), b = static_cast<cl_mem>(db.native_handle()),
                     c = static_cast<cl_mem>(dc.native_handle());
          const auto no = clblast::Transpose::kNo;
          auto st = batch == 1 ? clblast::Gemm<float>(clblast::Layout::kRowMajor, no, no, m, n, k, 1.0f, a, 0, k, b, 0,
                                                      n, 0.0f, c, 0, n, &q, nullptr)
                               : clblast::GemmStridedBatched<float>(clblast::Layout::kRowMajor, no, no, m, n, k, 1.0f, a,
                                                                    0, k, sa, b, 0, n, sb, 0.0f, c, 0, n, sc, batch, &q,
                                                                    nullptr);
          if (st != clblast::StatusCode::kSuccess) throw std::runtime_error("CLBlast failed: " + std::to_string(int(st)));
          clFinish(q);
        };
      }
#endif
#ifdef AXLE_BENCH_HAVE_OPENBLAS
      std::vector<float> hc_ob;
      if (info.type == axle::DeviceType::CPU && dtype == "f32") {
        hc_ob.resize(sc * batch);
        impls["openblas"] = [&]() {
          for (std::size_t i = 0; i < batch; ++i)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, ha.data() + i * sa, k,
                        hb.data() + i * sb, n, 0.0f, hc_ob.data() + i * sc, n);
        };
      }
#endif
#ifdef AXLE_BENCH_HAVE_CUBLAS
      if (cublas) {
        auto ptr = [](const axle::Buffer& b) { return reinterpret_cast<void*>(b.native_handle()); };
        auto gemm_ex = [&, ptr](cudaDataType t, cublasComputeType_t ct) {
          const float one = 1.f, zero = 0.f;
          // row-major C = A B is column-major C^T = B^T A^T
          if (batch == 1)
            cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, ptr(db), t, n, ptr(da), t, k, &zero, ptr(dc),
                         t, n, ct, CUBLAS_GEMM_DEFAULT);
          else
            cublasGemmStridedBatchedEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, ptr(db), t, n, sb, ptr(da), t, k,
                                       sa, &zero, ptr(dc), t, n, sc, static_cast<int>(batch), ct, CUBLAS_GEMM_DEFAULT);
          stream.synchronize();
        };
        if (dtype == "f32") {
          impls["cublas"] = [=]() { gemm_ex(CUDA_R_32F, CUBLAS_COMPUTE_32F); };
          impls["cublas-tf32"] = [=]() { gemm_ex(CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32); };
          impls["axle-cuda-tf32"] = [&]() {
            axle::blas::GemmOptions o;
            o.allow_tf32 = true;
            axle_gemm<float>(stream, m, n, k, batch, da, db, dc, o);
          };
        } else if (dtype == "f16") {
          impls["cublas"] = [=]() { gemm_ex(CUDA_R_16F, CUBLAS_COMPUTE_32F); };
        } else {
          impls["cublas"] = [=]() { gemm_ex(CUDA_R_16BF, CUBLAS_COMPUTE_32F); };
        }
      }
#endif
      if (!only.empty())
        for (auto it = impls.begin(); it != impls.end();)
          it = ("," + only + ",").find("," + it->first + ",") == std::string::npos ? impls.erase(it) : std::next(it);
      if (!header_done) {
        for (auto& kv : impls) {
          header_impls.push_back(kv.first);
          std::printf(" %14s", kv.first.c_str());
        }
        std::printf("   axle/peer ratios\n");
        header_done = true;
      }
      std::map<std::string, std::vector<double>> res;
      for (int r = 0; r < rounds; ++r)
        for (auto& kv : impls) {
          // CLBlast at large sizes on a CPU takes seconds per call: one timed run per round.
          const bool slow = kv.first == "clblast" && flops > 4e9;
          res[kv.first].push_back(time_gflops(kv.second, flops, slow ? 0.0 : budget, !slow || r == 0));
          // OpenBLAS's pthread workers spin for about 0.1 s after each call before they
          // sleep; on a CPU device they would take the cores from whatever runs next.
          if (kv.first == "openblas") std::this_thread::sleep_for(std::chrono::milliseconds(300));
        }
      char shape[64];
      if (batch == 1)
        std::snprintf(shape, sizeof shape, "%zux%zux%zu", m, n, k);
      else
        std::snprintf(shape, sizeof shape, "%zu*%zux%zux%zu", batch, m, n, k);
      std::printf("%-16s %-10s", shape, dtype.c_str());
      std::map<std::string, double> med;
      for (const std::string& name : header_impls) {
        if (!res.count(name)) {
          std::printf(" %14s", "-");
          continue;
        }
        med[name] = median(res[name]);
        std::printf(" %14.1f", med[name]);
        Record rec{name, name.rfind("axle", 0) == 0 ? info.backend : (name == "openblas" ? "host" : info.backend),
                   info.name, dtype, sh, med[name], batch};
        records.push_back(rec);
      }
      std::printf("  ");
      for (auto& kv : med)
        if (kv.first.rfind("axle", 0) != 0) {
          // A TF32 peer is compared with Axle's TF32 column, every other peer with Axle's own.
          const bool tf32 = kv.first.size() > 5 && kv.first.compare(kv.first.size() - 5, 5, "-tf32") == 0;
          const auto mine = med.find(tf32 ? axle_name + "-tf32" : axle_name);
          if (mine != med.end()) std::printf(" %s %.2f", kv.first.c_str(), mine->second / kv.second);
        }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
#ifdef AXLE_BENCH_HAVE_CUBLAS
  if (cublas) cublasDestroy(cublas);
#endif
  if (!json_path.empty()) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const Record& r : records)
      doc.push_back({{"impl", r.impl},
                     {"backend", r.backend},
                     {"device", r.device},
                     {"dtype", r.dtype},
                     {"m", r.s.m},
                     {"n", r.s.n},
                     {"k", r.s.k},
                     {"batch", r.batch},
                     {"gflops", r.gflops}});
    std::ofstream f(json_path);
    f << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::printf("\nwrote %s\n", json_path.c_str());
  }
  return 0;
}
