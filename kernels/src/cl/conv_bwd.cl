// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1
// axle-variant: -DX_T=1 -DY_T=1 -DLAYOUT=1 -DXS_NATIVE=1
// axle-variant: -DX_T=2 -DY_T=0 -DLAYOUT=0
//
// Direct kernels of the backward convolution passes (portable dialect; also compiles
// as CUDA under NVRTC), for y = conv(x, w):
//
//   axle_conv_direct_bwd_data:    dx = alpha * conv_transpose(dy, w) + beta * dx
//   axle_conv_direct_bwd_weights: dw = alpha * corr(x, dy) + beta * dw
//   axle_conv_direct_bwd_bias:    db[k] = alpha * sum_{n,p,q} dy[n][k][p][q] + beta * db[k]
//
// One work-item per element written, summing in a fixed order: the results are the
// same bits from run to run. LAYOUT, X_T (x, dx, w, dw) and Y_T (dy) as in conv.cl.

#include "conv_types.clh"

AXLE_FUNC ulong axle_y_index(int n, int k, int p, int q, int K, int P, int Q) {
#if LAYOUT == 0
  return (((ulong)n * K + k) * P + p) * Q + q;
#else
  return (((ulong)n * P + p) * Q + q) * K + k;
#endif
}

AXLE_FUNC ulong axle_w_index(int k, int c, int r, int s, int cg, int R, int S) {
#if LAYOUT == 0
  return (((ulong)k * cg + c) * R + r) * S + s;
#else
  return (((ulong)k * R + r) * S + s) * cg + c;
#endif
}

AXLE_KERNEL void axle_conv_direct_bwd_data(AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dx, ulong dx_off,
                                           AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
                                           AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT dy, ulong dy_off,
                                           AXLE_CONV_GEOMETRY, float alpha, float beta, ulong base, ulong total) {
  const ulong o = base + (ulong)AXLE_GLOBAL_ID(0);
  if (o >= total) return;
  dx += dx_off;
  w += w_off;
  dy += dy_off;
  int n, c, ih, iw;
  axle_conv_coords(o, C, H, W, &n, &c, &ih, &iw);
  const int cg = C / G, kg = K / G;
  const int grp = c / cg, cl = c - grp * cg;
  float acc = 0.0f;
  for (int r = 0; r < R; ++r) {
    const int hp = ih + pt - r * dh;  // p * sh when output row p reads input row ih at tap r
    if (hp < 0 || hp % sh != 0) continue;
    const int p = hp / sh;
    if (p >= P) continue;
    for (int s = 0; s < S; ++s) {
      const int wq = iw + pl - s * dw;
      if (wq < 0 || wq % sw != 0) continue;
      const int q = wq / sw;
      if (q >= Q) continue;
      for (int kl = 0; kl < kg; ++kl) {
        const int k = grp * kg + kl;
        acc = fma(LOAD_Y(dy, axle_y_index(n, k, p, q, K, P, Q)), LOAD_X(w, axle_w_index(k, cl, r, s, cg, R, S)), acc);
      }
    }
  }
  float v = alpha * acc;
  if (beta != 0.0f) v += beta * LOAD_X(dx, o);
  STORE_X(dx, o, v);
}

AXLE_KERNEL void axle_conv_direct_bwd_weights(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                              AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dwt, ulong dw_off,
                                              AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT dy, ulong dy_off,
                                              AXLE_CONV_GEOMETRY, float alpha, float beta, ulong total) {
  const ulong o = (ulong)AXLE_GLOBAL_ID(0);
  if (o >= total) return;
  x += x_off;
  dwt += dw_off;
  dy += dy_off;
  const int cg = C / G, kg = K / G;
  int k, cl, r, s;
  axle_conv_coords(o, cg, R, S, &k, &cl, &r, &s);
  const int c = (k / kg) * cg + cl;
  float acc = 0.0f;
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < P; ++p) {
      const int ih = p * sh - pt + r * dh;
      if (ih < 0 || ih >= H) continue;
      for (int q = 0; q < Q; ++q) {
        const int iw = q * sw - pl + s * dw;
        if (iw < 0 || iw >= W) continue;
#if LAYOUT == 0
        const ulong xi = (((ulong)n * C + c) * H + ih) * W + iw;
#else
        const ulong xi = (((ulong)n * H + ih) * W + iw) * C + c;
#endif
        acc = fma(LOAD_Y(dy, axle_y_index(n, k, p, q, K, P, Q)), LOAD_X(x, xi), acc);
      }
    }
  float v = alpha * acc;
  if (beta != 0.0f) v += beta * LOAD_X(dwt, o);
  STORE_X(dwt, o, v);
}

