// conv_bench: Axle 2-D convolution (axle::dnn: forward, backward data, backward
// weights) against the peers present, timed in the same process run on ResNet-50 and
// MobileNet layers.
//
//   Axle:    a Conv2dPlan made once per layer, direction and layout, then run; its
//            algorithm is what plan.describe() reports. Forward plans are made for
//            filters packed once (Conv2dOptions::packed_weights) and, where the
//            algorithm has a packed form (Conv2dPlan::pack_weights), pack them outside
//            the timing, as oneDNN's weights are reordered ("filters prepacked" in the
//            algorithm); --pack-per-run makes plans without the option and times the
//            packing in every run instead
//   oneDNN:  CPU engine, N threads; its best layout (format_tag::any, the reorders
//            outside the timing) and with the activations (x and y, or dx and dy)
//            forced to Axle's layout (its weights, or dw, in its own packed format,
//            reordered outside the timing). Backward: convolution_backward_data and
//            convolution_backward_weights (no bias) with a forward_training hint
//   CLBlast: Convgemm on the same OpenCL device and queue as Axle (forward only; NCHW,
//            no groups, symmetric padding)
//   cuDNN:   on a CUDA device, the fastest algorithm cudnnFindConvolution{Forward,
//            BackwardData,BackwardFilter}Algorithm finds, NHWC, f32 (FMA math: no TF32,
//            like Axle's default) and f16
//
// Usage: conv_bench [--quick] [--device SPEC] [--batch LIST] [--layers SUBSTRING[,...]]
//                   [--direction fwd|bwd_data|bwd_weights|all] [--layout nhwc|nchw|both]
//                   [--dtype f32|f16] [--rounds N] [--threads N] [--pack-per-run] [--json FILE]
// The backward directions run on the 3x3 and 1x1 layers, depthwise ones included (not conv1);
// --quick without --direction runs its three layers forward and both backward
// directions of 3x3 C64 K64 56x56. Every direction counts the forward pass's FLOPs
// (2 N K P Q C/g R S).
// Each case (layer and direction) is measured in R rounds; in every round each
// implementation runs in turn (a warm-up, then a median of several timed runs, wall
// clock, synchronised); the figure reported is the median over rounds. After oneDNN's
// runs the bench waits 0.1 s: its OpenMP workers spin for a while after each call and
// would otherwise take the cores from whatever runs next on a CPU device. On a CPU
// device (PoCL has worker threads too) it waits 0.1 s after every implementation,
// elsewhere 20 ms.
// Every implementation's output (y, dx or dw) is checked at a few hundred points (the
// padded borders among them) against a double-precision host reference before it is
// timed, and Axle's against oneDNN's at the same points: max |a - b| / max |b|. A result
// off by more than the type's tolerance is flagged WRONG and the bench exits with
// status 1.
// Peak: an FMA probe (bench/kernels/fma_peak.cl, Axle's portable dialect) run on the
// device gives its float FMA throughput (the best seen: it runs at the start and after
// every case); Axle's figures are also given as a fraction of it (in the JSON, of the
// best over the whole run).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"

#ifdef AXLE_BENCH_HAVE_ONEDNN
#include <dnnl.hpp>
#endif
#ifdef AXLE_BENCH_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef AXLE_BENCH_HAVE_CLBLAST
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast.h>
#endif
#ifdef AXLE_BENCH_HAVE_CUDNN
#include <cuda_runtime.h>
#include <cudnn.h>
#endif

namespace axle::embedded {
std::string_view bench_kernel(std::string_view relative_path);
}

