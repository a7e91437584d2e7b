// Builds against an installed Axle and runs a portable kernel on the default device.
#include <axle/axle.hpp>

#include <cstdio>
#include <vector>

static const char* kSource = R"(
AXLE_KERNEL void square(AXLE_GLOBAL float* x, uint n) {
  uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i < n) x[i] = x[i] * x[i];
}
)";

int main() {
  try {
    axle::Device dev = axle::default_device();
    axle::Stream s = dev.create_stream();
    const unsigned n = 1000;
    std::vector<float> x(n);
    for (unsigned i = 0; i < n; ++i) x[i] = static_cast<float>(i);
    axle::Buffer b = dev.alloc<float>(n);
    s.copy(x, b.view<float>());
    axle::Program p = dev.build(axle::Source::portable(kSource, "square"));
    s.launch(p.kernel("square"), axle::round_up(n, 64), 64, b.view<float>(), n);
    s.copy(b.view<float>(), x);
    s.synchronize();
    for (unsigned i = 0; i < n; ++i)
      if (x[i] != static_cast<float>(i) * static_cast<float>(i)) {
        std::printf("consumer: wrong result at %u\n", i);
        return 1;
      }
    std::printf("consumer: installed Axle %s ran a portable kernel on %s\n", axle::version(), dev.id().c_str());
    return 0;
  } catch (const axle::Error& e) {
    std::printf("consumer: %s\n", e.what());
    return 1;
  }
}