AXLE_KERNEL void axle_conv_direct_bwd_bias(AXLE_GLOBAL float* AXLE_RESTRICT db, ulong db_off,
                                           AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT dy, ulong dy_off, int N, int K,
                                           int P, int Q, float alpha, float beta) {
  const int k = (int)AXLE_GLOBAL_ID(0);
  if (k >= K) return;
  db += db_off;
  dy += dy_off;
  float acc = 0.0f;
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q) acc += LOAD_Y(dy, axle_y_index(n, k, p, q, K, P, Q));
  float v = alpha * acc;
  if (beta != 0.0f) v += beta * db[k];
  db[k] = v;
}

// The filters of the backward-data pass as a forward convolution over dy (stride 1,
// dilation 1): wt[c][k][R-1-r][S-1-s] = w[k][c][r][s] within each group, in the layout's
// filter order (KCRS or KRSC with the roles of C and K swapped). One work-item per
// tile of 16 x 16 (filter, channel) pairs of one tap and group (KRSC), or per (c, k)
// writing its R x S taps (KCRS); the filters have fewer than 2^31 elements.
AXLE_KERNEL void axle_conv_flip_filters(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
                                        AXLE_GLOBAL X_ELEM* AXLE_RESTRICT wt, ulong wt_off, int K, int C, int R,
                                        int S, int G) {
  const int id = (int)AXLE_GLOBAL_ID(0);
  const int cg = C / G, kg = K / G;
  w += w_off;
  wt += wt_off;
#if LAYOUT == 0
  if (id >= C * kg) return;
  const int c = id / kg, kl = id - c * kg;
  const int grp = c / cg, cl = c - grp * cg, k = grp * kg + kl;
  const int src = (k * cg + cl) * R * S, dst = id * R * S;
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) STORE_X(wt, dst + r * S + s, LOAD_X(w, src + (R - 1 - r) * S + (S - 1 - s)));
#else
  // Tiles of 16 filters x 16 channels of one tap and group, transposed.
  const int kt_n = (kg + 15) / 16, ct_n = (cg + 15) / 16, taps = R * S;
  if (id >= G * taps * kt_n * ct_n) return;
  const int ct = id % ct_n, kt = (id / ct_n) % kt_n, t = (id / (ct_n * kt_n)) % taps;
  const int grp = id / (ct_n * kt_n * taps);
  const int k0 = kt * 16, c0 = ct * 16, kn = min(16, kg - k0), cn = min(16, cg - c0);
  float tile[16][16];
  for (int i = 0; i < kn; ++i) {
    const int src = ((grp * kg + k0 + i) * taps + (taps - 1 - t)) * cg + c0;
    for (int j = 0; j < cn; ++j) tile[i][j] = LOAD_X(w, src + j);
  }
  for (int j = 0; j < cn; ++j) {
    const int dst = ((grp * cg + c0 + j) * taps + t) * kg + k0;
    for (int i = 0; i < kn; ++i) STORE_X(wt, dst + i, tile[i][j]);
  }
#endif
}