namespace {

namespace dnn = axle::dnn;
using Clock = std::chrono::steady_clock;

// A layer: a square input, a square filter, symmetric padding.
struct Layer {
  std::string name;
  std::size_t c, k, hw, rs, stride, pad, groups;
};

std::vector<Layer> all_layers() {
  auto conv = [](std::size_t rs, std::size_t stride, std::size_t c, std::size_t k, std::size_t hw) {
    std::string n = std::to_string(rs) + "x" + std::to_string(rs) + (stride > 1 ? "/" + std::to_string(stride) : "");
    n += " C" + std::to_string(c) + " K" + std::to_string(k) + " " + std::to_string(hw) + "x" + std::to_string(hw);
    return Layer{n, c, k, hw, rs, stride, rs / 2, 1};
  };
  auto dw = [](std::size_t c, std::size_t hw) {
    return Layer{
        "dw3x3 C" + std::to_string(c) + " " + std::to_string(hw) + "x" + std::to_string(hw), c, c, hw, 3, 1, 1, c};
  };
  return {conv(7, 2, 3, 64, 224),
          conv(3, 1, 64, 64, 56),
          conv(3, 1, 128, 128, 28),
          conv(3, 1, 256, 256, 14),
          conv(3, 1, 512, 512, 7),
          conv(1, 1, 64, 256, 56),
          conv(1, 1, 256, 64, 56),
          conv(1, 1, 512, 128, 28),
          conv(1, 2, 256, 512, 56),
          dw(32, 112),
          dw(512, 14)};
}

dnn::Conv2dDesc make_desc(const Layer& l, std::size_t n, dnn::TensorLayout layout) {
  dnn::Conv2dDesc d;
  d.n = n, d.c = l.c, d.h = d.w = l.hw, d.k = l.k, d.r = d.s = l.rs;
  d.stride_h = d.stride_w = l.stride;
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = l.pad;
  d.groups = l.groups;
  d.layout = layout;
  return d;
}

const char* layout_name(dnn::TensorLayout l) { return l == dnn::TensorLayout::NHWC ? "nhwc" : "nchw"; }

// ---- host tensors -----------------------------------------------------------------
// Values are kept in logical order (x: N C H W, w: K C/g R S, y: N K P Q), already
// rounded to the element type, so that the reference sees exactly what the devices see.

float round_to(dnn::DataType t, float v) { return t == dnn::DataType::F16 ? axle::to_float(axle::to_half(v)) : v; }

// A logical (A B C D) tensor to (A C D B) and back: NCHW to NHWC for x and y, and
// KCRS to KRSC for w (A = K, B = C / groups, C = R, D = S).
std::vector<float> to_channels_last(const std::vector<float>& v, std::size_t a, std::size_t b, std::size_t c,
                                    std::size_t d) {
  std::vector<float> o(v.size());
  for (std::size_t i = 0; i < a; ++i)
    for (std::size_t j = 0; j < b; ++j)
      for (std::size_t k = 0; k < c; ++k)
        for (std::size_t l = 0; l < d; ++l) o[((i * c + k) * d + l) * b + j] = v[((i * b + j) * c + k) * d + l];
  return o;
}

std::vector<float> from_channels_last(const std::vector<float>& v, std::size_t a, std::size_t b, std::size_t c,
                                      std::size_t d) {
  std::vector<float> o(v.size());
  for (std::size_t i = 0; i < a; ++i)
    for (std::size_t j = 0; j < b; ++j)
      for (std::size_t k = 0; k < c; ++k)
        for (std::size_t l = 0; l < d; ++l) o[((i * b + j) * c + k) * d + l] = v[((i * c + k) * d + l) * b + j];
  return o;
}

std::vector<float> x_to_nhwc(const dnn::Conv2dDesc& d, const std::vector<float>& x) {
  return to_channels_last(x, d.n, d.c, d.h, d.w);
}
std::vector<float> x_from_nhwc(const dnn::Conv2dDesc& d, const std::vector<float>& x) {
  return from_channels_last(x, d.n, d.c, d.h, d.w);
}
std::vector<float> w_to_krsc(const dnn::Conv2dDesc& d, const std::vector<float>& wt) {
  return to_channels_last(wt, d.k, d.c / d.groups, d.r, d.s);
}
std::vector<float> w_from_krsc(const dnn::Conv2dDesc& d, const std::vector<float>& wt) {
  return from_channels_last(wt, d.k, d.c / d.groups, d.r, d.s);
}
std::vector<float> y_to_nhwc(const dnn::Conv2dDesc& d, const std::vector<float>& y) {
  return to_channels_last(y, d.n, d.k, d.out_h(), d.out_w());
}
std::vector<float> y_from_nhwc(const dnn::Conv2dDesc& d, const std::vector<float>& y) {
  return from_channels_last(y, d.n, d.k, d.out_h(), d.out_w());
}

const char* direction_name(dnn::Direction dir) {
  return dir == dnn::Direction::Forward ? "fwd" : dir == dnn::Direction::BackwardData ? "bwd_data" : "bwd_weights";
}

struct Sample {
  std::size_t index;  // into the logical output: y (N K P Q), dx (N C H W) or dw (K C/g R S)
  double ref;
};

// A few hundred points of what `dir` writes, with their double-precision reference
// values: first the four corners of some images (or filter taps) and channels, where
// the padding is, then random ones. Forward reads x and w, backward data dy and w,
// backward weights x and dy.
std::vector<Sample> make_samples(const dnn::Conv2dDesc& d, dnn::Direction dir, const std::vector<float>& x,
                                 const std::vector<float>& wt, const std::vector<float>& dy, std::mt19937& rng) {
  const std::size_t P = d.out_h(), Q = d.out_w(), cg = d.c / d.groups, kg = d.k / d.groups;
  // The output's logical dims (A B C D): y N K P Q, dx N C H W, dw K C/g R S.
  std::size_t dim[4] = {d.n, d.k, P, Q};
  if (dir == dnn::Direction::BackwardData) dim[1] = d.c, dim[2] = d.h, dim[3] = d.w;
  if (dir == dnn::Direction::BackwardWeights) dim[0] = d.k, dim[1] = cg, dim[2] = d.r, dim[3] = d.s;
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < 8; ++i) {
    const std::size_t a = i % dim[0], b = (i * 37) % dim[1];
    for (std::size_t c : {std::size_t(0), dim[2] - 1})
      for (std::size_t e : {std::size_t(0), dim[3] - 1}) idx.push_back(((a * dim[1] + b) * dim[2] + c) * dim[3] + e);
  }
  std::uniform_int_distribution<std::size_t> pick(0, dim[0] * dim[1] * dim[2] * dim[3] - 1);
  while (idx.size() < 288) idx.push_back(pick(rng));
  auto xat = [&](std::size_t n, std::size_t c, long ih, long iw) {
    return double(x[((n * d.c + c) * d.h + std::size_t(ih)) * d.w + std::size_t(iw)]);
  };
  auto wat = [&](std::size_t k, std::size_t c, std::size_t r, std::size_t s) {
    return double(wt[((k * cg + c) * d.r + r) * d.s + s]);
  };
  auto dyat = [&](std::size_t n, std::size_t k, std::size_t p, std::size_t q) {
    return double(dy[((n * d.k + k) * P + p) * Q + q]);
  };
  // The input row (or column) that output row p and filter row r meet at.
  auto in_h = [&](std::size_t p, std::size_t r) { return long(p * d.stride_h + r * d.dilation_h) - long(d.pad_top); };
  auto in_w = [&](std::size_t q, std::size_t s) { return long(q * d.stride_w + s * d.dilation_w) - long(d.pad_left); };
  auto inside = [&](long ih, long iw) { return ih >= 0 && iw >= 0 && ih < long(d.h) && iw < long(d.w); };
  std::vector<Sample> out;
  for (std::size_t i : idx) {
    const std::size_t i3 = i % dim[3], i2 = (i / dim[3]) % dim[2], i1 = (i / (dim[3] * dim[2])) % dim[1],
                      i0 = i / (dim[3] * dim[2] * dim[1]);
    double acc = 0;
    if (dir == dnn::Direction::Forward) {
      const std::size_t n = i0, k = i1, p = i2, q = i3, g = k / kg;
      for (std::size_t c = 0; c < cg; ++c)
        for (std::size_t r = 0; r < d.r; ++r)
          for (std::size_t s = 0; s < d.s; ++s)
            if (inside(in_h(p, r), in_w(q, s))) acc += xat(n, g * cg + c, in_h(p, r), in_w(q, s)) * wat(k, c, r, s);
    } else if (dir == dnn::Direction::BackwardData) {
      // dx[n, c, h, w] = sum over k of c's group and the (p, r), (q, s) that meet at (h, w).
      const std::size_t n = i0, c = i1, g = c / cg;
      const long h = long(i2), w = long(i3);
      for (std::size_t r = 0; r < d.r; ++r)
        for (std::size_t s = 0; s < d.s; ++s) {
          const long ph = h + long(d.pad_top) - long(r * d.dilation_h);
          const long qw = w + long(d.pad_left) - long(s * d.dilation_w);
          if (ph < 0 || qw < 0 || ph % long(d.stride_h) || qw % long(d.stride_w)) continue;
          const std::size_t p = std::size_t(ph) / d.stride_h, q = std::size_t(qw) / d.stride_w;
          if (p >= P || q >= Q) continue;
          for (std::size_t k = g * kg; k < (g + 1) * kg; ++k) acc += dyat(n, k, p, q) * wat(k, c - g * cg, r, s);
        }
    } else {
      // dw[k, c, r, s] = sum over n, p, q of dy[n, k, p, q] x[n, g cg + c, h(p, r), w(q, s)].
      const std::size_t k = i0, c = i1, r = i2, s = i3, g = k / kg;
      for (std::size_t n = 0; n < d.n; ++n)
        for (std::size_t p = 0; p < P; ++p)
          for (std::size_t q = 0; q < Q; ++q)
            if (inside(in_h(p, r), in_w(q, s))) acc += dyat(n, k, p, q) * xat(n, g * cg + c, in_h(p, r), in_w(q, s));
    }
    out.push_back({i, acc});
  }
  return out;
}

// max |y - ref| / max |ref| over the samples (y in logical N K P Q order).
double sample_error(const std::vector<Sample>& samples, const std::vector<float>& y) {
  double num = 0, den = 0;
  for (const Sample& s : samples) {
    num = std::max(num, std::fabs(double(y[s.index]) - s.ref));
    den = std::max(den, std::fabs(s.ref));
  }
  return num / std::max(den, 1e-30);
}

double pair_error(const std::vector<Sample>& samples, const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (const Sample& s : samples) {
    num = std::max(num, std::fabs(double(a[s.index]) - double(b[s.index])));
    den = std::max(den, std::fabs(double(b[s.index])));
  }
  return num / std::max(den, 1e-30);
}

// ---- device tensors -----------------------------------------------------------------

axle::Buffer upload(axle::Stream& st, const std::vector<float>& v, dnn::DataType t) {
  const axle::Device& dev = st.device();
  if (t == dnn::DataType::F16) {
    std::vector<axle::half_t> h(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) h[i] = axle::to_half(v[i]);
    axle::Buffer b = dev.alloc<axle::half_t>(v.size());
    st.copy(h, b.view<axle::half_t>());
    st.synchronize();
    return b;
  }
  axle::Buffer b = dev.alloc<float>(v.size());
  st.copy(v, b.view<float>());
  st.synchronize();
  return b;
}

std::vector<float> download(axle::Stream& st, const axle::Buffer& b, std::size_t count, dnn::DataType t) {
  std::vector<float> v(count);
  if (t == dnn::DataType::F16) {
    std::vector<axle::half_t> h(count);
    st.copy(b.view<axle::half_t>(0, count), h);
    st.synchronize();
    for (std::size_t i = 0; i < count; ++i) v[i] = axle::to_float(h[i]);
  } else {
    st.copy(b.view<float>(0, count), v);
    st.synchronize();
  }
  return v;
}

dnn::TensorRef tensor(const axle::Buffer& b, dnn::DataType t) {
  if (t == dnn::DataType::F16) return b.view<axle::half_t>();
  return b.view<float>();
}

