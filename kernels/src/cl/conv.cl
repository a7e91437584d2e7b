// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1
// axle-variant: -DX_T=1 -DY_T=1 -DLAYOUT=1
// axle-variant: -DX_T=2 -DY_T=0 -DLAYOUT=0
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0 -DBM=64 -DBN=64 -DBK=16 -DTM=4 -DTN=4
// axle-variant: -DX_T=0 -DY_T=2 -DLAYOUT=1 -DBM=32 -DBN=32 -DBK=8 -DTM=4 -DTN=4
// axle-variant: -DX_T=1 -DY_T=1 -DLAYOUT=1 -DBM=64 -DBN=32 -DBK=16 -DTM=4 -DTN=4
//
// Axle 2-D convolution kernels (portable dialect; also compiles as CUDA under NVRTC).
//
//   y = act(alpha * conv(x, w) + beta * y + bias[k] + z)
//
// LAYOUT 0: x NCHW, w KCRS, y and z NKPQ. LAYOUT 1: x NHWC, w KRSC, y and z NPQK.
// X_T (x and w) and Y_T (y and z) are element type codes: 0 f32, 1 f16, 2 bf16.
// Accumulation is float. bias is float (K values). Run-time epilogue flags: has_bias,
// has_z, act (0 none, 1 ReLU, 2 GELU, erf form); beta == 0 never reads y.
//
// Kernels:
//  * axle_conv_direct_fwd: one work-item per output element, in the flat order of the
//    output layout. Any shape (groups, depthwise, dilation, asymmetric padding).
//  * axle_conv_igemm_fwd (BM defined): implicit GEMM, (N P Q) x (K / G) x (R S C / G)
//    per group, tiles of BM x BN staged BK deep in local memory, x gathered in place
//    (no im2col buffer); work-group (BN / TN, BM / TM), grid z = groups.
//  * axle_conv_axpby: y = beta * y + z (the residual ahead of a GEMM-backed algorithm).

#include "conv_types.clh"

// The epilogue of output element `o` (flat index in y's layout) of channel `k`.
AXLE_FUNC void axle_conv_store(AXLE_GLOBAL Y_ELEM* y, AXLE_GLOBAL const float* bias, AXLE_GLOBAL const Y_ELEM* z,
                               ulong o, int k, float acc, float alpha, float beta, int has_bias, int has_z, int act) {
  float v = alpha * acc;
  if (beta != 0.0f) v += beta * LOAD_Y(y, o);
  if (has_bias) v += bias[k];
  if (has_z) v += LOAD_Y(z, o);
  STORE_Y(y, o, axle_conv_act(v, act));
}

AXLE_KERNEL void axle_conv_direct_fwd(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                      AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
                                      AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                                      AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
                                      AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, AXLE_CONV_GEOMETRY,
                                      float alpha, float beta, int has_bias, int has_z, int act, ulong base,
                                      ulong total) {
  const ulong o = base + (ulong)AXLE_GLOBAL_ID(0);
  if (o >= total) return;
  x += x_off;
  w += w_off;
  y += y_off;
  bias += bias_off;
  z += z_off;
  int n, k, p, q;
  axle_conv_coords(o, K, P, Q, &n, &k, &p, &q);
  const int cg = C / G, kg = K / G;
  const int c0 = (k / kg) * cg;
  float acc = 0.0f;
  for (int r = 0; r < R; ++r) {
    const int ih = p * sh - pt + r * dh;
    if (ih < 0 || ih >= H) continue;
    for (int s = 0; s < S; ++s) {
      const int iw = q * sw - pl + s * dw;
      if (iw < 0 || iw >= W) continue;
#if LAYOUT == 0
      const ulong xb = (((ulong)n * C + c0) * H + ih) * W + iw;
      const ulong wb = ((ulong)k * cg * R + r) * S + s;
      for (int c = 0; c < cg; ++c)
        acc = fma(LOAD_X(x, xb + (ulong)c * H * W), LOAD_X(w, wb + (ulong)c * R * S), acc);
#else
      const ulong xb = (((ulong)n * H + ih) * W + iw) * C + c0;
      const ulong wb = (((ulong)k * R + r) * S + s) * cg;
      for (int c = 0; c < cg; ++c) acc = fma(LOAD_X(x, xb + c), LOAD_X(w, wb + c), acc);
#endif
    }
  }
  axle_conv_store(y, bias, z, o, k, acc, alpha, beta, has_bias, has_z, act);
}

