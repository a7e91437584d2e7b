// vector_add: c = a + b on the default device with a portable kernel; checks the result.
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
    const unsigned n = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1])) : 1000003;  // odd on purpose
    axle::Device dev = axle::default_device();
    axle::Stream s = dev.create_stream();

    std::vector<float> a(n), b(n), c(n, 0.0f);
    for (unsigned i = 0; i < n; ++i) {
      a[i] = 0.5f * static_cast<float>(i);
      b[i] = 2.0f - static_cast<float>(i % 7);
    }
    axle::Buffer da = dev.alloc<float>(n), db = dev.alloc<float>(n), dc = dev.alloc<float>(n);
    s.copy(a, da.view<float>());
    s.copy(b, db.view<float>());

    axle::Program p = dev.build(axle::Source::portable(std::string(axle::embedded::sample_kernel("vadd.cl")), "vadd.cl"));
    const std::size_t local = 256;
    axle::Event start = s.record();
    s.launch(p.kernel("vadd"), axle::round_up(n, local), local, da.view<float>(), db.view<float>(), dc.view<float>(), n);
    axle::Event stop = s.record();
    s.copy(dc.view<float>(), c);
    s.synchronize();

    unsigned bad = 0;
    for (unsigned i = 0; i < n; ++i)
      if (c[i] != a[i] + b[i] && bad++ < 5) std::fprintf(stderr, "mismatch at %u: %g != %g\n", i, c[i], a[i] + b[i]);
    std::printf("vector_add on %s (%s): n=%u, kernel %.3f ms, %s\n", dev.id().c_str(), dev.name().c_str(), n,
                stop.elapsed_ms(start), bad ? "FAILED" : "result verified");
    return bad ? 1 : 0;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "vector_add: %s\n", e.what());
    return 1;
  }
}