// Tap-wise weight gradient: for one filter tap (r, s) and one group, gather the input
// pixels that tap reads into xs[n p q][c] (f32; zeros in the padding), so that the tap's
// gradient is the GEMM dy^T xs. One work-item per element of xs.
// XS_NATIVE=1: xs keeps x's 16-bit type (the GEMM then runs on 16-bit operands: tensor
// cores on NVIDIA); else f32.
#ifndef XS_NATIVE
#define XS_NATIVE 0
#endif
#if XS_NATIVE
#define XS_ELEM X_ELEM
#define STORE_XS(p, i, v) STORE_X(p, i, v)
#else
#define XS_ELEM float
#define STORE_XS(p, i, v) ((p)[i] = (v))
#endif
AXLE_KERNEL void axle_conv_gather_tap(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                      AXLE_GLOBAL XS_ELEM* AXLE_RESTRICT xs, ulong xs_off, int N, int C, int H, int W,
                                      int P, int Q, int sh, int sw, int pt, int pl, int dh, int dw, int r, int s,
                                      int c0, int cg) {
  const ulong o = (ulong)AXLE_GLOBAL_ID(0);
  if (o >= (ulong)N * P * Q * cg) return;
  x += x_off;
  xs += xs_off;
  const int cl = (int)(o % (ulong)cg);
  const ulong pix = o / (ulong)cg;
  const int q = (int)(pix % (ulong)Q), p = (int)((pix / (ulong)Q) % (ulong)P), n = (int)(pix / ((ulong)Q * P));
  const int ih = p * sh - pt + r * dh, iw = q * sw - pl + s * dw;
  float v = 0.0f;
  if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
#if LAYOUT == 0
    v = LOAD_X(x, (((ulong)n * C + c0 + cl) * H + ih) * W + iw);
#else
    v = LOAD_X(x, (((ulong)n * H + ih) * W + iw) * C + c0 + cl);
#endif
  }
  STORE_XS(xs, o, v);
}

// dw = alpha * g + beta * dw, where g[grp][r * S + s][k][c] holds the tap-wise GEMM
// results; one work-item per dw element, in the layout's filter order.
AXLE_KERNEL void axle_conv_finish_dw(AXLE_GLOBAL const float* AXLE_RESTRICT g, ulong g_off,
                                     AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dwt, ulong dw_off, int K, int C, int R, int S,
                                     int G, float alpha, float beta) {
  const ulong o = (ulong)AXLE_GLOBAL_ID(0);
  const int cg = C / G, kg = K / G;
  if (o >= (ulong)K * cg * R * S) return;
  g += g_off;
  dwt += dw_off;
  int k, cl, r, s;
  axle_conv_coords(o, cg, R, S, &k, &cl, &r, &s);
  const int grp = k / kg, kl = k - grp * kg;
  float v = alpha * g[((((ulong)grp * R + r) * S + s) * kg + kl) * cg + cl];
  if (beta != 0.0f) v += beta * LOAD_X(dwt, o);
  STORE_X(dwt, o, v);
}

// Backward data of a strided 1x1 layer: the GEMM wrote g = dy w for the input pixels the
// layer reads (g[n p q][c] NHWC, g[n][c][p q] NCHW, f32); the other pixels get no
// gradient. dx = alpha * g (at ih = p * sh, iw = q * sw; else 0) + beta * dx. One
// work-item per input pixel writing its C channels (NHWC), or per input row of one
// channel writing its W pixels (NCHW).
AXLE_KERNEL void axle_conv_scatter_strided_1x1(AXLE_GLOBAL const float* AXLE_RESTRICT g, ulong g_off,
                                               AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dx, ulong dx_off, int N, int C,
                                               int H, int W, int P, int Q, int sh, int sw, float alpha,
                                               float beta) {
  const int id = (int)AXLE_GLOBAL_ID(0);
  g += g_off;
  dx += dx_off;
#if LAYOUT == 0
  if (id >= N * C * H) return;
  const int ih = id % H, nc = id / H;
  AXLE_GLOBAL X_ELEM* out = dx + (ulong)id * W;
  const int p = ih / sh;
  const bool row = p * sh == ih && p < P;
  AXLE_GLOBAL const float* src = g + ((ulong)nc * P + p) * Q;
  for (int iw = 0; iw < W; ++iw) {
    const int q = iw / sw;
    float v = row && q * sw == iw && q < Q ? alpha * src[q] : 0.0f;
    if (beta != 0.0f) v += beta * LOAD_X(out, iw);
    STORE_X(out, iw, v);
  }
#else
  if (id >= N * H * W) return;
  const int iw = id % W, ih = (id / W) % H, n = id / (W * H);
  const int p = ih / sh, q = iw / sw;
  const bool hit = p * sh == ih && q * sw == iw && p < P && q < Q;
  AXLE_GLOBAL X_ELEM* out = dx + (ulong)id * C;
  AXLE_GLOBAL const float* src = g + (((ulong)n * P + p) * Q + q) * C;
  for (int c = 0; c < C; ++c) {
    float v = hit ? alpha * src[c] : 0.0f;
    if (beta != 0.0f) v += beta * LOAD_X(out, c);
    STORE_X(out, c, v);
  }
#endif
}