// ---- timing -------------------------------------------------------------------------

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// One implementation of one layer: run() blocks until the result is there; output()
// returns y in logical N K P Q order as floats (outside the timing).
struct Impl {
  std::string impl, variant, layout, backend, device, algo, describe;
  std::function<void()> run;
  std::function<std::vector<float>()> output;
  double pause_s = 0.02;  // after each measurement: let the implementation's threads go idle
  double last_s = 0;      // the latest timed run (to decide on a warm-up)
  double err = -1;
  std::vector<double> round_ms;
  std::string key() const { return impl + (variant.empty() ? "" : "-" + variant) + " " + layout; }
};

// A round: a warm-up unless the last run was slow, then timed runs until `budget`
// seconds have passed (at least 3 runs, 1 when a single run takes longer than the
// budget, at most 15); the median in milliseconds.
double time_round(Impl& im, double budget) {
  if (im.last_s < budget / 4) im.run();
  std::vector<double> t;
  const auto start = Clock::now();
  std::size_t min_runs = 3;
  do {
    const auto a = Clock::now();
    im.run();
    t.push_back(seconds_since(a));
    if (t.front() > budget) min_runs = 1;
  } while (t.size() < 15 && (seconds_since(start) < budget || t.size() < min_runs));
  im.last_s = median(t);
  return im.last_s * 1e3;
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(line.find_first_not_of(' ', c + 1));
    }
  return "host CPU";
}

// ---- peak probe -----------------------------------------------------------------------

// The probe is built once; measure() runs launches of about 20 ms for `seconds` and
// keeps the best rate seen so far: on a shared machine a peak is what the quietest
// moment shows, so the bench probes again after every layer.
class PeakProbe {
 public:
  PeakProbe(const axle::Device& dev, axle::Stream& st) : st_(st) {
    try {
      const std::string_view src = axle::embedded::bench_kernel("kernels/fma_peak.cl");
      if (src.empty()) throw std::runtime_error("fma_peak.cl is not embedded");
      const axle::DeviceInfo& info = dev.info();
      // A CPU's own vector width (a wider vector type would not fit its registers); on a
      // GPU the vector type only unrolls.
      vw_ = info.type == axle::DeviceType::CPU && info.preferred_vector_width_float < 16 ? 8 : 16;
      axle::BuildOptions opt;
      opt.define("VW", vw_);
      axle::Program prog = dev.build(axle::Source::portable(std::string(src), "fma_peak.cl"), opt);
      kernel_ = prog.kernel("fma_peak");
      // A CPU device: one work-item per core, whose vector chains are the vector code
      // (larger work-groups make PoCL interleave work-items and lose half the rate). A
      // GPU: enough groups of 128 to fill every SM several times over.
      const bool cpu = info.type == axle::DeviceType::CPU;
      local_ = cpu ? 1 : 128;
      global_ = local_ * std::max(1u, info.compute_units) * (cpu ? 1 : 16);
      out_ = dev.alloc<float>(global_);
      once();  // build, first launch
      // Grow the loop until one launch takes about 20 ms: short enough for the best of
      // many to see a quiet moment, as the timed runs of a layer do.
      for (double t = once(); t < 0.01 && iters_ < (1 << 24); t = once()) iters_ *= t < 0.001 ? 8 : 2;
    } catch (const std::exception& e) {
      why_ = e.what();
    }
  }
  double measure(double seconds) {
    if (!why_.empty()) return 0;
    try {
      const auto start = Clock::now();
      for (int r = 0; r < 200 && (r < 3 || seconds_since(start) < seconds); ++r)
        best_ = std::max(best_, double(global_) * iters_ * kChains * vw_ * 2 / once() * 1e-9);
    } catch (const std::exception& e) {
      why_ = e.what();
    }
    return best_;
  }
  double best() const { return best_; }
  const std::string& why() const { return why_; }

 private:
  double once() {
    const auto t = Clock::now();
    st_.launch(kernel_, axle::Range{global_}, axle::Range{local_}, out_.view<float>(), 0.999f, 1.0e-3f, iters_);
    st_.synchronize();
    return seconds_since(t);
  }
  axle::Stream& st_;
  axle::Kernel kernel_;
  axle::Buffer out_;
  static constexpr int kChains = 12;  // CHAINS in fma_peak.cl
  std::size_t local_ = 1, global_ = 1;
  int iters_ = 64, vw_ = 16;
  double best_ = 0;
  std::string why_;
};

// ---- oneDNN -------------------------------------------------------------------------
#ifdef AXLE_BENCH_HAVE_ONEDNN
struct OnednnConv {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::primitive prim;
  std::unordered_map<int, dnnl::memory> args;
  dnnl::memory out;                // y, dx or dw in oneDNN's format
  dnnl::memory::desc user_out_md;  // the same in logical order (nchw, or oihw / goihw)
  std::string impl_info, layout;
  std::vector<std::uint16_t> h16[3];  // f16 user storage (x, w, dy)
  std::vector<float> h32[3];          // f32 user storage (x, w, dy)
};

dnnl::memory::data_type dnnl_type(dnn::DataType t) {
  return t == dnn::DataType::F16 ? dnnl::memory::data_type::f16 : dnnl::memory::data_type::f32;
}

std::string dnnl_layout_name(const dnnl::memory::desc& md, const dnnl::memory::dims& dims, dnnl::memory::data_type t) {
  using tag = dnnl::memory::format_tag;
  const std::pair<tag, const char*> tags[] = {{tag::nchw, "nchw"},
                                              {tag::nhwc, "nhwc"},
                                              {tag::nChw8c, "nChw8c"},
                                              {tag::nChw16c, "nChw16c"},
                                              {tag::nChw4c, "nChw4c"}};
  for (const auto& [t2, name] : tags)
    if (md == dnnl::memory::desc(dims, t, t2)) return name;
  return "blocked";
}

// Builds the primitive of `dir`. best: every format left to oneDNN (format_tag::any),
// the user tensors (logical NCHW) reordered into them here, outside the timing.
// Otherwise the activations (x and y; dx and dy) are in `layout`, used in place; the
// weights (w, or dw) are oneDNN's own format either way (reordered here, as a framework
// packs them once: forcing plain KCRS / KRSC filters leaves oneDNN only its reference
// kernel). The backward primitives take a forward_training primitive descriptor of the
// same tensors as their hint; backward weights computes no bias gradient.
std::unique_ptr<OnednnConv> make_onednn(const dnn::Conv2dDesc& d, dnn::DataType dt, dnn::Direction dir, bool best,
                                        dnn::TensorLayout layout, const std::vector<float>& x,
                                        const std::vector<float>& wt, const std::vector<float>& dy) {
  using tag = dnnl::memory::format_tag;
  using dims = dnnl::memory::dims;
  auto o = std::make_unique<OnednnConv>();
  const auto t = dnnl_type(dt);
  const auto N = dnnl::memory::dim(d.n), C = dnnl::memory::dim(d.c), H = dnnl::memory::dim(d.h),
             W = dnnl::memory::dim(d.w), K = dnnl::memory::dim(d.k), R = dnnl::memory::dim(d.r),
             S = dnnl::memory::dim(d.s), G = dnnl::memory::dim(d.groups);
  const auto P = dnnl::memory::dim(d.out_h()), Q = dnnl::memory::dim(d.out_w());
  const dims src_dims{N, C, H, W}, dst_dims{N, K, P, Q};
  const dims wei_dims = G > 1 ? dims{G, K / G, C / G, R, S} : dims{K, C, R, S};
  const bool nhwc = layout == dnn::TensorLayout::NHWC;
  const tag act_tag = best ? tag::nchw : nhwc ? tag::nhwc : tag::nchw;  // the user's x and y
  const tag wei_tag = G > 1 ? tag::goihw : tag::oihw;                   // the user's w
  const dnnl::memory::desc src_md(src_dims, t, best ? tag::any : act_tag);
  const dnnl::memory::desc wei_md(wei_dims, t, tag::any);
  const dnnl::memory::desc dst_md(dst_dims, t, best ? tag::any : act_tag);
  const dims strides{dnnl::memory::dim(d.stride_h), dnnl::memory::dim(d.stride_w)};
  const dims pad_l{dnnl::memory::dim(d.pad_top), dnnl::memory::dim(d.pad_left)};
  const dims pad_r{dnnl::memory::dim(d.pad_bottom), dnnl::memory::dim(d.pad_right)};
  const auto prop =
      dir == dnn::Direction::Forward ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
  const auto algo = dnnl::algorithm::convolution_auto;
#if DNNL_VERSION_MAJOR >= 3
  dnnl::convolution_forward::primitive_desc pd(o->eng, prop, algo, src_md, wei_md, dst_md, strides, pad_l, pad_r);
#else
  dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(prop, algo, src_md, wei_md, dst_md, strides, pad_l, pad_r), o->eng);
