// train_cnn: trains a small convolutional network on Axle alone and checks that it
// learns. The data are generated 16x16 images of four classes (bars, crosses, rings
// and corners at random positions, sizes and orientations, with noise; seeded), with a
// held-out split. The network: conv 5x5/2 (1 -> 16) + ReLU, conv 3x3 (16 -> 32) + ReLU,
// global average pooling, a linear layer (blas::gemm), softmax cross-entropy; SGD with
// momentum. Forward and both backward convolution passes are axle::dnn plans; pooling,
// softmax and the update are portable kernels (samples/kernels/train_cnn.cl).
//
//   train_cnn [--epochs N] [--train N] [--test N] [--batch N] [--seed S] [--plot FILE.png]
//
// Prints the loss per epoch and the held-out accuracy; exits 0 when the loss fell and
// the held-out accuracy is at least 90%.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "axle/dnn.hpp"

namespace axle::embedded {
std::string_view sample_kernel(std::string_view name);
}

namespace dnn = axle::dnn;

namespace {

constexpr int kSide = 16, kClasses = 4;
const char* kClassNames[kClasses] = {"bar", "cross", "ring", "corner"};

// ---- data -------------------------------------------------------------------------

double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
  const double vx = bx - ax, vy = by - ay, wx = px - ax, wy = py - ay;
  const double t = std::clamp((wx * vx + wy * vy) / (vx * vx + vy * vy + 1e-12), 0.0, 1.0);
  const double dx = wx - t * vx, dy = wy - t * vy;
  return std::sqrt(dx * dx + dy * dy);
}

// One image of class `cls` (kSide x kSide, values about 0..1).
std::vector<float> make_image(int cls, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 0.08);
  const double pi = 3.14159265358979323846, a = u(rng) * 2 * pi;
  const double cx = 5.5 + u(rng) * 5, cy = 5.5 + u(rng) * 5;
  std::vector<float> img(kSide * kSide);
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      double d = 1e9;
      const double px = x + 0.5, py = y + 0.5;
      if (cls == 0) {  // a bar through the centre
        const double l = 4 + u(rng) * 0;  // half length
        d = seg_dist(px, py, cx - l * std::cos(a), cy - l * std::sin(a), cx + l * std::cos(a), cy + l * std::sin(a));
      } else if (cls == 1) {  // a cross
        const double l = 3.5;
        d = std::min(seg_dist(px, py, cx - l * std::cos(a), cy - l * std::sin(a), cx + l * std::cos(a), cy + l * std::sin(a)),
                     seg_dist(px, py, cx + l * std::sin(a), cy - l * std::cos(a), cx - l * std::sin(a), cy + l * std::cos(a)));
      } else if (cls == 2) {  // a ring
        const double r = 3.5;
        d = std::fabs(std::hypot(px - cx, py - cy) - r);
      } else {  // a corner: two arms from one point, at a right angle
        const double l = 6.0, ox = cx - 2.5 * (std::cos(a) - std::sin(a)), oy = cy - 2.5 * (std::sin(a) + std::cos(a));
        d = std::min(seg_dist(px, py, ox, oy, ox + l * std::cos(a), oy + l * std::sin(a)),
                     seg_dist(px, py, ox, oy, ox - l * std::sin(a), oy + l * std::cos(a)));
      }
      img[y * kSide + x] = static_cast<float>(std::clamp(1.25 - d, 0.0, 1.0) + noise(rng));
    }
  return img;
}

struct Dataset {
  std::vector<float> images;  // N x 16 x 16 x 1 (NHWC)
  std::vector<int> labels;
};

