// The direct algorithm of the backward passes (kernels in kernels/src/cl/conv_bwd.cl):
// backward data (dx from dy and w) and backward weights (dw from x and dy, and the
// bias gradient db when the plan fuses a bias). Deterministic: one work-item per
// element written, a fixed summation order.
#include <algorithm>
#include <type_traits>
#include <string_view>

#include "axle/blas.hpp"
#include "conv_backward.hpp"

namespace axle::dnn::detail {
namespace {

// db = alpha * (sum of dy over N, P, Q) + beta * db: conv_bwd.cl's axle_conv_direct_bwd_bias,
// one work-item per filter.
void launch_bias_gradient(Stream& stream, const Kernel& kernel, const ConvProblem& pb, const Conv2dArgs& args) {
  const Conv2dDesc& d = pb.desc;
  std::vector<KernelArg> a{KernelArg::buffer_arg(args.bias.buffer(), 0), u64_arg(args.bias.offset()),
                           KernelArg::buffer_arg(*args.y.buffer, 0), u64_arg(args.y.offset), i32_arg(d.n), i32_arg(d.k),
                           i32_arg(pb.p), i32_arg(pb.q), KernelArg::scalar(args.alpha), KernelArg::scalar(args.beta)};
  launch_1d(stream, kernel, d.k, a);
}

class DirectBackwardAlgo final : public ConvAlgo {
 public:
  explicit DirectBackwardAlgo(const ConvProblem& pb) : pb_(pb) {
    Program prog = build_conv_program(pb, "conv_bwd.cl");
    if (pb.direction == Direction::BackwardData) {
      main_ = prog.kernel("axle_conv_direct_bwd_data");
    } else {
      main_ = prog.kernel("axle_conv_direct_bwd_weights");
      if (pb.fusion.bias) bias_ = prog.kernel("axle_conv_direct_bwd_bias");
    }
  }
  std::size_t workspace_bytes() const override { return 0; }
  std::string params() const override {
    return pb_.direction == Direction::BackwardData ? "one work-item per dx element"
                                                     : std::string("one work-item per dw element") +
                                                           (pb_.fusion.bias ? ", one per db element" : "");
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer*, std::size_t) const override {
    const Conv2dDesc& d = pb_.desc;
    auto geometry = [&](std::vector<KernelArg>& a) {
      for (std::size_t v : {d.n, d.c, d.h, d.w, d.k, d.r, d.s, pb_.p, pb_.q, d.stride_h, d.stride_w, d.pad_top,
                            d.pad_left, d.dilation_h, d.dilation_w, d.groups})
        a.push_back(i32_arg(v));
    };
    if (pb_.direction == Direction::BackwardData) {
      const std::size_t total = d.x_elems(), chunk = std::size_t{1} << 30;
      for (std::size_t base = 0; base < total; base += chunk) {
        std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64_arg(args.x.offset),
                                 KernelArg::buffer_arg(*args.w.buffer, 0), u64_arg(args.w.offset),
                                 KernelArg::buffer_arg(*args.y.buffer, 0), u64_arg(args.y.offset)};
        geometry(a);
        a.push_back(KernelArg::scalar(args.alpha));
        a.push_back(KernelArg::scalar(args.beta));
        a.push_back(u64_arg(base));
        a.push_back(u64_arg(total));
        launch_1d(stream, main_, std::min(chunk, total - base), a);
      }
      return;
    }
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64_arg(args.x.offset),
                               KernelArg::buffer_arg(*args.w.buffer, 0), u64_arg(args.w.offset),
                               KernelArg::buffer_arg(*args.y.buffer, 0), u64_arg(args.y.offset)};
      geometry(a);
      a.push_back(KernelArg::scalar(args.alpha));
      a.push_back(KernelArg::scalar(args.beta));
      a.push_back(u64_arg(d.w_elems()));
      launch_1d(stream, main_, d.w_elems(), a);
    }
    if (pb_.fusion.bias) launch_bias_gradient(stream, bias_, pb_, args);
  }

 private:
  ConvProblem pb_;
  Kernel main_, bias_;
};