#endif

  // User tensors: x and dy in act_tag, w as KCRS; the output read back in logical order.
  auto user_mem = [&](int slot, const std::vector<float>& v, const dnnl::memory::desc& md) {
    if (dt == dnn::DataType::F16) {
      o->h16[slot].resize(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) {
        const axle::half_t h = axle::to_half(v[i]);
        std::memcpy(&o->h16[slot][i], &h, 2);
      }
      return dnnl::memory(md, o->eng, o->h16[slot].data());
    }
    o->h32[slot] = v;
    return dnnl::memory(md, o->eng, o->h32[slot].data());
  };
  auto into = [&](dnnl::memory m, const dnnl::memory::desc& want) {
    if (m.get_desc() == want) return m;
    dnnl::memory r(want, o->eng);
    dnnl::reorder(m, r).execute(o->strm, m, r);
    o->strm.wait();
    return r;
  };
  auto user_x = [&]() { return user_mem(0, act_tag == tag::nhwc ? x_to_nhwc(d, x) : x, {src_dims, t, act_tag}); };
  auto user_w = [&]() { return user_mem(1, wt, {wei_dims, t, wei_tag}); };
  auto user_dy = [&]() { return user_mem(2, act_tag == tag::nhwc ? y_to_nhwc(d, dy) : dy, {dst_dims, t, act_tag}); };
  const char* what = best ? "any:" : "";
  if (dir == dnn::Direction::Forward) {
    o->impl_info = pd.impl_info_str();
    o->layout = best ? what + dnnl_layout_name(pd.src_desc(), src_dims, t) : layout_name(layout);
    o->prim = dnnl::convolution_forward(pd);
    o->out = dnnl::memory(pd.dst_desc(), o->eng);
    o->args = {{DNNL_ARG_SRC, into(user_x(), pd.src_desc())},
               {DNNL_ARG_WEIGHTS, into(user_w(), pd.weights_desc())},
               {DNNL_ARG_DST, o->out}};
    o->user_out_md = dnnl::memory::desc(dst_dims, t, tag::nchw);
  } else if (dir == dnn::Direction::BackwardData) {
#if DNNL_VERSION_MAJOR >= 3
    dnnl::convolution_backward_data::primitive_desc bpd(o->eng, algo, src_md, wei_md, dst_md, strides, pad_l, pad_r,
                                                        pd);
#else
    dnnl::convolution_backward_data::primitive_desc bpd(
        dnnl::convolution_backward_data::desc(algo, src_md, wei_md, dst_md, strides, pad_l, pad_r), o->eng, pd);
#endif
    o->impl_info = bpd.impl_info_str();
    o->layout = best ? what + dnnl_layout_name(bpd.diff_src_desc(), src_dims, t) : layout_name(layout);
    o->prim = dnnl::convolution_backward_data(bpd);
    o->out = dnnl::memory(bpd.diff_src_desc(), o->eng);
    o->args = {{DNNL_ARG_DIFF_DST, into(user_dy(), bpd.diff_dst_desc())},
               {DNNL_ARG_WEIGHTS, into(user_w(), bpd.weights_desc())},
               {DNNL_ARG_DIFF_SRC, o->out}};
    o->user_out_md = dnnl::memory::desc(src_dims, t, tag::nchw);
  } else {
#if DNNL_VERSION_MAJOR >= 3
    dnnl::convolution_backward_weights::primitive_desc bpd(o->eng, algo, src_md, wei_md, dst_md, strides, pad_l, pad_r,
                                                           pd);
#else
    dnnl::convolution_backward_weights::primitive_desc bpd(
        dnnl::convolution_backward_weights::desc(algo, src_md, wei_md, dst_md, strides, pad_l, pad_r), o->eng, pd);
#endif
    o->impl_info = bpd.impl_info_str();
    o->layout = best ? what + dnnl_layout_name(bpd.src_desc(), src_dims, t) : layout_name(layout);
    o->prim = dnnl::convolution_backward_weights(bpd);
    o->out = dnnl::memory(bpd.diff_weights_desc(), o->eng);
    o->args = {{DNNL_ARG_SRC, into(user_x(), bpd.src_desc())},
               {DNNL_ARG_DIFF_DST, into(user_dy(), bpd.diff_dst_desc())},
               {DNNL_ARG_DIFF_WEIGHTS, o->out}};
    o->user_out_md = dnnl::memory::desc(wei_dims, t, wei_tag);
  }
  return o;
}

void run_onednn(OnednnConv& o) {
  o.prim.execute(o.strm, o.args);
  o.strm.wait();
}

// y, dx or dw in logical order.
std::vector<float> onednn_output(OnednnConv& o, dnn::DataType dt) {
  dnnl::memory user(o.user_out_md, o.eng);
  dnnl::reorder(o.out, user).execute(o.strm, o.out, user);
  o.strm.wait();
  const std::size_t count = o.user_out_md.get_size() / (dt == dnn::DataType::F16 ? 2 : 4);
  std::vector<float> y(count);
  if (dt == dnn::DataType::F16) {
    const auto* p = static_cast<const axle::half_t*>(user.get_data_handle());
    for (std::size_t i = 0; i < count; ++i) y[i] = axle::to_float(p[i]);
  } else {
    std::memcpy(y.data(), user.get_data_handle(), count * 4);
  }
  return y;
}
#endif

// ---- cuDNN --------------------------------------------------------------------------
#ifdef AXLE_BENCH_HAVE_CUDNN
const char* cudnn_algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
      return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
      return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
      return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT:
      return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
      return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING:
      return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
      return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
      return "WINOGRAD_NONFUSED";
    default:
      return "?";
  }
}

const char* cudnn_algo_name(cudnnConvolutionBwdDataAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0:
      return "BWD_DATA_ALGO_0";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1:
      return "BWD_DATA_ALGO_1";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT:
      return "BWD_DATA_FFT";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING:
      return "BWD_DATA_FFT_TILING";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD:
      return "BWD_DATA_WINOGRAD";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED:
      return "BWD_DATA_WINOGRAD_NONFUSED";
    default:
      return "?";
  }
}

const char* cudnn_algo_name(cudnnConvolutionBwdFilterAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0:
      return "BWD_FILTER_ALGO_0";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1:
      return "BWD_FILTER_ALGO_1";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT:
      return "BWD_FILTER_FFT";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3:
      return "BWD_FILTER_ALGO_3";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED:
      return "BWD_FILTER_WINOGRAD_NONFUSED";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING:
      return "BWD_FILTER_FFT_TILING";
    default:
      return "?";
  }
}

struct CudnnConv {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
  cudnnFilterDescriptor_t wd = nullptr;
  cudnnConvolutionDescriptor_t cd = nullptr;
  dnn::Direction dir = dnn::Direction::Forward;
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  void* ws = nullptr;
  std::size_t ws_bytes = 0;
  void *x = nullptr, *w = nullptr, *y = nullptr;  // x and w (dx, dw) and y (dy) as in y = conv(x, w)
  axle::Stream* stream = nullptr;
  ~CudnnConv() {
    if (ws) cudaFree(ws);
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (xd) cudnnDestroyTensorDescriptor(xd);
  }
};

void cudnn_check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cudnnGetErrorString(s));
}