Dataset make_dataset(std::size_t n, std::mt19937& rng) {
  Dataset d;
  d.images.reserve(n * kSide * kSide);
  for (std::size_t i = 0; i < n; ++i) {
    const int cls = static_cast<int>(i % kClasses);
    const auto img = make_image(cls, rng);
    d.images.insert(d.images.end(), img.begin(), img.end());
    d.labels.push_back(cls);
  }
  // Shuffle images and labels together.
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  Dataset s;
  s.images.resize(d.images.size());
  s.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::copy_n(d.images.begin() + order[i] * kSide * kSide, kSide * kSide, s.images.begin() + i * kSide * kSide);
    s.labels[i] = d.labels[order[i]];
  }
  return s;
}

// ---- a PNG of the loss curve (stored deflate blocks: no compression library) -------

std::uint32_t crc32(const unsigned char* p, std::size_t n, std::uint32_t c = 0xffffffffu) {
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return c;
}

void write_png(const std::string& path, int w, int h, const std::vector<unsigned char>& rgb) {
  auto be32 = [](std::vector<unsigned char>& v, std::uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<unsigned char>(x >> s));
  };
  std::vector<unsigned char> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
  }
  std::vector<unsigned char> z{0x78, 0x01};
  std::uint32_t a = 1, b = 0;
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  for (std::size_t pos = 0; pos < raw.size();) {
    const std::size_t len = std::min<std::size_t>(65535, raw.size() - pos);
    z.push_back(pos + len == raw.size() ? 1 : 0);
    z.push_back(static_cast<unsigned char>(len));
    z.push_back(static_cast<unsigned char>(len >> 8));
    z.push_back(static_cast<unsigned char>(~len));
    z.push_back(static_cast<unsigned char>(~len >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + len);
    pos += len;
  }
  be32(z, (b << 16) | a);
  std::vector<unsigned char> out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto chunk = [&](const char* type, const std::vector<unsigned char>& data) {
    be32(out, static_cast<std::uint32_t>(data.size()));
    std::vector<unsigned char> td(type, type + 4);
    td.insert(td.end(), data.begin(), data.end());
    out.insert(out.end(), td.begin(), td.end());
    be32(out, crc32(td.data(), td.size()) ^ 0xffffffffu);
  };
  std::vector<unsigned char> ihdr;
  be32(ihdr, static_cast<std::uint32_t>(w));
  be32(ihdr, static_cast<std::uint32_t>(h));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", {});
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
}

// A 3x5 pixel font for the plot's labels (rows top to bottom, 3 bits each).
const char* glyph(char c) {
  switch (c) {
    case '0': return "111101101101111";
    case '1': return "010110010010111";
    case '2': return "111001111100111";
    case '3': return "111001111001111";
    case '4': return "101101111001001";
    case '5': return "111100111001111";
    case '6': return "111100111101111";
    case '7': return "111001001001001";
    case '8': return "111101111101111";
    case '9': return "111101111001111";
    case '.': return "000000000000010";
    case '%': return "101001010100101";
    case ':': return "000010000010000";
    case '-': return "000000111000000";
    case 'a': return "000111101111101";
    case 'c': return "000111100100111";
    case 'd': return "001111101101111";
    case 'e': return "000111111100111";
    case 'g': return "000111101111001";
    case 'h': return "100111101101101";
    case 'i': return "010000010010010";
    case 'l': return "100100100100111";
    case 'n': return "000111101101101";
    case 'o': return "000111101101111";
    case 'p': return "000111101111100";
    case 'r': return "000111100100100";
    case 's': return "000111110011111";
    case 't': return "010111010010011";
    case 'u': return "000101101101111";
    case 'y': return "000101111001111";
    default: return "000000000000000";
  }
}

void text(std::vector<unsigned char>& rgb, int w, int x, int y, const std::string& str, int scale, unsigned char r,
          unsigned char g, unsigned char b) {
  for (char c : str) {
    const char* gl = glyph(c);
    for (int row = 0; row < 5; ++row)
      for (int col = 0; col < 3; ++col)
        if (gl[row * 3 + col] == '1')
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx) {
              unsigned char* p = &rgb[((y + row * scale + dy) * w + x + col * scale + dx) * 3];
              p[0] = r, p[1] = g, p[2] = b;
            }
    x += 4 * scale;
  }
}