// 1x1 stride-1 layers: both backward passes as GEMMs (one per group; NCHW weight and
// bias gradients sum over the batch with beta = 1 after the first image, so the
// results stay deterministic). The bias gradient multiplies dy by a vector of ones in
// the workspace.
//
// Strided backward data: the GEMMs write dy w for the pixels the layer reads into the
// workspace (f32, N P Q x C), and one kernel spreads them into dx with no gradient
// elsewhere: no multiplications by the zeros a dilated dy would hold.
class Gemm1x1BackwardAlgo final : public ConvAlgo {
 public:
  explicit Gemm1x1BackwardAlgo(const ConvProblem& pb) : pb_(pb) {
    const Conv2dDesc& d = pb.desc;
    strided_ = pb.direction == Direction::BackwardData && (d.stride_h != 1 || d.stride_w != 1);
    if (strided_) scatter_ = build_conv_program(pb, "conv_bwd.cl").kernel("axle_conv_scatter_strided_1x1");
  }
  std::size_t workspace_bytes() const override {
    const Conv2dDesc& d = pb_.desc;
    if (strided_) return d.n * pb_.p * pb_.q * d.c * sizeof(float);
    if (pb_.direction != Direction::BackwardWeights || !pb_.fusion.bias) return 0;
    return (d.layout == TensorLayout::NHWC ? d.n * d.h * d.w : d.h * d.w) * sizeof(float);
  }
  std::string params() const override {
    return std::to_string(pb_.desc.groups) + " GEMM(s) per " +
           (pb_.desc.layout == TensorLayout::NHWC ? std::string("call") : std::string("image")) +
           (strided_ ? ", spread into dx by the stride" : "");
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const Conv2dDesc& d = pb_.desc;
    if (strided_) {
      run_strided_data(stream, args, *ws, ws_off);
      return;
    }
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, hw = d.h * d.w, m = d.n * hw;
    const bool nhwc = d.layout == TensorLayout::NHWC;
    const bool data = pb_.direction == Direction::BackwardData;
    with_types(pb_.types.x, pb_.types.y, [&](auto xt, auto yt) {
      using TX = decltype(xt);
      using TY = decltype(yt);
      const BufferView<TX> x = typed<TX>(args.x), w = typed<TX>(args.w);
      const BufferView<TY> dy = typed<TY>(args.y);
      for (std::size_t g = 0; g < d.groups; ++g) {
        if (data && nhwc) {  // dx[M, C] = dy[M, K] w[K, C]
          blas::gemm(stream, Layout::RowMajor, Op::N, Op::N, m, cg, kg, args.alpha, dy.sub(g * kg), d.k,
                     w.sub(g * kg * cg), cg, args.beta, x.sub(g * cg), d.c);
        } else if (data) {  // dx[n][C, HW] = w^T[C, K] dy[n][K, HW]
          blas::gemm_strided_batched(stream, Layout::RowMajor, Op::T, Op::N, cg, hw, kg, args.alpha,
                                     w.sub(g * kg * cg), cg, 0, dy.sub(g * kg * hw), hw, d.k * hw, args.beta,
                                     x.sub(g * cg * hw), hw, d.c * hw, d.n);
        } else if (nhwc) {  // dw[K, C] = dy^T[K, M] x[M, C]
          blas::gemm(stream, Layout::RowMajor, Op::T, Op::N, kg, cg, m, args.alpha, dy.sub(g * kg), d.k,
                     x.sub(g * cg), d.c, args.beta, w.sub(g * kg * cg), cg);
        } else {  // dw[K, C] = sum_n dy[n][K, HW] x[n][C, HW]^T
          for (std::size_t n = 0; n < d.n; ++n)
            blas::gemm(stream, Layout::RowMajor, Op::N, Op::T, kg, cg, hw, args.alpha,
                       dy.sub((n * d.k + g * kg) * hw), hw, x.sub((n * d.c + g * cg) * hw), hw,
                       n == 0 ? args.beta : 1.0f, w.sub(g * kg * cg), cg);
        }
      }
      if (!data && pb_.fusion.bias) {
        const std::size_t len = nhwc ? m : hw;
        const BufferView<float> ones(*ws, ws_off / sizeof(float), len);
        stream.fill(ones, 1.0f);
        if (nhwc) {  // db[K] = dy^T[K, M] 1[M]
          blas::gemm(stream, Layout::RowMajor, Op::T, Op::N, d.k, 1, m, args.alpha, dy, d.k, ones, 1, args.beta,
                     args.bias.sub(0, d.k), 1);
        } else {
          for (std::size_t n = 0; n < d.n; ++n)
            blas::gemm(stream, Layout::RowMajor, Op::N, Op::N, d.k, 1, hw, args.alpha, dy.sub(n * d.k * hw), hw, ones,
                       1, n == 0 ? args.beta : 1.0f, args.bias.sub(0, d.k), 1);
        }
      }
    });
  }