// The first successful entry of a cudnnFind*Algorithm result (sorted by time).
template <typename Perf>
const Perf& cudnn_pick(const Perf* perf, int found, const char* what) {
  for (int i = 0; i < found; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return perf[i];
  throw std::runtime_error(std::string(what) + " found no algorithm");
}

// NHWC tensors and KRSC filters on x, w, y (device pointers of Axle buffers; for the
// backward directions y holds dy, and x or w receive dx or dw).
std::unique_ptr<CudnnConv> make_cudnn(cudnnHandle_t h, axle::Stream& st, const dnn::Conv2dDesc& d, dnn::DataType dt,
                                      dnn::Direction dir, void* x, void* w, void* y, std::string& algo,
                                      std::string& finder) {
  auto c = std::make_unique<CudnnConv>();
  c->h = h, c->x = x, c->w = w, c->y = y, c->stream = &st, c->dir = dir;
  const cudnnDataType_t t = dt == dnn::DataType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  cudnn_check(cudnnCreateTensorDescriptor(&c->xd), "cudnnCreateTensorDescriptor");
  cudnn_check(cudnnCreateTensorDescriptor(&c->yd), "cudnnCreateTensorDescriptor");
  cudnn_check(cudnnCreateFilterDescriptor(&c->wd), "cudnnCreateFilterDescriptor");
  cudnn_check(cudnnCreateConvolutionDescriptor(&c->cd), "cudnnCreateConvolutionDescriptor");
  cudnn_check(cudnnSetTensor4dDescriptor(c->xd, CUDNN_TENSOR_NHWC, t, int(d.n), int(d.c), int(d.h), int(d.w)),
              "cudnnSetTensor4dDescriptor(x)");
  cudnn_check(
      cudnnSetFilter4dDescriptor(c->wd, t, CUDNN_TENSOR_NHWC, int(d.k), int(d.c / d.groups), int(d.r), int(d.s)),
      "cudnnSetFilter4dDescriptor");
  cudnn_check(
      cudnnSetConvolution2dDescriptor(c->cd, int(d.pad_top), int(d.pad_left), int(d.stride_h), int(d.stride_w),
                                      int(d.dilation_h), int(d.dilation_w), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
      "cudnnSetConvolution2dDescriptor");
  cudnn_check(cudnnSetConvolutionGroupCount(c->cd, int(d.groups)), "cudnnSetConvolutionGroupCount");
  cudnn_check(cudnnSetConvolutionMathType(c->cd, dt == dnn::DataType::F16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH),
              "cudnnSetConvolutionMathType");
  cudnn_check(
      cudnnSetTensor4dDescriptor(c->yd, CUDNN_TENSOR_NHWC, t, int(d.n), int(d.k), int(d.out_h()), int(d.out_w())),
      "cudnnSetTensor4dDescriptor(y)");
  int found = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  if (dir == dnn::Direction::Forward) {
    finder = "cudnnFindConvolutionForwardAlgorithm";
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnn_check(cudnnFindConvolutionForwardAlgorithm(h, c->xd, c->wd, c->cd, c->yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                     &found, perf),
                finder.c_str());
    const auto& p = cudnn_pick(perf, found, finder.c_str());
    c->fwd_algo = p.algo, c->ws_bytes = p.memory, math = p.mathType;
    algo = cudnn_algo_name(p.algo);
  } else if (dir == dnn::Direction::BackwardData) {
    finder = "cudnnFindConvolutionBackwardDataAlgorithm";
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnn_check(cudnnFindConvolutionBackwardDataAlgorithm(h, c->wd, c->yd, c->cd, c->xd,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, perf),
                finder.c_str());
    const auto& p = cudnn_pick(perf, found, finder.c_str());
    c->data_algo = p.algo, c->ws_bytes = p.memory, math = p.mathType;
    algo = cudnn_algo_name(p.algo);
  } else {
    finder = "cudnnFindConvolutionBackwardFilterAlgorithm";
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cudnn_check(cudnnFindConvolutionBackwardFilterAlgorithm(h, c->xd, c->yd, c->cd, c->wd,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, perf),
                finder.c_str());
    const auto& p = cudnn_pick(perf, found, finder.c_str());
    c->filter_algo = p.algo, c->ws_bytes = p.memory, math = p.mathType;
    algo = cudnn_algo_name(p.algo);
  }
  if (c->ws_bytes && cudaMalloc(&c->ws, c->ws_bytes) != cudaSuccess) throw std::runtime_error("cudaMalloc(workspace)");
  if (math == CUDNN_TENSOR_OP_MATH) algo += " (tensor ops)";
  return c;
}

void run_cudnn(CudnnConv& c) {
  const float one = 1.f, zero = 0.f;
  if (c.dir == dnn::Direction::Forward)
    cudnn_check(
        cudnnConvolutionForward(c.h, &one, c.xd, c.x, c.wd, c.w, c.cd, c.fwd_algo, c.ws, c.ws_bytes, &zero, c.yd, c.y),
        "cudnnConvolutionForward");
  else if (c.dir == dnn::Direction::BackwardData)
    cudnn_check(cudnnConvolutionBackwardData(c.h, &one, c.wd, c.w, c.yd, c.y, c.cd, c.data_algo, c.ws, c.ws_bytes,
                                             &zero, c.xd, c.x),
                "cudnnConvolutionBackwardData");
  else
    cudnn_check(cudnnConvolutionBackwardFilter(c.h, &one, c.xd, c.x, c.yd, c.y, c.cd, c.filter_algo, c.ws, c.ws_bytes,
                                               &zero, c.wd, c.w),
                "cudnnConvolutionBackwardFilter");
  c.stream->synchronize();
}
#endif

struct Args {
  bool quick = false;
  std::string device, json, layers, layout = "nhwc", dtype = "f32", direction, algo;
  std::vector<std::size_t> batches;
  int rounds = 5, threads = 0;
  bool pack_per_run = false;
};

std::vector<std::size_t> parse_list(const std::string& s) {
  std::vector<std::size_t> out;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    out.push_back(std::stoul(s.substr(i, j - i)));
    i = j + 1;
  }
  return out;
}

bool name_matches(const std::string& name, const std::string& list) {
  if (list.empty()) return true;
  std::size_t i = 0;
  while (i <= list.size()) {
    std::size_t j = list.find(',', i);
    if (j == std::string::npos) j = list.size();
    if (j > i && name.find(list.substr(i, j - i)) != std::string::npos) return true;
    i = j + 1;
  }
  return false;
}

void usage() {
  std::printf(
      "usage: conv_bench [--quick] [--device SPEC] [--batch LIST] [--layers SUBSTRING[,...]]\n"
      "                  [--direction fwd|bwd_data|bwd_weights|all] [--layout nhwc|nchw|both]\n"
      "                  [--dtype f32|f16] [--rounds N] [--threads N] [--algo NAME] [--pack-per-run]\n"
      "                  [--json FILE]\n"
      "  --quick       3x3 C64 56x56, 3x3 C256 14x14 and 1x1 C256->K64 56x56 at batch 1, and\n"
      "                (without --direction) both backward directions of 3x3 C64 56x56\n"
      "  --batch       batch sizes (default 1,8)\n"
      "  --layers      run the layers whose name contains one of the substrings (e.g. 3x3,dw)\n"
      "  --direction   fwd (default), bwd_data, bwd_weights or all; the backward directions\n"
      "                run on the 3x3 and 1x1 layers (depthwise included)\n"
      "  --threads     oneDNN's threads (default: the machine's cores)\n"
      "  --algo        force Axle's algorithm (direct, implicit_gemm, gemm_1x1, winograd, tap_gemm, depthwise,\n"
      "                ...; default auto, the selector's choice); layers it cannot serve are skipped\n"
      "  --pack-per-run  forward plans with packed filters pack them in every timed run (default:\n"
      "                once, outside the timing, as oneDNN's weight reorders)\n");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", s.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (s == "--quick")
      a.quick = true;
    else if (s == "--device")
      a.device = next();
    else if (s == "--json")
      a.json = next();
    else if (s == "--layers")
      a.layers = next();
    else if (s == "--layout")
      a.layout = next();
    else if (s == "--dtype")
      a.dtype = next();
    else if (s == "--direction")
      a.direction = next();
    else if (s == "--algo")
      a.algo = next();
    else if (s == "--batch")
      a.batches = parse_list(next());
    else if (s == "--rounds")
      a.rounds = std::max(1, std::stoi(next()));
    else if (s == "--pack-per-run")
      a.pack_per_run = true;
    else if (s == "--threads")
      a.threads = std::max(1, std::stoi(next()));
    else if (s == "--help" || s == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument %s (see --help)\n", s.c_str());
      return 2;
    }
  }
  if (a.dtype != "f32" && a.dtype != "f16") {
    std::fprintf(stderr, "--dtype must be f32 or f16\n");
    return 2;
  }
  dnn::Algorithm forced = dnn::Algorithm::Auto;
  if (!a.algo.empty()) {
    bool found = false;
    for (dnn::Algorithm al : {dnn::Algorithm::Auto, dnn::Algorithm::Direct, dnn::Algorithm::ImplicitGemm,
                              dnn::Algorithm::Gemm1x1, dnn::Algorithm::Winograd, dnn::Algorithm::TensorCore,
                              dnn::Algorithm::CudaSimt, dnn::Algorithm::TapGemm})
      if (a.algo == dnn::to_string(al)) forced = al, found = true;
    if (!found) {
      std::fprintf(stderr, "--algo %s names no algorithm (see --help)\n", a.algo.c_str());
      return 2;
    }
  }
  std::vector<dnn::TensorLayout> layouts;
  if (a.layout == "nhwc" || a.layout == "both") layouts.push_back(dnn::TensorLayout::NHWC);
  if (a.layout == "nchw" || a.layout == "both") layouts.push_back(dnn::TensorLayout::NCHW);
  if (layouts.empty()) {
    std::fprintf(stderr, "--layout must be nhwc, nchw or both\n");
    return 2;
  }
  std::vector<dnn::Direction> directions;
  const std::string dir_arg = a.direction.empty() ? "fwd" : a.direction;
  if (dir_arg == "fwd" || dir_arg == "all") directions.push_back(dnn::Direction::Forward);
  if (dir_arg == "bwd_data" || dir_arg == "all") directions.push_back(dnn::Direction::BackwardData);
  if (dir_arg == "bwd_weights" || dir_arg == "all") directions.push_back(dnn::Direction::BackwardWeights);
  if (directions.empty()) {
    std::fprintf(stderr, "--direction must be fwd, bwd_data, bwd_weights or all\n");
    return 2;
  }
  const dnn::DataType dt = a.dtype == "f16" ? dnn::DataType::F16 : dnn::DataType::F32;
  if (a.batches.empty()) a.batches = a.quick ? std::vector<std::size_t>{1} : std::vector<std::size_t>{1, 8};
  // The cases: each selected layer in each direction it runs in (the backward ones on
  // the 3x3 and 1x1 layers, depthwise included; --quick alone adds both of them for 3x3
  // C64 56x56).
  const char* quick_backward = "3x3 C64 K64 56x56";
  std::vector<std::pair<Layer, dnn::Direction>> cases;
  for (const Layer& l : all_layers()) {
    const bool in_quick =
        l.name == "3x3 C64 K64 56x56" || l.name == "3x3 C256 K256 14x14" || l.name == "1x1 C256 K64 56x56";
    if ((a.quick && a.layers.empty() && !in_quick) || !name_matches(l.name, a.layers)) continue;
    const bool backward = l.rs == 3 || l.rs == 1;
    for (dnn::Direction dir : directions)
      if (dir == dnn::Direction::Forward || backward) cases.emplace_back(l, dir);
    if (a.quick && a.direction.empty() && l.name == quick_backward)
      for (dnn::Direction dir : {dnn::Direction::BackwardData, dnn::Direction::BackwardWeights})
        cases.emplace_back(l, dir);
  }
  if (cases.empty()) {
    std::fprintf(stderr, "no layer matches --layers %s in --direction %s\n", a.layers.c_str(), dir_arg.c_str());
    return 2;
  }
  const int threads = a.threads ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const double budget = a.quick ? 0.15 : 0.3;

  axle::Device dev;
  try {
    dev = axle::default_device(a.device);
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "conv_bench: %s\n", e.what());
    return 1;
  }
  const axle::DeviceInfo& info = dev.info();
  axle::Stream stream = dev.create_stream();
  std::printf("device: %s (%s, %s)\n", info.name.c_str(), dev.id().c_str(), info.vendor.c_str());
  PeakProbe probe(dev, stream);
  if (probe.measure(1.0) > 0)
    std::printf("peak (FMA probe, f32): %.1f GFLOP/s\n", probe.best());
  else
    std::printf("peak: unknown (FMA probe failed: %s)\n", probe.why().c_str());

  // Peers present in this build and on this device.
  std::vector<std::string> global_notes;
  const std::string host_name = cpu_model_name();
