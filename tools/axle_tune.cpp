// `axle tune gemm|conv`: search kernel parameters (GEMM) or algorithms (convolution)
// on the device in use and write the best to the user tuning file
// (axle::tuning_file()), through the library's tuning interface (axle/tuning.hpp).
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"
#include "axle/tuning.hpp"

namespace {

int usage(int rc) {
  std::printf(
      "usage: axle tune gemm [--dtype f32|f16|bf16|f64] [--sizes S[,S...]] [--device SPEC]\n"
      "                      [--output PATH] [--quick] [--max-candidates N] [--print]\n"
      "         S is N (square) or MxNxK. Default sizes: 256,1000,2048,4096x64x4096,64x4096x4096.\n"
      "       axle tune conv [--dtype f32|f16|bf16] [--layout nhwc|nchw|both] [--batch N]\n"
      "                      [--layers SUBSTRING] [--device SPEC] [--output PATH] [--quick] [--print]\n"
      "         Layers: ResNet-50's and two MobileNet depthwise layers (--layers filters them by\n"
      "         their description, e.g. 'K64 3x3').\n"
      "  Results go to the user tuning file (%s) unless --output names another; entries\n"
      "  they supersede are replaced, all others kept. --print also writes the new entries\n"
      "  to stdout (for the shipped database).\n",
      axle::tuning_file().empty() ? "none: no per-user location" : axle::tuning_file().c_str());
  return rc;
}

// A progress bar on stderr: "[#####.....]  12/40  what".
void progress_bar(std::size_t done, std::size_t total, const std::string& what) {
  const int width = 30;
  const int fill = total ? static_cast<int>(width * done / total) : width;
  std::string bar(static_cast<std::size_t>(fill), '#');
  bar.resize(width, '.');
  std::string w = what.size() > 60 ? what.substr(0, 57) + "..." : what;
  std::fprintf(stderr, "\r[%s] %3zu/%zu %-60s", bar.c_str(), done, total, w.c_str());
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::vector<std::array<std::size_t, 3>> parse_sizes(const std::string& s) {
  std::vector<std::array<std::size_t, 3>> out;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ',')) {
    std::array<std::size_t, 3> sh{};
    if (std::sscanf(t.c_str(), "%zux%zux%zu", &sh[0], &sh[1], &sh[2]) != 3) sh[0] = sh[1] = sh[2] = std::stoul(t);
    out.push_back(sh);
  }
  return out;
}

}  // namespace

int axle_tune_main(int argc, char** argv) {
  // argv[0] is "tune"; argv[1] the operation.
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") return usage(argc < 2 ? 2 : 0);
  const std::string op = argv[1];
  if (op != "gemm" && op != "conv") {
    std::fprintf(stderr, "axle tune: unknown operation '%s' (known: gemm, conv)\n", op.c_str());
    return 2;
  }
  std::string dtype_s = "f32", device_spec, output, sizes_s = "256,1000,2048,4096x64x4096,64x4096x4096";
  std::string layout_s = "nhwc", layers_s;
  std::size_t batch = 1, max_candidates = 0;
  bool quick = false, print = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "axle tune: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dtype") dtype_s = next();
    else if (a == "--sizes" && op == "gemm") sizes_s = next();
    else if (a == "--max-candidates" && op == "gemm") max_candidates = std::stoul(next());
    else if (a == "--layout" && op == "conv") layout_s = next();
    else if (a == "--batch" && op == "conv") batch = std::stoul(next());
    else if (a == "--layers" && op == "conv") layers_s = next();
    else if (a == "--device") device_spec = next();
    else if (a == "--output") output = next();
    else if (a == "--quick") quick = true;
    else if (a == "--print") print = true;
    else if (a == "--help" || a == "-h") return usage(0);
    else {
      std::fprintf(stderr, "axle tune: unknown option %s for %s\n", a.c_str(), op.c_str());
      return usage(2);
    }
  }
  try {
    axle::Device dev = axle::default_device(device_spec);
    const axle::tuning::Progress bar = ::isatty(2) ? axle::tuning::Progress(progress_bar) : axle::tuning::Progress();
    axle::tuning::TuneReport report;
    std::printf("tuning %s %s on %s (%s)\n", op.c_str(), dtype_s.c_str(), dev.name().c_str(), dev.id().c_str());
    std::fflush(stdout);
    if (op == "gemm") {
      axle::tuning::GemmTuneRequest req;
      req.dtype = dtype_s;
      req.quick = quick;
      req.max_candidates = max_candidates;
      try {
        req.sizes = parse_sizes(sizes_s);
      } catch (const std::exception&) {
        std::fprintf(stderr, "axle tune: cannot parse --sizes %s\n", sizes_s.c_str());
        return 2;
      }
      report = axle::tuning::tune_gemm(dev, req, output, bar);
    } else {
      axle::tuning::ConvTuneRequest req;
      if (dtype_s == "f32") req.dtype = axle::dnn::DataType::F32;
      else if (dtype_s == "f16") req.dtype = axle::dnn::DataType::F16;
      else if (dtype_s == "bf16") req.dtype = axle::dnn::DataType::BF16;
      else {
        std::fprintf(stderr, "axle tune: unknown dtype %s for conv (f32, f16, bf16)\n", dtype_s.c_str());
        return 2;
      }
      req.quick = quick;
      std::vector<axle::dnn::TensorLayout> layouts;
      if (layout_s == "nhwc" || layout_s == "both") layouts.push_back(axle::dnn::TensorLayout::NHWC);
      if (layout_s == "nchw" || layout_s == "both") layouts.push_back(axle::dnn::TensorLayout::NCHW);
      if (layouts.empty()) {
        std::fprintf(stderr, "axle tune: --layout must be nhwc, nchw or both\n");
        return 2;
      }
      for (auto l : layouts)
        for (const auto& d : axle::tuning::default_conv_layers(batch, l))
          if (layers_s.empty() || d.str().find(layers_s) != std::string::npos) req.layers.push_back(d);
      if (req.layers.empty()) {
        std::fprintf(stderr, "axle tune: no layer matches --layers '%s'\n", layers_s.c_str());
        return 2;
      }
      report = axle::tuning::tune_conv(dev, req, output, bar);
    }
    for (const auto& line : report.lines) std::printf("%s\n", line.c_str());
    std::printf("wrote %s\n", output.empty() ? axle::tuning_file().c_str() : output.c_str());
    if (print) std::printf("%s\n", report.entries_json.c_str());
    return 0;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "axle tune: %s\n", e.what());
    return 1;
  }
}
