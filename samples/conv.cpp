// conv: one convolution layer, y = relu(conv(x, w) + bias), on the default device with
// axle::dnn, checked against a plain host reference; prints the algorithm the plan chose
// and its speed, then the same for a ResNet-style 3x3 layer.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"

namespace dnn = axle::dnn;

namespace {

// y = relu(conv(x, w) + bias) in NHWC / KRSC, double accumulation.
std::vector<float> reference(const dnn::Conv2dDesc& d, const std::vector<float>& x, const std::vector<float>& w,
                             const std::vector<float>& bias) {
  const std::size_t P = d.out_h(), Q = d.out_w();
  std::vector<float> y(d.y_elems());
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t q = 0; q < Q; ++q)
        for (std::size_t k = 0; k < d.k; ++k) {
          double acc = bias[k];
          for (std::size_t r = 0; r < d.r; ++r)
            for (std::size_t s = 0; s < d.s; ++s) {
              const long ih = long(p * d.stride_h + r) - long(d.pad_top), iw = long(q * d.stride_w + s) - long(d.pad_left);
              if (ih < 0 || iw < 0 || ih >= long(d.h) || iw >= long(d.w)) continue;
              for (std::size_t c = 0; c < d.c; ++c)
                acc += double(x[((n * d.h + ih) * d.w + iw) * d.c + c]) * w[((k * d.r + r) * d.s + s) * d.c + c];
            }
          y[((n * P + p) * Q + q) * d.k + k] = static_cast<float>(std::max(acc, 0.0));
        }
  return y;
}

// Runs `plan` once to warm up, then `reps` times; returns GFLOP/s.
double time_plan(axle::Stream& s, const dnn::Conv2dPlan& plan, const dnn::Conv2dArgs& args, int reps) {
  plan.run(s, args);
  s.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) plan.run(s, args);
  s.synchronize();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  return plan.desc().flops() / sec * 1e-9;
}

}  // namespace

int main() {
  try {
    axle::Device dev = axle::default_device();
    axle::Stream s = dev.create_stream();

    // 1. A small odd layer with bias and ReLU, checked against the host.
    dnn::Conv2dDesc d;
    d.n = 2, d.c = 5, d.h = 17, d.w = 13, d.k = 7, d.r = 3, d.s = 3;
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    d.layout = dnn::TensorLayout::NHWC;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> x(d.x_elems()), w(d.w_elems()), bias(d.k), y(d.y_elems());
    for (auto* v : {&x, &w, &bias})
      for (float& e : *v) e = dist(rng);
    axle::Buffer dx = dev.alloc<float>(x.size()), dw = dev.alloc<float>(w.size()), db = dev.alloc<float>(bias.size()),
                 dy = dev.alloc<float>(y.size());
    s.copy(x, dx.view<float>());
    s.copy(w, dw.view<float>());
    s.copy(bias, db.view<float>());
    dnn::Conv2dPlan plan(dev, d, dnn::Conv2dTypes{}, dnn::Direction::Forward,
                         dnn::Conv2dFusion{true, false, dnn::Activation::ReLU});
    dnn::Conv2dArgs args;
    args.x = dx.view<float>();
    args.w = dw.view<float>();
    args.y = dy.view<float>();
    args.bias = db.view<float>();
    plan.run(s, args);
    s.copy(dy, y);
    s.synchronize();
    const std::vector<float> want = reference(d, x, w, bias);
    double max_err = 0;
    for (std::size_t i = 0; i < y.size(); ++i) max_err = std::max(max_err, double(std::fabs(y[i] - want[i])));
    const bool ok = max_err < 1e-4;
    std::printf("conv on %s (%s): relu(conv(x, w) + bias), %s, max error %.2e: %s\n", dev.id().c_str(),
                dev.name().c_str(), d.str().c_str(), max_err, ok ? "result verified" : "FAILED");
    std::printf("  plan: %s\n", plan.describe().c_str());

    // 2. A ResNet-50 3x3 layer (C64 K64 on 56x56, batch 1): speed.
    dnn::Conv2dDesc r;
    r.c = r.k = 64, r.h = r.w = 56, r.r = r.s = 3;
    r.pad_top = r.pad_bottom = r.pad_left = r.pad_right = 1;
    r.layout = dnn::TensorLayout::NHWC;
    axle::Buffer rx = dev.alloc<float>(r.x_elems()), rw = dev.alloc<float>(r.w_elems()), ry = dev.alloc<float>(r.y_elems());
    s.fill(rx.view<float>(), 0.5f);
    s.fill(rw.view<float>(), 0.25f);
    dnn::Conv2dPlan big(dev, r, dnn::Conv2dTypes{});
    dnn::Conv2dArgs ra;
    ra.x = rx.view<float>();
    ra.w = rw.view<float>();
    ra.y = ry.view<float>();
    const double gflops = time_plan(s, big, ra, 3);
    std::printf("  %s: %.1f GFLOP/s with %s\n", r.str().c_str(), gflops, big.describe().c_str());
    return ok ? 0 : 1;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "conv: %s\n", e.what());
    return 1;
  }
}
