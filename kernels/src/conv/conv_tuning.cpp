// Convolution tuning: entries in the tuning files (conv_tuning.hpp) and the search
// behind `axle tune conv` (axle::tuning::tune_conv).
#include "conv_tuning.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "axle/tuning.hpp"
#include "common/tuning_file.hpp"

namespace axle::dnn::detail {

std::optional<Algorithm> algorithm_from_name(const std::string& name) {
  for (Algorithm a : {Algorithm::Direct, Algorithm::ImplicitGemm, Algorithm::Gemm1x1, Algorithm::Winograd,
                      Algorithm::TensorCore, Algorithm::CudaSimt, Algorithm::TapGemm, Algorithm::Depthwise})
    if (name == to_string(a)) return a;
  return std::nullopt;
}

std::optional<TunedChoice> tuned_algorithm(const ConvProblem& pb) {
  using kernels_detail::entry_string;
  const std::string cls = tuning::conv_class(pb.desc), layout = to_string(pb.desc.layout),
                    dtype = to_string(pb.types.x), dir = to_string(pb.direction);
  for (const auto& src : kernels_detail::tuning_sources("conv")) {
    std::vector<std::pair<int, std::size_t>> hits;
    for (std::size_t i = 0; i < src.entries.size(); ++i) {
      const auto& e = src.entries[i];
      int score = kernels_detail::device_match_score(e, pb.device.info());
      if (score < 0) continue;
      auto field = [&](const char* key, const char* any, const std::string& have, int weight) {
        const std::string want = entry_string(e, key, any);
        if (want == any || want == "*" || want.empty()) return true;
        if (want != have) return false;
        score += weight;
        return true;
      };
      if (!field("direction", "*", dir, 0) || !field("dtype", "*", dtype, 4) || !field("layout", "*", layout, 2) ||
          !field("class", "any", cls, 1))
        continue;
      hits.emplace_back(score, i);
    }
    std::stable_sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second > b.second;  // later lines override
    });
    for (const auto& h : hits) {
      const auto& e = src.entries[h.second];
      const auto algo = algorithm_from_name(entry_string(e, "algorithm", ""));
      if (!algo || !algo_unsupported_reason(*algo, pb).empty()) continue;
      return TunedChoice{*algo, "tuning entry in " + src.origin + " (class " + entry_string(e, "class", "any") +
                                    ", layout " + entry_string(e, "layout", "*") + ", device " +
                                    entry_string(e, "device", "*") + ")"};
    }
  }
  return std::nullopt;
}

}  // namespace axle::dnn::detail

namespace axle::tuning {

std::string conv_class(const dnn::Conv2dDesc& d) {
  const std::size_t cg = d.groups ? d.c / d.groups : d.c;
  if (d.groups > 1 && cg == 1) return "dw";
  if (cg <= 4) return "first";
  if (d.r == 1 && d.s == 1) return "1x1";
  if (d.r == 3 && d.s == 3) return "3x3";
  return "other";
}

std::vector<dnn::Conv2dDesc> default_conv_layers(std::size_t n, dnn::TensorLayout layout) {
  std::vector<dnn::Conv2dDesc> out;
  auto add = [&](std::size_t c, std::size_t k, std::size_t hw, std::size_t f, std::size_t stride, std::size_t groups) {
    dnn::Conv2dDesc d;
    d.n = n, d.c = c, d.k = k, d.h = d.w = hw, d.r = d.s = f, d.stride_h = d.stride_w = stride, d.groups = groups;
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = f / 2;
    d.layout = layout;
    out.push_back(d);
  };
  add(3, 64, 224, 7, 2, 1);     // conv1
  add(64, 64, 56, 3, 1, 1);     // 3x3 layers
  add(128, 128, 28, 3, 1, 1);
  add(256, 256, 14, 3, 1, 1);
  add(512, 512, 7, 3, 1, 1);
  add(64, 256, 56, 1, 1, 1);    // 1x1 layers
  add(256, 64, 56, 1, 1, 1);
  add(512, 128, 28, 1, 1, 1);
  add(256, 512, 56, 1, 2, 1);   // strided downsample
  add(32, 32, 112, 3, 1, 32);   // depthwise
  add(512, 512, 14, 3, 1, 512);
  return out;
}

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename T>
void upload_random(Stream& s, const Buffer& b, std::size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<T> h(count);
  for (auto& v : h) {
    const float f = dist(rng);
    if constexpr (std::is_same_v<T, float>) v = f;
    else if constexpr (std::is_same_v<T, half_t>) v = to_half(f);
    else v = to_bfloat16(f);
  }
  s.copy(h, b.view<T>(0, count));
  s.synchronize();  // the copy reads `h` asynchronously: it must finish before `h` goes
}

std::vector<float> download(Stream& s, const Buffer& b, std::size_t count, dnn::DataType t) {
  std::vector<float> out(count);
  if (t == dnn::DataType::F32) {
    s.copy(b.view<float>(0, count), out);
  } else {
    std::vector<std::uint16_t> h(count);
    s.copy(b.view<std::uint16_t>(0, count), h);
    s.synchronize();
    for (std::size_t i = 0; i < count; ++i)
      out[i] = t == dnn::DataType::F16 ? to_float(half_t{h[i]}) : to_float(bfloat16_t{h[i]});
  }
  s.synchronize();
  return out;
}

}  // namespace