AXLE_KERNEL void axle_conv_axpby(AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                                 AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, float beta, ulong base,
                                 ulong total) {
  const ulong o = base + (ulong)AXLE_GLOBAL_ID(0);
  if (o >= total) return;
  float v = LOAD_Y(z, z_off + o);
  if (beta != 0.0f) v += beta * LOAD_Y(y, y_off + o);
  STORE_Y(y, y_off + o, v);
}

#if defined(BM)
#ifndef BN
#define BN BM
#endif
#ifndef BK
#define BK 16
#endif
#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif
#define LX (BN / TN)
#define LY (BM / TM)
#define NT (LX * LY)
#define CPAD 1

// Element (m, kk) of the implicit A matrix of group g: output pixel m = (n, p, q),
// reduction index kk = (c, r, s) (NCHW: c slowest) or (r, s, c) (NHWC: c fastest).
AXLE_FUNC float axle_conv_a(AXLE_GLOBAL const X_ELEM* x, int m, int kk, int g, int M, int KK, AXLE_CONV_GEOMETRY) {
  if (m >= M || kk >= KK) return 0.0f;
  const int cg = C / G;
  const int q = m % Q, p = (m / Q) % P, n = m / (Q * P);
#if LAYOUT == 0
  const int s = kk % S, r = (kk / S) % R, c = kk / (S * R);
#else
  const int c = kk % cg, s = (kk / cg) % S, r = kk / (cg * S);
#endif
  const int ih = p * sh - pt + r * dh, iw = q * sw - pl + s * dw;
  if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.0f;
#if LAYOUT == 0
  return LOAD_X(x, (((ulong)n * C + g * cg + c) * H + ih) * W + iw);
#else
  return LOAD_X(x, (((ulong)n * H + ih) * W + iw) * C + g * cg + c);
#endif
}

// One work-group computes a BM x BN tile of (output pixels) x (filters of group z).
AXLE_KERNEL AXLE_REQD_WG(LX, LY, 1) void axle_conv_igemm_fwd(
    AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off, AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
    AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off, AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
    AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, AXLE_CONV_GEOMETRY, float alpha, float beta,
    int has_bias, int has_z, int act, int m0_base) {
  AXLE_LOCAL float as[BK][BM + CPAD];
  AXLE_LOCAL float bs[BK][BN + CPAD];
  x += x_off;
  w += w_off;
  y += y_off;
  bias += bias_off;
  z += z_off;
  const int tx = (int)AXLE_LOCAL_ID(0), ty = (int)AXLE_LOCAL_ID(1);
  const int tid = ty * LX + tx;
  const int g = (int)AXLE_GROUP_ID(2);
  const int m0 = m0_base + (int)AXLE_GROUP_ID(1) * BM;
  const int n0 = (int)AXLE_GROUP_ID(0) * BN;
  const int cg = C / G, kg = K / G;
  const int M = N * P * Q, KK = cg * R * S;
  float acc[TM][TN];
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < KK; k0 += BK) {
    for (int e = tid; e < BM * BK; e += NT) {
      const int mm = e % BM, kk = e / BM;
      as[kk][mm] = axle_conv_a(x, m0 + mm, k0 + kk, g, M, KK, N, C, H, W, K, R, S, P, Q, sh, sw, pt, pl, dh, dw, G);
    }
    for (int e = tid; e < BN * BK; e += NT) {
      const int kk = e % BK, nn = e / BK;  // consecutive work-items read consecutive kk of one filter
      const int kf = n0 + nn, kr = k0 + kk;
      float v = 0.0f;
      if (kf < kg && kr < KK) v = LOAD_X(w, ((ulong)(g * kg + kf)) * KK + kr);
      bs[kk][nn] = v;
    }
    AXLE_BARRIER();
    for (int kk = 0; kk < BK; ++kk) {
      float av[TM], bv[TN];
      for (int i = 0; i < TM; ++i) av[i] = as[kk][ty + i * LY];
      for (int j = 0; j < TN; ++j) bv[j] = bs[kk][tx + j * LX];
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
    AXLE_BARRIER();
  }
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + i * LY;
    if (m >= M) continue;
    const int q = m % Q, p = (m / Q) % P, n = m / (Q * P);
    for (int j = 0; j < TN; ++j) {
      const int kf = n0 + tx + j * LX;
      if (kf >= kg) continue;
      const int k = g * kg + kf;
#if LAYOUT == 0
      const ulong o = (((ulong)n * K + k) * P + p) * Q + q;
#else
      const ulong o = (((ulong)n * P + p) * Q + q) * K + k;
#endif
      axle_conv_store(y, bias, z, o, k, acc[i][j], alpha, beta, has_bias, has_z, act);
    }
  }
}
#endif  // BM