 private:
  void run_strided_data(Stream& stream, const Conv2dArgs& args, const Buffer& ws, std::size_t ws_off) const {
    const Conv2dDesc& d = pb_.desc;
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, pq = pb_.p * pb_.q, m = d.n * pq;
    const bool nhwc = d.layout == TensorLayout::NHWC;
    const std::size_t g_off = ws_off / sizeof(float);
    const BufferView<float> gbuf(ws, g_off, m * d.c);
    with_types(pb_.types.x, pb_.types.y, [&](auto xt, auto yt) {
      using TX = decltype(xt);
      using TY = decltype(yt);
      const BufferView<TX> w = typed<TX>(args.w);
      const BufferView<TY> dy = typed<TY>(args.y);
      for (std::size_t grp = 0; grp < d.groups; ++grp) {
        if (nhwc)  // g[M, C] = dy[M, K] w[K, C]
          blas::gemm(stream, Layout::RowMajor, Op::N, Op::N, m, cg, kg, 1.0f, dy.sub(grp * kg), d.k,
                     w.sub(grp * kg * cg), cg, 0.0f, gbuf.sub(grp * cg), d.c);
        else  // g[n][C, PQ] = w^T[C, K] dy[n][K, PQ]
          blas::gemm_strided_batched(stream, Layout::RowMajor, Op::T, Op::N, cg, pq, kg, 1.0f,
                                     w.sub(grp * kg * cg), cg, 0, dy.sub(grp * kg * pq), pq, d.k * pq, 0.0f,
                                     gbuf.sub(grp * cg * pq), pq, d.c * pq, d.n);
      }
    });
    std::vector<KernelArg> a{KernelArg::buffer_arg(ws, 0), u64_arg(g_off), KernelArg::buffer_arg(*args.x.buffer, 0),
                             u64_arg(args.x.offset)};
    for (std::size_t v : {d.n, d.c, d.h, d.w, pb_.p, pb_.q, d.stride_h, d.stride_w}) a.push_back(i32_arg(v));
    a.push_back(KernelArg::scalar(args.alpha));
    a.push_back(KernelArg::scalar(args.beta));
    launch_1d(stream, scatter_, nhwc ? d.n * d.h * d.w : d.n * d.c * d.h, a);
  }

  ConvProblem pb_;
  bool strided_ = false;
  Kernel scatter_;
};

// The forward problem that computes dx: a stride-1 convolution of dy (K channels,
// P x Q) with the flipped, channel-transposed filters and the complementary padding.
ConvProblem forward_of_bwd_data(const ConvProblem& pb) {
  ConvProblem f = pb;
  const Conv2dDesc& d = pb.desc;
  f.direction = Direction::Forward;
  f.fusion = {};
  f.desc.c = d.k, f.desc.k = d.c, f.desc.h = pb.p, f.desc.w = pb.q;
  f.desc.pad_top = d.r - 1 - d.pad_top, f.desc.pad_bottom = d.r - 1 - d.pad_bottom;
  f.desc.pad_left = d.s - 1 - d.pad_left, f.desc.pad_right = d.s - 1 - d.pad_right;
  f.types = Conv2dTypes{pb.types.y, pb.types.x, pb.types.x};
  f.p = f.desc.out_h();
  f.q = f.desc.out_w();
  return f;
}

