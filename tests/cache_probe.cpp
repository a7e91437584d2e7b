// cache_probe DEVICE SOURCE_FILE [NAME=VALUE...]: builds the portable source (which
// must define kernel `probe(global int* out, long v)`) on DEVICE with the given defines,
// runs it once and prints, one per line:
//   source=disk|compiled   where the program came from
//   key=<cache key>
//   value=<out[0]>         what the kernel wrote
//   argcheck=yes|no        whether a buffer passed for the `long` parameter is refused
// Exit status 0 on success, 1 with the error on stderr otherwise.
//
// cache_probe --getenv NAME: prints NAME=<value> (or "NAME unset") as main() starts,
// before any Axle call: what the environment holds once the libraries are loaded.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "axle/axle.hpp"

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--getenv") {
    const char* v = std::getenv(argv[2]);
    if (v)
      std::printf("%s=%s\n", argv[2], v);
    else
      std::printf("%s unset\n", argv[2]);
    return axle::backends().empty() ? 1 : 0;  // uses the library, so it stays linked
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DEVICE SOURCE_FILE [NAME=VALUE...]\n", argv[0]);
    return 2;
  }
  try {
    axle::Device dev = axle::select_device(argv[1]);
    axle::BuildOptions opts;
    for (int i = 3; i < argc; ++i) {
      const std::string d = argv[i];
      const auto eq = d.find('=');
      opts.define(d.substr(0, eq), eq == std::string::npos ? std::string() : d.substr(eq + 1));
    }
    axle::Program p = dev.build(axle::Source::from_file(argv[2], axle::SourceKind::Portable), opts);
    axle::Kernel k = p.kernel("probe");
    axle::Stream s = dev.create_stream();
    axle::Buffer b = dev.alloc<int>(4);
    s.launch(k, axle::Range{4}, axle::Range{}, b.view<int>(), std::int64_t{0});
    std::vector<int> out(4);
    s.copy(b, out);
    s.synchronize();
    bool argcheck = false;
    try {
      s.launch(k, axle::Range{4}, axle::Range{}, b.view<int>(), b.view<int>());
      s.synchronize();
    } catch (const axle::InvalidArgument&) {
      argcheck = true;
    }
    std::printf("source=%s\nkey=%s\nvalue=%d\nargcheck=%s\n", p.from_disk_cache() ? "disk" : "compiled",
                p.cache_key().c_str(), out[0], argcheck ? "yes" : "no");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cache_probe: %s\n", e.what());
    return 1;
  }
}
