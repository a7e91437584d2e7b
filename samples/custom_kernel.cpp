// custom_kernel: build a portable kernel file given on the command line and run it
// on the device picked by the usual precedence (AXLE_DEVICE, axle.toml, best present).
//
// The kernel must have the saxpy signature (see kernels/saxpy.cl):
//   (float a, global const float* x, global float* y, uint n, global float* sums, local float* scratch)
// Usage: custom_kernel [FILE.cl] [KERNEL_NAME]   (defaults: the built-in saxpy.cl, "saxpy")
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "axle/axle.hpp"

namespace axle::embedded {
std::string_view sample_kernel(std::string_view name);
}

int main(int argc, char** argv) {
  try {
    axle::Source src = argc > 1 ? axle::Source::from_file(argv[1], axle::SourceKind::Portable)
                                : axle::Source::portable(std::string(axle::embedded::sample_kernel("saxpy.cl")), "saxpy.cl");
    const std::string name = argc > 2 ? argv[2] : "saxpy";
    axle::Device dev = axle::default_device();
    axle::Stream s = dev.create_stream();
    axle::Program p = dev.build(src);
    axle::Kernel k = p.kernel(name);

    const unsigned n = 100000, local = 128;
    const std::size_t groups = axle::div_up(n, local);
    const float a = 1.5f;
    std::vector<float> x(n), y(n);
    for (unsigned i = 0; i < n; ++i) {
      x[i] = static_cast<float>(i % 100) * 0.01f;
      y[i] = 1.0f;
    }
    auto dx = dev.alloc<float>(n), dy = dev.alloc<float>(n), dsums = dev.alloc<float>(groups);
    s.copy(x, dx.view<float>());
    s.copy(y, dy.view<float>());
    s.launch(k, groups * local, local, a, dx.view<float>(), dy.view<float>(), n, dsums.view<float>(),
             axle::local<float>(local));
    std::vector<float> out(n), sums(groups);
    s.copy(dy.view<float>(), out);
    s.copy(dsums.view<float>(), sums);
    s.synchronize();

    double total = 0, want = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < n; ++i) {
      const float ref = std::fma(a, x[i], y[i]);
      if (std::fabs(out[i] - ref) > 1e-5f * std::fabs(ref) && bad++ < 5)
        std::fprintf(stderr, "y[%u] = %g, expected %g\n", i, out[i], ref);
      want += ref;
    }
    for (float v : sums) total += v;
    const bool sums_ok = std::fabs(total - want) <= 1e-4 * std::fabs(want);
    std::printf("custom_kernel '%s' from %s on %s (%s): %s\n", name.c_str(), src.name.c_str(), dev.id().c_str(),
                dev.name().c_str(), bad == 0 && sums_ok ? "result verified" : "FAILED");
    return bad == 0 && sums_ok ? 0 : 1;
  } catch (const axle::BuildError& e) {
    std::fprintf(stderr, "custom_kernel: %s\n", e.what());
    return 1;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "custom_kernel: %s\n", e.what());
    return 1;
  }
}