// Backward data of a stride-1 layer as the forward algorithm `algo` over dy: the filters
// are flipped and transposed into the workspace, then the forward kernels run with no
// col2im buffer and no multiplications by inserted zeros.
class BwdDataViaForward final : public ConvAlgo {
 public:
  BwdDataViaForward(const ConvProblem& pb, Algorithm algo) : pb_(pb), fwd_(forward_of_bwd_data(pb)), algo_(algo) {
    fwd_.w_transposed = true;
    in_place_ = reads_filters_transposed(algo, fwd_);
    fwd_.w_transposed = in_place_;
    inner_ = make_algo(algo, fwd_);
    if (!in_place_) {
      flip_ = build_conv_program(pb, "conv_bwd.cl").kernel("axle_conv_flip_filters");
      wt_bytes_ = (pb.desc.w_elems() * size_of(pb.types.x) + 255) / 256 * 256;
    }
  }
  std::size_t workspace_bytes() const override { return wt_bytes_ + inner_->workspace_bytes(); }
  std::string params() const override {
    const std::string inner = inner_->params();
    return std::string("the forward ") + to_string(algo_) + (inner.empty() ? "" : " (" + inner + ")") +
           (in_place_ ? " over dy" : " over dy with flipped filters");
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    if (in_place_) {  // the kernel reads w flipped and transposed itself
      Conv2dArgs f;
      f.x = args.y;  // dy
      f.w = args.w;
      f.y = args.x;  // dx
      f.alpha = args.alpha, f.beta = args.beta;
      inner_->run(stream, f, ws, ws_off);
      return;
    }
    const Conv2dDesc& d = pb_.desc;
    const std::size_t es = size_of(pb_.types.x), n = d.w_elems();
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.w.buffer, 0),
                               KernelArg::scalar(static_cast<std::uint64_t>(args.w.offset)),
                               KernelArg::buffer_arg(*ws, 0),
                               KernelArg::scalar(static_cast<std::uint64_t>(ws_off / es))};
      for (std::size_t v : {d.k, d.c, d.r, d.s, d.groups}) a.push_back(KernelArg::scalar(static_cast<std::int32_t>(v)));
      const std::size_t cg = d.c / d.groups, kg = d.k / d.groups;
      launch_1d(stream, flip_,
                d.layout == TensorLayout::NHWC ? d.groups * d.r * d.s * div_up(kg, std::size_t{16}) * div_up(cg, std::size_t{16})
                                               : d.c * kg,
                a);
    }
    Conv2dArgs f;
    f.x = args.y;  // dy
    f.w.buffer = ws, f.w.offset = ws_off / es, f.w.size = n, f.w.type = pb_.types.x;
    f.y = args.x;  // dx
    f.alpha = args.alpha, f.beta = args.beta;
    inner_->run(stream, f, ws, ws_off + wt_bytes_);
  }

 private:
  ConvProblem pb_, fwd_;
  Algorithm algo_;
  bool in_place_ = false;  // the inner kernel reads w flipped and transposed (no flip pass)
  std::unique_ptr<ConvAlgo> inner_;
  Kernel flip_;
  std::size_t wt_bytes_ = 0;
};

// The weight gradient tap by tap: for every filter tap and group, the input pixels the
// tap reads are gathered into the workspace (xs, N P Q x C/groups: f32, or x's 16-bit
// type when dy has it too, so that the GEMM runs on 16-bit operands, on tensor cores on
// NVIDIA) and dw_tap = dy^T xs is one GEMM (NHWC dy) or one per image summed with
// beta = 1 (NCHW), accumulated in f32; a last kernel applies alpha and beta and writes
// dw in the filter layout. Deterministic: GEMMs split k in a fixed way. db comes from
// the direct kernel.
class TapGemmWeightsAlgo final : public ConvAlgo {
 public:
  explicit TapGemmWeightsAlgo(const ConvProblem& pb)
      : pb_(pb), native_(pb.types.x != DataType::F32 && pb.types.x == pb.types.y) {
    BuildOptions opt;
    opt.define("XS_NATIVE", native_ ? 1 : 0);
    Program prog = build_conv_program(pb, "conv_bwd.cl", opt);
    gather_ = prog.kernel("axle_conv_gather_tap");
    finish_ = prog.kernel("axle_conv_finish_dw");
    if (pb.fusion.bias) bias_ = prog.kernel("axle_conv_direct_bwd_bias");
    const Conv2dDesc& d = pb.desc;
    // xs in floats' room (16-bit elements take half of it), rounded to 64 floats.
    const std::size_t xs_elems = d.n * pb.p * pb.q * (d.c / d.groups);
    xs_floats_ = ((native_ ? div_up(xs_elems, std::size_t{2}) : xs_elems) + 63) / 64 * 64;
    g_floats_ = (d.r * d.s * d.k * (d.c / d.groups) + 63) / 64 * 64;
  }
  std::size_t workspace_bytes() const override { return (xs_floats_ + g_floats_) * sizeof(float); }
  std::string params() const override {
    return std::to_string(pb_.desc.r * pb_.desc.s * pb_.desc.groups) + " tap gathers and GEMMs" +
           (native_ ? std::string(" on ") + to_string(pb_.types.x) + " operands" : std::string(" on f32 operands"));
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    with_types(pb_.types.x, pb_.types.y, [&](auto xt, auto yt) {
      using TX = decltype(xt);
      using TY = decltype(yt);
      if constexpr (std::is_same_v<TX, TY> && !std::is_same_v<TX, float>) {
        if (native_) return run_as<TY, TX>(stream, args, ws, ws_off);
      }
      run_as<TY, float>(stream, args, ws, ws_off);
    });
  }