// Training loss (blue, left axis) and held-out accuracy (green, 0 to 100% on the right)
// per epoch, on a grid.
void plot(const std::string& path, const std::vector<double>& loss, const std::vector<double>& acc) {
  const int w = 720, h = 420, m = 60;
  std::vector<unsigned char> rgb(w * h * 3, 255);
  auto put = [&](int x, int y, unsigned char r, unsigned char g, unsigned char b) {
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        const int xx = x + dx, yy = y + dy;
        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
        unsigned char* p = &rgb[(yy * w + xx) * 3];
        p[0] = r, p[1] = g, p[2] = b;
      }
  };
  for (int i = 0; i <= 10; ++i)  // grid lines
    for (int x = m; x < w - m; ++x) {
      const int y = m + (h - 2 * m) * i / 10;
      unsigned char* p = &rgb[(y * w + x) * 3];
      p[0] = p[1] = p[2] = i == 10 ? 0 : 220;
    }
  for (int y = m; y <= h - m; ++y) {
    unsigned char* p = &rgb[(y * w + m) * 3];
    p[0] = p[1] = p[2] = 0;
  }
  const double top = std::max(1e-9, *std::max_element(loss.begin(), loss.end()));
  auto curve = [&](const std::vector<double>& v, double scale, unsigned char r, unsigned char g, unsigned char b) {
    const std::size_t n = v.size();
    for (std::size_t i = 0; i + 1 < std::max<std::size_t>(n, 2); ++i) {
      const double x0 = m + (w - 2.0 * m) * i / std::max<std::size_t>(1, n - 1);
      const double x1 = m + (w - 2.0 * m) * std::min(i + 1, n - 1) / std::max<std::size_t>(1, n - 1);
      const double y0 = h - m - (h - 2.0 * m) * v[i] / scale, y1 = h - m - (h - 2.0 * m) * v[std::min(i + 1, n - 1)] / scale;
      for (int t = 0; t <= 100; ++t)
        put(static_cast<int>(x0 + (x1 - x0) * t / 100), static_cast<int>(y0 + (y1 - y0) * t / 100), r, g, b);
    }
  };
  curve(loss, top, 30, 80, 200);
  curve(acc, 1.0, 20, 160, 60);
  char buf[32];
  for (int i = 0; i <= 10; i += 2) {  // axis ticks: loss on the left, accuracy on the right
    const int y = h - m - (h - 2 * m) * i / 10 - 5;
    std::snprintf(buf, sizeof buf, "%.2f", top * i / 10);
    text(rgb, w, 8, y, buf, 2, 30, 80, 200);
    std::snprintf(buf, sizeof buf, "%d%%", i * 10);
    text(rgb, w, w - m + 8, y, buf, 2, 20, 160, 60);
  }
  for (std::size_t e = 0; e < loss.size(); ++e) {
    const int x = m + static_cast<int>((w - 2.0 * m) * e / std::max<std::size_t>(1, loss.size() - 1));
    std::snprintf(buf, sizeof buf, "%zu", e + 1);
    text(rgb, w, x - 4, h - m + 10, buf, 2, 0, 0, 0);
  }
  text(rgb, w, w / 2 - 40, h - 22, "epoch", 3, 0, 0, 0);
  text(rgb, w, m, 14, "training loss", 3, 30, 80, 200);
  text(rgb, w, w - m - 200, 14, "held-out accuracy", 3, 20, 160, 60);
  write_png(path, w, h, rgb);
}

// ---- the network ---------------------------------------------------------------------

struct Param {
  axle::Buffer w, v, g;  // values, momentum, gradient
  std::size_t n = 0;
};