#ifdef AXLE_BENCH_HAVE_ONEDNN
#ifdef AXLE_BENCH_HAVE_OPENMP
  omp_set_num_threads(threads);
#endif
  std::printf("oneDNN %d.%d.%d on %s, %d threads\n", dnnl_version()->major, dnnl_version()->minor,
              dnnl_version()->patch, host_name.c_str(), threads);
#else
  global_notes.push_back("oneDNN: not in this build");
#endif
#ifndef AXLE_BENCH_HAVE_CLBLAST
  if (info.backend == "opencl") global_notes.push_back("CLBlast: not in this build");
#endif
#ifdef AXLE_BENCH_HAVE_CUDNN
  cudnnHandle_t cudnn = nullptr;
  {
    int count = 0;
    const cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0)
      global_notes.push_back(std::string("cuDNN: no CUDA device (") +
                             (ce != cudaSuccess ? cudaGetErrorString(ce) : "cudaGetDeviceCount: 0") + ")");
    else if (info.backend != "cuda")
      global_notes.push_back("cuDNN: the bench device is " + dev.id() + " (run with --device cuda:N)");
    else if (const cudnnStatus_t cs = cudnnCreate(&cudnn); cs != CUDNN_STATUS_SUCCESS) {
      global_notes.push_back(std::string("cuDNN: no CUDA device (cudnnCreate: ") + cudnnGetErrorString(cs) + ")");
      cudnn = nullptr;
    } else {
      cudnnSetStream(cudnn, static_cast<cudaStream_t>(stream.native_handle()));
      std::printf("cuDNN %zu\n", cudnnGetVersion());
    }
  }
#else
  if (info.backend == "cuda") global_notes.push_back("cuDNN: not in this build");