 private:
  // TS: xs's element type.
  template <typename TY, typename TS>
  void run_as(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const {
    const Conv2dDesc& d = pb_.desc;
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, pq = pb_.p * pb_.q, npq = d.n * pq;
    const std::size_t base = ws_off / sizeof(float), xs_off = base * sizeof(float) / sizeof(TS),
                      g_off = base + xs_floats_;
    const BufferView<float> all(*ws, 0, ws->size_bytes() / sizeof(float));
    const BufferView<TS> xs_all(*ws, 0, ws->size_bytes() / sizeof(TS));
    {
      const BufferView<TY> dy = typed<TY>(args.y);
      for (std::size_t grp = 0; grp < d.groups; ++grp)
        for (std::size_t r = 0; r < d.r; ++r)
          for (std::size_t s = 0; s < d.s; ++s) {
            std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64_arg(args.x.offset),
                                     KernelArg::buffer_arg(*ws, 0), u64_arg(xs_off)};
            for (std::size_t v : {d.n, d.c, d.h, d.w, pb_.p, pb_.q, d.stride_h, d.stride_w, d.pad_top, d.pad_left,
                                  d.dilation_h, d.dilation_w, r, s, grp * cg, cg})
              a.push_back(i32_arg(v));
            launch_1d(stream, gather_, npq * cg, a);
            const BufferView<TS> xs = xs_all.sub(xs_off, npq * cg);
            const BufferView<float> g = all.sub(g_off + ((grp * d.r + r) * d.s + s) * kg * cg, kg * cg);
            if (d.layout == TensorLayout::NHWC) {  // g[K, C] = dy^T[K, NPQ] xs[NPQ, C]
              blas::gemm(stream, Layout::RowMajor, Op::T, Op::N, kg, cg, npq, 1.0, dy.sub(grp * kg), d.k, xs, cg,
                         0.0, g, cg);
            } else {  // sum over images of dy[n][K, PQ] xs[n][PQ, C]
              for (std::size_t n = 0; n < d.n; ++n)
                blas::gemm(stream, Layout::RowMajor, Op::N, Op::N, kg, cg, pq, 1.0,
                           dy.sub((n * d.k + grp * kg) * pq), pq, xs.sub(n * pq * cg), cg, n == 0 ? 0.0 : 1.0, g,
                           cg);
            }
          }
    }
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*ws, 0), u64_arg(g_off), KernelArg::buffer_arg(*args.w.buffer, 0),
                               u64_arg(args.w.offset)};
      for (std::size_t v : {d.k, d.c, d.r, d.s, d.groups}) a.push_back(i32_arg(v));
      a.push_back(KernelArg::scalar(args.alpha));
      a.push_back(KernelArg::scalar(args.beta));
      launch_1d(stream, finish_, d.w_elems(), a);
    }
    if (pb_.fusion.bias) launch_bias_gradient(stream, bias_, pb_, args);
  }

  ConvProblem pb_;
  bool native_ = false;  // xs in x's 16-bit type
  Kernel gather_, finish_, bias_;
  std::size_t xs_floats_ = 0, g_floats_ = 0;
};