Param make_param(const axle::Device& dev, axle::Stream& s, std::size_t n, double scale, std::mt19937& rng) {
  Param p;
  p.n = n;
  p.w = dev.alloc<float>(n);
  p.v = dev.alloc<float>(n);
  p.g = dev.alloc<float>(n);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<float> h(n);
  for (auto& x : h) x = scale > 0 ? static_cast<float>(dist(rng)) : 0.0f;
  s.copy(h, p.w.view<float>());
  s.fill(p.v.view<float>(), 0.0f);
  s.synchronize();  // `h` goes out of scope: the copy must be done with it
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t epochs = 8, n_train = 1200, n_test = 400, batch = 40;
  unsigned seed = 1;
  std::string plot_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--epochs") epochs = std::stoul(next());
    else if (a == "--train") n_train = std::stoul(next());
    else if (a == "--test") n_test = std::stoul(next());
    else if (a == "--batch") batch = std::stoul(next());
    else if (a == "--seed") seed = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--plot") plot_path = next();
    else {
      std::fprintf(stderr, "usage: train_cnn [--epochs N] [--train N] [--test N] [--batch N] [--seed S] [--plot FILE]\n");
      return 2;
    }
  }
  if (batch == 0 || n_train < batch || n_test < batch || epochs == 0) {
    std::fprintf(stderr, "train_cnn: need epochs >= 1 and train, test >= batch >= 1\n");
    return 2;
  }
  try {
    axle::Device dev = axle::default_device();
    axle::Stream s = dev.create_stream();
    std::mt19937 rng(seed);
    const Dataset train = make_dataset(n_train, rng), test = make_dataset(n_test, rng);
    std::printf("train_cnn on %s (%s): %zu training and %zu held-out 16x16 images of %d classes (", dev.id().c_str(),
                dev.name().c_str(), n_train, n_test, kClasses);
    for (int c = 0; c < kClasses; ++c) std::printf("%s%s", kClassNames[c], c + 1 < kClasses ? ", " : ")\n");

    // Layers.
    const std::size_t B = batch;
    dnn::Conv2dDesc c1;
    c1.n = B, c1.c = 1, c1.h = c1.w = kSide, c1.k = 16, c1.r = c1.s = 5, c1.stride_h = c1.stride_w = 2;
    c1.pad_top = c1.pad_bottom = c1.pad_left = c1.pad_right = 2;
    c1.layout = dnn::TensorLayout::NHWC;
    dnn::Conv2dDesc c2;
    c2.n = B, c2.c = 16, c2.h = c2.w = c1.out_h(), c2.k = 32, c2.r = c2.s = 3;
    c2.pad_top = c2.pad_bottom = c2.pad_left = c2.pad_right = 1;
    c2.layout = dnn::TensorLayout::NHWC;
    const std::size_t hw2 = c2.out_h() * c2.out_w(), F = c2.k;
    const dnn::Conv2dTypes f32;
    const dnn::Conv2dFusion bias_relu{true, false, dnn::Activation::ReLU};
    dnn::Conv2dPlan c1_fwd(dev, c1, f32, dnn::Direction::Forward, bias_relu);
    dnn::Conv2dPlan c1_bww(dev, c1, f32, dnn::Direction::BackwardWeights, dnn::Conv2dFusion{true, false, {}});
    dnn::Conv2dPlan c2_fwd(dev, c2, f32, dnn::Direction::Forward, bias_relu);
    dnn::Conv2dPlan c2_bwd(dev, c2, f32, dnn::Direction::BackwardData);
    dnn::Conv2dPlan c2_bww(dev, c2, f32, dnn::Direction::BackwardWeights, dnn::Conv2dFusion{true, false, {}});
    std::printf("  conv1: %s\n  conv2: %s\n", c1_fwd.describe().c_str(), c2_fwd.describe().c_str());

    // Parameters (He initialisation) and activations.
    Param w1 = make_param(dev, s, c1.w_elems(), std::sqrt(2.0 / 25), rng), b1 = make_param(dev, s, c1.k, 0, rng);
    Param w2 = make_param(dev, s, c2.w_elems(), std::sqrt(2.0 / (9 * 16)), rng), b2 = make_param(dev, s, c2.k, 0, rng);
    Param wf = make_param(dev, s, kClasses * F, std::sqrt(1.0 / F), rng), bf = make_param(dev, s, kClasses, 0, rng);
    Param* params[] = {&w1, &b1, &w2, &b2, &wf, &bf};
    axle::Buffer x = dev.alloc<float>(c1.x_elems()), a1 = dev.alloc<float>(c1.y_elems()),
                 a2 = dev.alloc<float>(c2.y_elems()), feat = dev.alloc<float>(B * F), logits = dev.alloc<float>(B * kClasses),
                 dlogits = dev.alloc<float>(B * kClasses), dfeat = dev.alloc<float>(B * F),
                 da2 = dev.alloc<float>(c2.y_elems()), da1 = dev.alloc<float>(c1.y_elems()), loss = dev.alloc<float>(B),
                 label = dev.alloc<int>(B), correct = dev.alloc<int>(B);
    axle::Program prog = dev.build(axle::Source::portable(std::string(axle::embedded::sample_kernel("train_cnn.cl")), "train_cnn.cl"));
    axle::Kernel k_gap = prog.kernel("gap_forward"), k_gap_b = prog.kernel("gap_relu_backward"),
                 k_relu_b = prog.kernel("relu_backward"), k_xent = prog.kernel("softmax_xent"),
                 k_colsum = prog.kernel("column_sums"), k_sgd = prog.kernel("sgd_momentum");
    namespace blas = axle::blas;
    const auto R = axle::Layout::RowMajor;

    auto forward = [&]() {
      dnn::Conv2dArgs a;
      a.x = x.view<float>(), a.w = w1.w.view<float>(), a.y = a1.view<float>(), a.bias = b1.w.view<float>();
      c1_fwd.run(s, a);
      a.x = a1.view<float>(), a.w = w2.w.view<float>(), a.y = a2.view<float>(), a.bias = b2.w.view<float>();
      c2_fwd.run(s, a);
      s.launch(k_gap, axle::Range(B * F), axle::Range(), a2.view<float>(), feat.view<float>(), int(B), int(hw2), int(F));
      blas::gemm(s, R, axle::Op::N, axle::Op::T, B, kClasses, F, 1.0, feat.view<float>(), F, wf.w.view<float>(), F, 0.0,
                 logits.view<float>(), kClasses, blas::Epilogue::with_bias(blas::BiasMode::PerCol, bf.w.view<float>()));
      s.launch(k_xent, axle::Range(B), axle::Range(), logits.view<float>(), label.view<int>(), dlogits.view<float>(),
               loss.view<float>(), correct.view<int>(), int(B), kClasses);
    };
    auto backward_and_update = [&](float lr, float mu) {
      blas::gemm(s, R, axle::Op::T, axle::Op::N, kClasses, F, B, 1.0, dlogits.view<float>(), kClasses, feat.view<float>(),
                 F, 0.0, wf.g.view<float>(), F);
      s.launch(k_colsum, axle::Range(kClasses), axle::Range(), dlogits.view<float>(), bf.g.view<float>(), int(B), kClasses);
      blas::gemm(s, R, axle::Op::N, axle::Op::N, B, F, kClasses, 1.0, dlogits.view<float>(), kClasses, wf.w.view<float>(),
                 F, 0.0, dfeat.view<float>(), F);
      s.launch(k_gap_b, axle::Range(c2.y_elems()), axle::Range(), a2.view<float>(), dfeat.view<float>(), da2.view<float>(),
               int(B), int(hw2), int(F));
      dnn::Conv2dArgs g;
      g.x = a1.view<float>(), g.y = da2.view<float>(), g.w = w2.g.view<float>(), g.bias = b2.g.view<float>();
      c2_bww.run(s, g);
      dnn::Conv2dArgs d;
      d.x = da1.view<float>(), d.y = da2.view<float>(), d.w = w2.w.view<float>();
      c2_bwd.run(s, d);
      s.launch(k_relu_b, axle::Range(c1.y_elems()), axle::Range(), a1.view<float>(), da1.view<float>(), int(c1.y_elems()));
      g.x = x.view<float>(), g.y = da1.view<float>(), g.w = w1.g.view<float>(), g.bias = b1.g.view<float>();
      c1_bww.run(s, g);
      for (Param* p : params)
        s.launch(k_sgd, axle::Range(p->n), axle::Range(), p->w.view<float>(), p->v.view<float>(), p->g.view<float>(), lr,
                 mu, int(p->n));
    };
    auto load = [&](const Dataset& d, std::size_t first) {
      s.copy(d.images.data() + first * kSide * kSide, B * kSide * kSide, x.view<float>());
      s.copy(d.labels.data() + first, B, label.view<int>());
    };
    std::vector<float> hloss(B);
    std::vector<int> hcorrect(B);
    auto evaluate = [&](const Dataset& d) {
      std::size_t right = 0, seen = 0;
      for (std::size_t first = 0; first + B <= d.labels.size(); first += B) {
        load(d, first);
        forward();
        s.copy(correct, hcorrect);
        s.synchronize();
        for (int c : hcorrect) right += static_cast<std::size_t>(c);
        seen += B;
      }
      return static_cast<double>(right) / static_cast<double>(seen);
    };

    std::vector<double> losses, accs;
    const auto t0 = std::chrono::steady_clock::now();
    double step_seconds = 0, forward_seconds = 0;
    std::size_t steps = 0;
    for (std::size_t e = 0; e < epochs; ++e) {
      const float lr = e < epochs * 2 / 3 ? 0.05f : 0.01f;
      double sum = 0;
      std::size_t batches = 0;
      for (std::size_t first = 0; first + B <= n_train; first += B) {
        load(train, first);
        s.synchronize();
        const auto a = std::chrono::steady_clock::now();
        forward();
        backward_and_update(lr, 0.9f);
        s.copy(loss, hloss);
        s.synchronize();
        step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
        ++steps;
        for (float l : hloss) sum += l;
        ++batches;
      }
      const double mean = sum / static_cast<double>(batches * B);
      const double acc = evaluate(test);
      losses.push_back(mean);
      accs.push_back(acc);
      std::printf("  epoch %2zu: training loss %.4f, held-out accuracy %.1f%%\n", e + 1, mean, 100 * acc);
      std::fflush(stdout);
    }
    {  // forward-only time of one step, for comparison
      load(train, 0);
      s.synchronize();
      const int reps = 10;
      const auto a = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) forward();
      s.synchronize();
      forward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count() / reps;
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double final_acc = accs.back();
    const bool fell = losses.back() < losses.front();
    const bool ok = fell && final_acc >= 0.90;
    std::printf("  one training step (batch %zu): %.2f ms; forward only: %.2f ms; %.1f s in all\n", B,
                1e3 * step_seconds / steps, 1e3 * forward_seconds, total);
    std::printf("train_cnn: loss %.4f -> %.4f (%s), held-out accuracy %.1f%%: %s\n", losses.front(), losses.back(),
                fell ? "fell" : "did not fall", 100 * final_acc, ok ? "learned" : "FAILED (needs 90%)");
    if (!plot_path.empty()) {
      plot(plot_path, losses, accs);
      std::printf("  wrote %s (blue: training loss, green: held-out accuracy)\n", plot_path.c_str());
    }
    return ok ? 0 : 1;
  } catch (const axle::Error& e) {
    std::fprintf(stderr, "train_cnn: %s\n", e.what());
    return 1;
  }
}