TuneReport tune_conv(const Device& dev, const ConvTuneRequest& req, const std::string& output_in,
                     const Progress& progress) {
  if (req.layers.empty()) throw InvalidArgument("tune_conv: no layers to time");
  for (const auto& d : req.layers) dnn::validate(d);
  const std::string output = output_in.empty() ? tuning_file() : output_in;
  if (output.empty())
    throw InvalidArgument("tune_conv: no user tuning file location (" + no_cache_dir_reason() + "); name an output");
  const dnn::Conv2dTypes types{req.dtype, req.dtype, req.dtype};
  const std::vector<dnn::Algorithm> algos{dnn::Algorithm::Direct,   dnn::Algorithm::ImplicitGemm,
                                          dnn::Algorithm::Gemm1x1,  dnn::Algorithm::Winograd,
                                          dnn::Algorithm::TensorCore, dnn::Algorithm::CudaSimt,
                                          dnn::Algorithm::Depthwise};
  TuneReport report;
  Stream s = dev.create_stream();
  // Per (class, layout): the geometric mean GFLOP/s of each algorithm over its layers.
  std::map<std::pair<std::string, std::string>, std::map<int, std::vector<double>>> by_class;
  const std::size_t total = req.layers.size() * algos.size();
  std::size_t done = 0;
  const double tol_scale = req.dtype == dnn::DataType::F32 ? 1e-3 : req.dtype == dnn::DataType::F16 ? 2e-2 : 1e-1;
  for (const auto& d : req.layers) {
    const std::size_t es = dnn::size_of(req.dtype);
    Buffer x = dev.alloc_bytes(d.x_elems() * es), w = dev.alloc_bytes(d.w_elems() * es),
           y = dev.alloc_bytes(d.y_elems() * es);
    if (req.dtype == dnn::DataType::F32) {
      upload_random<float>(s, x, d.x_elems(), 1);
      upload_random<float>(s, w, d.w_elems(), 2);
    } else if (req.dtype == dnn::DataType::F16) {
      upload_random<half_t>(s, x, d.x_elems(), 1);
      upload_random<half_t>(s, w, d.w_elems(), 2);
    } else {
      upload_random<bfloat16_t>(s, x, d.x_elems(), 1);
      upload_random<bfloat16_t>(s, w, d.w_elems(), 2);
    }
    auto args_for = [&]() {
      dnn::Conv2dArgs a;
      a.x = dnn::TensorRef();
      a.x.buffer = &x, a.x.size = d.x_elems(), a.x.type = req.dtype;
      a.w.buffer = &w, a.w.size = d.w_elems(), a.w.type = req.dtype;
      a.y.buffer = &y, a.y.size = d.y_elems(), a.y.type = req.dtype;
      return a;
    };
    // The reference: the direct algorithm.
    std::vector<float> ref;
    {
      dnn::Conv2dOptions o;
      o.algorithm = dnn::Algorithm::Direct;
      dnn::Conv2dPlan p(dev, d, types, dnn::Direction::Forward, {}, o);
      p.run(s, args_for());
      ref = download(s, y, d.y_elems(), req.dtype);
    }
    double ref_max = 0;
    for (float v : ref) ref_max = std::max(ref_max, static_cast<double>(std::fabs(v)));
    const std::string cls = conv_class(d);
    for (dnn::Algorithm a : algos) {
      ++done;
      if (progress) progress(done, total, d.str() + ": " + dnn::to_string(a));
      std::string why;
      if (!dnn::supports(dev, a, d, types, dnn::Direction::Forward, &why)) continue;
      try {
        dnn::Conv2dOptions o;
        o.algorithm = a;
        dnn::Conv2dPlan p(dev, d, types, dnn::Direction::Forward, {}, o);
        p.run(s, args_for());
        const std::vector<float> got = download(s, y, d.y_elems(), req.dtype);
        double err = 0;
        for (std::size_t i = 0; i < got.size(); ++i)
          err = std::max(err, static_cast<double>(std::fabs(got[i] - ref[i])));
        if (!(err <= tol_scale * (1 + ref_max))) {
          report.lines.push_back("  " + d.str() + " " + dnn::to_string(a) + " rejected: differs from direct by " +
                                 std::to_string(err));
          continue;
        }
        double best = 1e30;
        const int rounds = req.quick ? 2 : 4;
        for (int r = 0; r < rounds; ++r) {
          const double t0 = now_s();
          p.run(s, args_for());
          s.synchronize();
          best = std::min(best, now_s() - t0);
        }
        const double g = d.flops() / best * 1e-9;
        char buf[160];
        std::snprintf(buf, sizeof buf, "  %s %s: %.1f GFLOP/s", d.str().c_str(), dnn::to_string(a), g);
        report.lines.push_back(buf);
        by_class[{cls, dnn::to_string(d.layout)}][static_cast<int>(a)].push_back(g);
      } catch (const Error& e) {
        report.lines.push_back("  " + d.str() + " " + dnn::to_string(a) + " failed: " + e.what());
      }
    }
  }
  const DeviceInfo& info = dev.info();
  nlohmann::json fresh = nlohmann::json::array();
  for (const auto& [key, per_algo] : by_class) {
    double best = -1;
    int win = -1;
    for (const auto& [a, gs] : per_algo) {
      double lg = 0;
      for (double g : gs) lg += std::log(std::max(g, 1e-9));
      const double gm = std::exp(lg / gs.size());
      if (gm > best) best = gm, win = a;
    }
    if (win < 0) continue;
    const char* name = dnn::to_string(static_cast<dnn::Algorithm>(win));
    fresh.push_back({{"vendor", info.vendor},
                     {"architecture", info.architecture},
                     {"device", info.name},
                     {"type", kernels_detail::device_type_name(info)},
                     {"dtype", dnn::to_string(req.dtype)},
                     {"layout", key.second},
                     {"class", key.first},
                     {"direction", "fwd"},
                     {"algorithm", name},
                     {"gflops", static_cast<long long>(best)},
                     {"note", "axle tune conv"}});
    char buf[160];
    std::snprintf(buf, sizeof buf, "best for %s %s layers: %s (%.1f GFLOP/s geometric mean)", key.first.c_str(),
                  key.second.c_str(), name, best);
    report.lines.push_back(buf);
  }
  if (fresh.empty()) throw Error("tune_conv: no algorithm passed its check on " + dev.id());
  kernels_detail::update_tuning_file(
      output, "conv",
      [&](const nlohmann::json& e) {
        using kernels_detail::entry_string;
        for (const auto& n : fresh)
          if (entry_string(e, "device", "*") == n["device"].get<std::string>() &&
              entry_string(e, "vendor", "*") == n["vendor"].get<std::string>() &&
              entry_string(e, "dtype", "*") == n["dtype"].get<std::string>() &&
              entry_string(e, "layout", "*") == n["layout"].get<std::string>() &&
              entry_string(e, "class", "any") == n["class"].get<std::string>() &&
              entry_string(e, "direction", "*") == "fwd")
            return true;
        return false;
      },
      fresh);
  report.entries_json = fresh.dump(2);
  dnn::reset_conv_caches();
  return report;
}

}  // namespace axle::tuning