// The weight gradient as an implicit GEMM over x and dy (kernels in conv_bwdw.cl): NHWC
// f32 x and dy are read in place (a packed f32 copy otherwise), each work-item sums a
// register block of MR filters x NR channels of one tap over a split of the output rows,
// and a last kernel adds the splits' partial sums in a fixed order (deterministic).
// db comes from the direct kernel.
class IgemmWeightsAlgo final : public ConvAlgo {
 public:
  explicit IgemmWeightsAlgo(const ConvProblem& pb) : pb_(pb) {
    const Conv2dDesc& d = pb.desc;
    const std::size_t cg = d.c / d.groups, kg = d.k / d.groups, taps = d.r * d.s;
    vw_ = pb.device.info().preferred_vector_width_float >= 16 ? 16 : 8;
    nv_ = std::min<std::size_t>(vw_ == 16 ? 4 : 2, div_up(cg, vw_));
    const std::size_t nr = vw_ * nv_;
    cgp_ = round_up(cg, nr);
    const std::size_t kb_n = div_up(kg, kMr);
    kgp_ = kb_n * kMr;
    // Work-items: taps x channel blocks x runs of filter blocks x groups x row splits.
    // Up to 8 per compute unit come from shorter runs of filter blocks (no fewer than
    // kMinKb a run: each run reads x again), then from splitting the rows (each split's
    // sums then pass through the workspace and the reduction).
    const std::size_t units = std::max<std::size_t>(1, pb.device.info().compute_units);
    const std::size_t target = 8 * units;
    const std::size_t base_items = taps * (cgp_ / nr) * d.groups;
    kgroups_ = std::max(div_up(kb_n, kMaxKb),
                        std::min({div_up(target, base_items), std::max<std::size_t>(1, kb_n / kMinKb), kMaxGrid}));
    kb_ = div_up(kb_n, kgroups_);
    kgroups_ = div_up(kb_n, kb_);
    const std::size_t rows = d.n * pb.p;
    chunk_rows_ = std::max<std::size_t>(1, kChunkPixels / pb.q);
    const std::size_t items = base_items * kgroups_;
    std::size_t splits = std::clamp<std::size_t>(div_up(target, items), 1, div_up(rows, chunk_rows_));
    splits = std::min(splits, std::max<std::size_t>(1, kMaxGrid / d.groups));
    split_rows_ = div_up(rows, splits);
    splits_ = div_up(rows, split_rows_);
    // In place: NHWC f32 x with whole channel blocks per group, NHWC f32 dy of one group.
    pack_x_ = !(d.layout == TensorLayout::NHWC && pb.types.x == DataType::F32 && cg % nr == 0);
    direct_ = splits_ == 1 && d.layout == TensorLayout::NHWC && pb.types.x == DataType::F32 && cg % nr == 0;
    pack_dy_ = !(d.layout == TensorLayout::NHWC && pb.types.y == DataType::F32 && d.groups == 1);
    BuildOptions opt;
    opt.define("MR", static_cast<int>(kMr)).define("VW", static_cast<int>(vw_)).define("NV", static_cast<int>(nv_));
    opt.define("KB", static_cast<int>(kb_));
    Program prog = build_conv_program(pb, "conv_bwdw.cl", opt);
    partial_ = prog.kernel("axle_conv_bwdw_partial");
    reduce_ = prog.kernel("axle_conv_bwdw_reduce");
    if (pack_x_) pack_x_k_ = prog.kernel("axle_conv_bwdw_pack_x");
    if (pack_dy_) pack_dy_k_ = prog.kernel("axle_conv_bwdw_pack_dy");
    if (pb.fusion.bias) bias_ = build_conv_program(pb, "conv_bwd.cl").kernel("axle_conv_direct_bwd_bias");
    xp_floats_ = pack_x_ ? round_up(d.groups * d.n * d.h * d.w * cgp_, 16) : 0;
    dyp_floats_ = pack_dy_ ? round_up(d.groups * kgp_ * d.n * pb.p * pb.q, 16) : 0;
    part_floats_ = direct_ ? 0 : round_up(d.groups * splits_ * taps * kgp_ * cgp_, 16);
  }
  std::size_t workspace_bytes() const override {
    return kAlign + (xp_floats_ + dyp_floats_ + part_floats_) * sizeof(float);
  }
  std::string params() const override {
    return "MR=" + std::to_string(kMr) + " VW=" + std::to_string(vw_) + " NV=" + std::to_string(nv_) +
           " KB=" + std::to_string(kb_) + ", " + std::to_string(splits_) + " split(s) of " +
           std::to_string(split_rows_) + " rows in chunks of " + std::to_string(chunk_rows_) +
           (pack_x_ || pack_dy_ ? std::string(", ") + (pack_x_ ? "x" : "") + (pack_x_ && pack_dy_ ? " and " : "") +
                                      (pack_dy_ ? "dy" : "") + " packed"
                                : std::string()) +
           (direct_ ? ", dw written in place" : ", partial sums reduced in order");
  }
  void run(Stream& stream, const Conv2dArgs& args, const Buffer* ws, std::size_t ws_off) const override {
    const Conv2dDesc& d = pb_.desc;
    const std::size_t cg = d.c / d.groups, taps = d.r * d.s, nr = vw_ * nv_;
    const std::size_t base = div_up(ws_off, kAlign) * (kAlign / sizeof(float));
    const std::size_t xp_off = base, dyp_off = xp_off + xp_floats_, part_off = dyp_off + dyp_floats_;
    const std::size_t nhw = d.n * d.h * d.w, npq = d.n * pb_.p * pb_.q, kg = d.k / d.groups;
    const Buffer* xbuf = args.x.buffer;
    std::size_t x_off = args.x.offset, x_grp = cg, x_cb = nr, x_pix = d.c;
    if (pack_x_) {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.x.buffer, 0), u64_arg(args.x.offset),
                               KernelArg::buffer_arg(*ws, 0), u64_arg(xp_off)};
      for (std::size_t v : {d.n, d.c, d.h, d.w, d.groups, cgp_}) a.push_back(i32_arg(v));
      launch_1d(stream, pack_x_k_, d.groups * nhw, a);
      xbuf = ws, x_off = xp_off, x_grp = nhw * cgp_, x_cb = nhw * nr, x_pix = nr;
    }
    const Buffer* dybuf = args.y.buffer;
    std::size_t dy_off = args.y.offset, dy_grp = kg, dy_kb = 0, dy_pix = d.k, dy_kstep = kMr, dy_klim = kg - 1;
    if (pack_dy_) {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*args.y.buffer, 0), u64_arg(args.y.offset),
                               KernelArg::buffer_arg(*ws, 0), u64_arg(dyp_off)};
      for (std::size_t v : {d.n, d.k, pb_.p, pb_.q, d.groups}) a.push_back(i32_arg(v));
      launch_1d(stream, pack_dy_k_, d.groups * npq, a);
      dybuf = ws, dy_off = dyp_off, dy_grp = kgp_ * npq, dy_kb = kMr * npq, dy_pix = kMr, dy_kstep = 0,
      dy_klim = kMr - 1;
    }
    {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*xbuf, 0), u64_arg(x_off), u64_arg(x_grp), u64_arg(x_cb),
                               i32_arg(x_pix), KernelArg::buffer_arg(*dybuf, 0), u64_arg(dy_off), u64_arg(dy_grp),
                               u64_arg(dy_kb), i32_arg(dy_pix), i32_arg(dy_kstep), i32_arg(dy_klim),
                               KernelArg::buffer_arg(*ws, 0), u64_arg(part_off)};
      for (std::size_t v : {d.n, d.c, d.h, d.w, d.k, d.r, d.s, pb_.p, pb_.q, d.stride_h, d.stride_w, d.pad_top,
                            d.pad_left, d.dilation_h, d.dilation_w, d.groups, cgp_, kgp_, splits_, split_rows_,
                            chunk_rows_})
        a.push_back(i32_arg(v));
      a.push_back(KernelArg::buffer_arg(*args.w.buffer, 0));
      a.push_back(u64_arg(args.w.offset));
      a.push_back(i32_arg(direct_ ? 1 : 0));
      a.push_back(KernelArg::scalar(args.alpha));
      a.push_back(KernelArg::scalar(args.beta));
      stream.launch_args(partial_, Range(taps * (cgp_ / nr), kgroups_, d.groups * splits_), Range(1, 1, 1), a);
    }
    if (!direct_) {
      std::vector<KernelArg> a{KernelArg::buffer_arg(*ws, 0), u64_arg(part_off), KernelArg::buffer_arg(*args.w.buffer, 0),
                               u64_arg(args.w.offset)};
      for (std::size_t v : {d.k, d.c, d.r, d.s, d.groups, kgp_, cgp_, splits_}) a.push_back(i32_arg(v));
      a.push_back(KernelArg::scalar(args.alpha));
      a.push_back(KernelArg::scalar(args.beta));
      launch_1d(stream, reduce_, d.w_elems(), a);
    }
    if (pb_.fusion.bias) launch_bias_gradient(stream, bias_, pb_, args);
  }

 private:
  static constexpr std::size_t kAlign = 64;
  static constexpr std::size_t kMr = 6;            // MR: filters per register block
  static constexpr std::size_t kMaxKb = 12;        // filter blocks a work-item keeps in private memory
  static constexpr std::size_t kMinKb = 4;         // filter blocks per work-item before rows are split
  static constexpr std::size_t kChunkPixels = 64;  // output pixels per chunk (x and dy in L1/L2)
  static constexpr std::size_t kMaxGrid = 65535;   // CUDA's grid y and z limits
  ConvProblem pb_;
  std::size_t vw_ = 16, nv_ = 1, cgp_ = 0, kgp_ = 0, kb_ = 1, kgroups_ = 1, chunk_rows_ = 1, split_rows_ = 1,
              splits_ = 1;
  bool pack_x_ = false, pack_dy_ = false, direct_ = false;
  Kernel partial_, reduce_, pack_x_k_, pack_dy_k_, bias_;
  std::size_t xp_floats_ = 0, dyp_floats_ = 0, part_floats_ = 0;
};

}  // namespace