#endif
  for (const std::string& n : global_notes) std::printf("%s\n", n.c_str());

  const double tol = dt == dnn::DataType::F16 ? 2e-2 : 1e-4;
  bool any_wrong = false;
  nlohmann::json records = nlohmann::json::array();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);

  for (std::size_t batch : a.batches)
    for (const auto& cs : cases) {
      const Layer& layer = cs.first;
      const dnn::Direction dir = cs.second;
      const bool fwd = dir == dnn::Direction::Forward, bdata = dir == dnn::Direction::BackwardData;
      const bool bweights = dir == dnn::Direction::BackwardWeights;
      const dnn::Conv2dDesc d = make_desc(layer, batch, dnn::TensorLayout::NCHW);
      const double flops = d.flops();  // every direction: the forward pass's
      // The inputs of every direction: x, w and (backward) dy; zeros where it writes.
      std::vector<float> x(d.x_elems()), wt(d.w_elems()), dy(fwd ? 0 : d.y_elems());
      for (float& v : x) v = round_to(dt, dist(rng));
      for (float& v : wt) v = round_to(dt, dist(rng));
      for (float& v : dy) v = round_to(dt, dist(rng));
      const std::vector<Sample> samples = make_samples(d, dir, x, wt, dy, rng);
      const std::vector<float> x_nhwc = x_to_nhwc(d, x), w_krsc = w_to_krsc(d, wt);
      const std::vector<float> dy_nhwc = fwd ? std::vector<float>() : y_to_nhwc(d, dy);
      const std::vector<float> x_in = bdata ? std::vector<float>(d.x_elems(), 0.f) : x;
      const std::vector<float> w_in = bweights ? std::vector<float>(d.w_elems(), 0.f) : wt;
      const std::vector<float> y_in = fwd ? std::vector<float>(d.y_elems(), 0.f) : dy;
      const std::vector<float> x_in_nhwc = bdata ? x_in : x_nhwc, w_in_krsc = bweights ? w_in : w_krsc;
      const std::vector<float> y_in_nhwc = fwd ? y_in : dy_nhwc;
      // What the direction writes, read back from the x, w or y buffer in logical order.
      auto result = [d, dt, dir](axle::Stream& st, const axle::Buffer& bx, const axle::Buffer& bw,
                                 const axle::Buffer& by, bool channels_last) {
        if (dir == dnn::Direction::Forward) {
          std::vector<float> y = download(st, by, d.y_elems(), dt);
          return channels_last ? y_from_nhwc(d, y) : y;
        }
        if (dir == dnn::Direction::BackwardData) {
          std::vector<float> v = download(st, bx, d.x_elems(), dt);
          return channels_last ? x_from_nhwc(d, v) : v;
        }
        std::vector<float> v = download(st, bw, d.w_elems(), dt);
        return channels_last ? w_from_krsc(d, v) : v;
      };
      std::vector<std::string> notes;
      std::vector<std::unique_ptr<Impl>> impls;
      std::vector<std::shared_ptr<void>> keep;  // device buffers, plans and peer state of this case

      // Axle, one plan per layout, made here (outside the timing). Backward weights
      // without a bias, as oneDNN's.
      for (dnn::TensorLayout lay : layouts) {
        const bool nhwc = lay == dnn::TensorLayout::NHWC;
        try {
          const dnn::Conv2dDesc dl = make_desc(layer, batch, lay);
          dnn::Conv2dOptions popt;
          popt.algorithm = forced;
          popt.packed_weights = dir == dnn::Direction::Forward && !a.pack_per_run;
          auto plan = std::make_shared<dnn::Conv2dPlan>(dev, dl, dnn::Conv2dTypes{dt, dt, dt}, dir,
                                                        dnn::Conv2dFusion{}, popt);
          auto bx = std::make_shared<axle::Buffer>(upload(stream, nhwc ? x_in_nhwc : x_in, dt));
          auto bw = std::make_shared<axle::Buffer>(upload(stream, nhwc ? w_in_krsc : w_in, dt));
          auto by = std::make_shared<axle::Buffer>(upload(stream, nhwc ? y_in_nhwc : y_in, dt));
          keep.insert(keep.end(), {plan, bx, bw, by});
          dnn::Conv2dArgs args;
          args.x = tensor(*bx, dt);
          args.w = tensor(*bw, dt);
          args.y = tensor(*by, dt);
          const bool prepack = !a.pack_per_run && plan->packed_weights_bytes() > 0;
          if (prepack) {
            auto packed = std::make_shared<axle::Buffer>(dev.alloc<unsigned char>(plan->packed_weights_bytes()));
            keep.push_back(packed);
            plan->pack_weights(stream, args.w, packed->view<unsigned char>());
            args.packed_w = packed->view<unsigned char>();
          }
          auto im = std::make_unique<Impl>();
          im->impl = "axle", im->layout = layout_name(lay), im->backend = info.backend, im->device = info.name;
          im->describe = plan->describe();
          im->algo = im->describe.substr(0, im->describe.find(" for "));
          if (prepack) im->algo += ", filters prepacked";
          axle::Stream* st = &stream;
          im->run = [plan, args, st]() {
            plan->run(*st, args);
            st->synchronize();
          };
          im->output = [st, bx, bw, by, result, nhwc]() { return result(*st, *bx, *bw, *by, nhwc); };
          impls.push_back(std::move(im));
        } catch (const std::exception& e) {
          notes.push_back(std::string("axle ") + layout_name(lay) + ": " + e.what());
        }
      }
#ifdef AXLE_BENCH_HAVE_ONEDNN
      // oneDNN: its best layout, then forced to each of Axle's.
      for (int v = 0; v <= int(layouts.size()); ++v) {
        const bool best = v == 0;
        const dnn::TensorLayout lay = best ? dnn::TensorLayout::NCHW : layouts[std::size_t(v - 1)];
        try {
          std::shared_ptr<OnednnConv> o = make_onednn(d, dt, dir, best, lay, x, wt, dy);
          keep.push_back(o);
          auto im = std::make_unique<Impl>();
          im->impl = "onednn", im->variant = best ? "best" : "same-layout", im->layout = o->layout;
          im->backend = "host", im->device = host_name + " (" + std::to_string(threads) + " threads)";
          im->algo = o->impl_info;
          const char* prim = fwd     ? "forward_inference"
                             : bdata ? "backward_data (forward_training hint)"
                                     : "backward_weights, no bias (forward_training hint)";
          const char* given = fwd     ? "x and y in the given layout, weights its own"
                              : bdata ? "dx and dy in the given layout, weights its own"
                                      : "x and dy in the given layout, dw its own";
          im->describe = std::string("oneDNN convolution_auto, ") + prim + ", " +
                         (best ? "every format its own" : given) + ": " + o->impl_info;
          im->pause_s = 0.1;
          OnednnConv* op = o.get();
          im->run = [op]() { run_onednn(*op); };
          im->output = [op, dt]() { return onednn_output(*op, dt); };
          impls.push_back(std::move(im));
        } catch (const std::exception& e) {
          notes.push_back(std::string("oneDNN ") + (best ? "best" : layout_name(lay)) + ": " + e.what() +
                          (dt == dnn::DataType::F16 ? " (no f16 convolution on this CPU)" : ""));
        }
      }
#endif
#ifdef AXLE_BENCH_HAVE_CLBLAST
      if (info.backend == "opencl") {
        if (!fwd) {
          notes.push_back("CLBlast: skipped (no backward convolution: Convgemm is forward only)");
        } else if (d.groups != 1) {
          notes.push_back("CLBlast: skipped (Convgemm has no groups: depthwise cannot run)");
        } else {
          try {
            auto bx = std::make_shared<axle::Buffer>(upload(stream, x, dt));
            auto bw = std::make_shared<axle::Buffer>(upload(stream, wt, dt));
            auto by = std::make_shared<axle::Buffer>(upload(stream, std::vector<float>(d.y_elems(), 0.f), dt));
            keep.insert(keep.end(), {bx, bw, by});
            axle::Stream* st = &stream;
            auto run = [st, bx, bw, by, d, dt]() {
              cl_command_queue q = static_cast<cl_command_queue>(st->native_handle());
              const auto mx = static_cast<cl_mem>(bx->native_handle()), mw = static_cast<cl_mem>(bw->native_handle());
              const auto my = static_cast<cl_mem>(by->native_handle());
              const auto mode = clblast::KernelMode::kCrossCorrelation;
              const clblast::StatusCode s =
                  dt == dnn::DataType::F16
                      ? clblast::Convgemm<cl_half>(mode, d.c, d.h, d.w, d.r, d.s, d.pad_top, d.pad_left, d.stride_h,
                                                   d.stride_w, d.dilation_h, d.dilation_w, d.k, d.n, mx, 0, mw, 0, my,
                                                   0, &q, nullptr)
                      : clblast::Convgemm<float>(mode, d.c, d.h, d.w, d.r, d.s, d.pad_top, d.pad_left, d.stride_h,
                                                 d.stride_w, d.dilation_h, d.dilation_w, d.k, d.n, mx, 0, mw, 0, my, 0,
                                                 &q, nullptr);
              if (s == clblast::StatusCode::kNoHalfPrecision)
                throw std::runtime_error("no half precision on this device (kNoHalfPrecision)");
              if (s != clblast::StatusCode::kSuccess)
                throw std::runtime_error("clblast::Convgemm failed with status " + std::to_string(int(s)));
              clFinish(q);
            };
            run();  // compiles its kernels; throws here when it cannot serve
            auto im = std::make_unique<Impl>();
            im->impl = "clblast", im->layout = "nchw", im->backend = info.backend, im->device = info.name;
            im->algo = "Convgemm (im2col + GEMM)";
            im->describe = "clblast::Convgemm, kCrossCorrelation, NCHW tensors with KCRS filters";
            im->run = run;
            im->output = [st, by, d, dt]() { return download(*st, *by, d.y_elems(), dt); };
            impls.push_back(std::move(im));
          } catch (const std::exception& e) {
            notes.push_back(std::string("CLBlast: ") + e.what());
          }
        }
      }
#endif
#ifdef AXLE_BENCH_HAVE_CUDNN
      if (cudnn) {
        try {
          auto bx = std::make_shared<axle::Buffer>(upload(stream, x_in_nhwc, dt));
          auto bw = std::make_shared<axle::Buffer>(upload(stream, w_in_krsc, dt));
          auto by = std::make_shared<axle::Buffer>(upload(stream, y_in_nhwc, dt));
          keep.insert(keep.end(), {bx, bw, by});
          auto ptr = [](const axle::Buffer& b) { return reinterpret_cast<void*>(b.native_handle()); };
          std::string algo, finder;
          std::shared_ptr<CudnnConv> c =
              make_cudnn(cudnn, stream, d, dt, dir, ptr(*bx), ptr(*bw), ptr(*by), algo, finder);
          keep.push_back(c);
          auto im = std::make_unique<Impl>();
          im->impl = "cudnn", im->layout = "nhwc", im->backend = "cuda", im->device = info.name;
          im->algo = algo;
          im->describe = "cuDNN " + algo + " (" + finder + "), workspace " + std::to_string(c->ws_bytes) + " bytes";
          CudnnConv* cp = c.get();
          axle::Stream* st = &stream;
          im->run = [cp]() { run_cudnn(*cp); };
          im->output = [st, bx, bw, by, result]() { return result(*st, *bx, *bw, *by, true); };
          impls.push_back(std::move(im));
        } catch (const std::exception& e) {
          notes.push_back(std::string("cuDNN: ") + e.what());
        }
      }
#endif

      // Check every result before timing it.
      std::vector<float> axle_out[2], onednn_out;
      for (auto& im : impls) {
        try {
          im->run();
          const std::vector<float> out = im->output();
          im->err = sample_error(samples, out);
          if (im->impl == "axle") axle_out[im->layout == "nhwc" ? 0 : 1] = out;
          if (im->impl == "onednn" && im->variant == "best") onednn_out = out;
        } catch (const std::exception& e) {
          notes.push_back(im->key() + ": " + e.what());
          im->run = nullptr;
        }
      }
      impls.erase(std::remove_if(impls.begin(), impls.end(), [](const auto& im) { return !im->run; }), impls.end());

      // Interleaved rounds.
      for (int r = 0; r < a.rounds; ++r)
        for (auto& im : impls) {
          try {
            im->round_ms.push_back(time_round(*im, budget));
          } catch (const std::exception& e) {
            notes.push_back(im->key() + " (round " + std::to_string(r) + "): " + e.what());
          }
          // A CPU device's runtime (PoCL) has worker threads of its own: every
          // implementation then leaves the cores idle before the next one starts.
          const double pause = info.type == axle::DeviceType::CPU ? std::max(im->pause_s, 0.1) : im->pause_s;
          std::this_thread::sleep_for(std::chrono::duration<double>(pause));
        }

      const double peak = probe.measure(0.3);

      // Table.
      std::printf("\n== %s  n=%zu %s %s  (%s, %.3f GFLOP)\n", layer.name.c_str(), batch, a.dtype.c_str(),
                  direction_name(dir), d.str().c_str(), flops * 1e-9);
      std::printf("%-8s %-12s %-44s %10s %10s %7s %9s\n", "impl", "layout", "algo", "ms", "GFLOP/s", "%peak",
                  "rel.err");
      std::map<std::string, double> gf;  // by key
      double onednn_best = 0, clblast = 0;
      std::map<std::string, double> onednn_same;
      for (auto& im : impls) {
        if (im->round_ms.empty()) continue;
        const double ms = median(im->round_ms), g = flops / (ms * 1e-3) * 1e-9;
        const bool wrong = im->err > tol || !std::isfinite(im->err);
        any_wrong = any_wrong || wrong;
        std::string algo = im->algo.size() > 44 ? im->algo.substr(0, 41) + "..." : im->algo;
        char frac[16] = "";
        if (peak > 0 && im->impl == "axle") std::snprintf(frac, sizeof frac, "%.1f%%", 100 * g / peak);
        std::printf("%-8s %-12s %-44s %10.3f %10.2f %7s %9.1e%s\n", im->impl.c_str(), im->layout.c_str(), algo.c_str(),
                    ms, g, frac, im->err, wrong ? "  WRONG" : "");
        if (im->impl == "onednn" && im->variant == "best") onednn_best = g;
        if (im->impl == "onednn" && im->variant == "same-layout") onednn_same[im->layout] = g;
        if (im->impl == "clblast") clblast = g;
        if (im->impl == "axle") gf[im->layout] = g;
        nlohmann::json rec = {{"impl", im->impl},
                              {"variant", im->variant},
                              {"backend", im->backend},
                              {"device", im->device},
                              {"layer", layer.name},
                              {"layout", im->layout},
                              {"dtype", a.dtype},
                              {"direction", direction_name(dir)},
                              {"n", batch},
                              {"c", d.c},
                              {"k", d.k},
                              {"h", d.h},
                              {"w", d.w},
                              {"r", d.r},
                              {"s", d.s},
                              {"stride", d.stride_h},
                              {"pad", d.pad_top},
                              {"groups", d.groups},
                              {"algo", im->algo},
                              {"describe", im->describe},
                              {"ms", ms},
                              {"gflops", g},
                              {"round_ms", im->round_ms},
                              {"max_rel_err", im->err},
                              {"valid", !wrong}};
        if (peak > 0) rec["peak_gflops"] = peak;
        if (peak > 0 && im->impl == "axle") rec["frac_peak"] = g / peak;
        if (im->impl == "onednn") rec["threads"] = threads;
        records.push_back(rec);
      }
      for (const auto& [lay, g] : gf) {
        if (onednn_best <= 0 && !onednn_same.count(lay) && clblast <= 0) continue;
        std::printf("axle %s:", lay.c_str());
        if (onednn_best > 0) std::printf("  axle/oneDNN-best %.2f", g / onednn_best);
        if (onednn_same.count(lay)) std::printf("  axle/oneDNN-%s %.2f", lay.c_str(), g / onednn_same[lay]);
        if (clblast > 0) std::printf("  axle/CLBlast %.2f", g / clblast);
        std::printf("\n");
      }
      for (int i = 0; i < 2; ++i)
        if (!axle_out[i].empty() && !onednn_out.empty())
          std::printf("check: axle %s vs oneDNN max rel err %.1e over %zu points\n", i ? "nchw" : "nhwc",
                      pair_error(samples, axle_out[i], onednn_out), samples.size());
      for (const std::string& n : notes) std::printf("note: %s\n", n.c_str());
      std::fflush(stdout);
    }

#ifdef AXLE_BENCH_HAVE_CUDNN
  if (cudnn) cudnnDestroy(cudnn);
#endif
  // Every record gets the best peak of the whole run.
  if (const double peak = probe.best(); peak > 0) {
    std::printf("\npeak (FMA probe, f32, best over the run): %.1f GFLOP/s\n", peak);
    for (auto& rec : records) {
      rec["peak_gflops"] = peak;
      if (rec["impl"] == "axle") rec["frac_peak"] = rec["gflops"].get<double>() / peak;
    }
  }
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    f << records.dump(1) << "\n";
    if (!f) {
      std::fprintf(stderr, "conv_bench: cannot write %s\n", a.json.c_str());
      return 1;
    }
    std::printf("\nwrote %s (%zu records)\n", a.json.c_str(), records.size());
  }
  if (any_wrong) std::printf("\nsome results are WRONG (see rel.err; tolerance %.0e)\n", tol);
  return any_wrong ? 1 : 0;
}
