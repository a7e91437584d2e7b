// gemm: y = relu(A * B + bias) on the default device with axle::blas::gemm, checked
// against a plain host reference, then timed at a larger size.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"

int main(int argc, char** argv) {
  try {
    axle::Device dev = axle::default_device();
    axle::Stream s = dev.create_stream();

    // 1. A fused GEMM on an odd shape, checked.
    const std::size_t m = 123, n = 77, k = 301;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> a(m * k), b(k * n), bias(n), c(m * n, 0.0f);
    for (auto& v : a) v = dist(rng);
    for (auto& v : b) v = dist(rng);
    for (auto& v : bias) v = dist(rng);
    axle::Buffer da = dev.alloc<float>(a.size()), db = dev.alloc<float>(b.size()), dbias = dev.alloc<float>(n),
                 dc = dev.alloc<float>(c.size());
    s.copy(a, da.view<float>());
    s.copy(b, db.view<float>());
    s.copy(bias, dbias.view<float>());
    namespace blas = axle::blas;
    blas::gemm(s, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, m, n, k, 1.0, da.view<float>(), k,
               db.view<float>(), n, 0.0, dc.view<float>(), n,
               blas::Epilogue::with_bias(blas::BiasMode::PerCol, dbias.view<float>(), blas::Activation::ReLU));
    s.copy(dc.view<float>(), c);
    s.synchronize();
    double max_err = 0;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double acc = bias[j];
        for (std::size_t p = 0; p < k; ++p) acc += double(a[i * k + p]) * b[p * n + j];
        max_err = std::max(max_err, std::fabs(std::max(acc, 0.0) - c[i * n + j]));
      }
    const bool ok = max_err < 1e-3;
    std::printf("gemm on %s (%s): relu(A*B + bias), %zux%zux%zu, max error %.2e: %s\n", dev.id().c_str(),
                dev.name().c_str(), m, n, k, max_err, ok ? "result verified" : "FAILED");

    // 2. Throughput at a larger square size.
    const std::size_t N = argc > 1 ? std::stoul(argv[1]) : 1024;
    axle::Buffer A = dev.alloc<float>(N * N), B = dev.alloc<float>(N * N), C = dev.alloc<float>(N * N);
    s.fill(A.view<float>(), 0.5f);
    s.fill(B.view<float>(), 0.25f);
    auto run = [&] {
      blas::gemm(s, axle::Layout::RowMajor, axle::Op::N, axle::Op::N, N, N, N, 1.0, A.view<float>(), N,
                 B.view<float>(), N, 0.0, C.view<float>(), N);
    };
    run();  // build and warm up
    s.synchronize();
    const int reps = 5;
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) run();
    s.synchronize();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("gemm f32 %zu^3: %.1f GFLOP/s\n", N, 2.0 * N * N * N / sec * 1e-9);
    return ok ? 0 : 1;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "gemm: %s\n", e.what());
    return 1;
  }
}