std::string igemm_weights_reason(const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (d.groups > 65535) return "more than 65535 groups";
  if (div_up(div_up(d.k / d.groups, std::size_t{6}), std::size_t{12}) > 65535)
    return "more than 65535 runs of filter blocks per group";
  const double cgp = double(div_up(d.c / d.groups, std::size_t{64}) * 64);
  const double kgp = double(div_up(d.k / d.groups, std::size_t{6}) * 6);
  if (double(d.groups) * d.n * d.h * d.w * cgp > 2147483647.0 || double(d.groups) * d.n * pb.p * pb.q * kgp > 2147483647.0)
    return "the packed input or output gradient would exceed 2^31 elements";
  return "";
}

std::unique_ptr<ConvAlgo> make_igemm_weights(const ConvProblem& pb) { return std::make_unique<IgemmWeightsAlgo>(pb); }

namespace {
}  // namespace

std::string tap_gemm_reason(const ConvProblem& pb) {
  if (pb.direction != Direction::BackwardWeights) return "tap_gemm serves bwd_weights only";
  const Conv2dDesc& d = pb.desc;
  if (double(d.n) * pb.p * pb.q * (d.c / d.groups) > 2147483647.0) return "the gathered input would exceed 2^31 elements";
  return "";
}

std::unique_ptr<ConvAlgo> make_tap_gemm(const ConvProblem& pb) { return std::make_unique<TapGemmWeightsAlgo>(pb); }

std::string bwd_data_via_forward_reason(Algorithm algo, const ConvProblem& pb) {
  const Conv2dDesc& d = pb.desc;
  if (d.stride_h != 1 || d.stride_w != 1 || d.dilation_h != 1 || d.dilation_w != 1)
    return std::string(to_string(algo)) + " serves bwd_data at stride 1 without dilation (direct serves the rest)";
  if (d.pad_top >= d.r || d.pad_bottom >= d.r || d.pad_left >= d.s || d.pad_right >= d.s)
    return std::string(to_string(algo)) + " serves bwd_data with padding smaller than the filter";
  if (pb.types.x != pb.types.y)
    return std::string(to_string(algo)) + " serves bwd_data when dy and w share one type";
  const std::string why = algo_unsupported_reason(algo, forward_of_bwd_data(pb));
  return why.empty() ? "" : std::string(to_string(algo)) + " (as the forward pass over dy): " + why;
}

bool bwd_data_reads_filters_in_place(const ConvProblem& pb) {
  ConvProblem f = forward_of_bwd_data(pb);
  f.w_transposed = true;
  return reads_filters_transposed(Algorithm::ImplicitGemm, f);
}

std::unique_ptr<ConvAlgo> make_bwd_data_via_forward(const ConvProblem& pb, Algorithm algo) {
  return std::make_unique<BwdDataViaForward>(pb, algo);
}

std::unique_ptr<ConvAlgo> make_gemm1x1_backward(const ConvProblem& pb) {
  return std::make_unique<Gemm1x1BackwardAlgo>(pb);
}

std::unique_ptr<ConvAlgo> make_direct_backward(const ConvProblem& pb) {
  return std::make_unique<DirectBackwardAlgo>(pb);
}

}  // namespace axle::dnn::detail
