// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1 -DMR=6 -DVW=16 -DNV=4 -DMB=4 -DKC=0
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0 -DMR=6 -DVW=16 -DNV=4 -DMB=8 -DKC=64
// axle-variant: -DX_T=1 -DY_T=1 -DLAYOUT=1 -DMR=6 -DVW=8 -DNV=2 -DMB=2 -DKC=32
// axle-variant: -DX_T=2 -DY_T=0 -DLAYOUT=0 -DMR=4 -DVW=8 -DNV=1 -DMB=1 -DKC=0
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1 -DMR=6 -DVW=16 -DNV=2 -DMB=2 -DKC=64 -DWIN=1
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1 -DMR=6 -DVW=8 -DNV=2 -DMB=4 -DKC=0 -DROWRUN=1 -DKPN=4
// axle-variant: -DX_T=1 -DY_T=2 -DLAYOUT=1 -DMR=6 -DVW=16 -DNV=4 -DMB=1 -DKC=0 -DKPN=3
//
// Axle 2-D convolution, packed CPU kernels (portable dialect; also compiles as CUDA
// under NVRTC). The implicit GEMM (N P Q) x (K / G) x (R S C / G) per group, modelled
// on gemm.cl's packed family:
//
//  * axle_conv_pack_w copies the filters into NR-wide (NR = VW * NV) k-major panels,
//    f32, ordered wp[g][k panel][r][s][c][NR] (filters past K / G zero), and zeroes the
//    workspace's zero row (the input a tap reads when it falls in the padding).
//  * axle_conv_packed_fwd: one work-item (work-group size 1) per MB blocks of MR output
//    pixels (consecutive in N P Q order) x one panel of NR filters of one group, the
//    block held in floatVW accumulators. For each tap (r, s) each of the MR pixels gets
//    its own input pointer (x at the pixel the tap reads, or the zero row), so the
//    channel loop is branch-free: broadcast A(i, c), fma with the packed filter row.
//    NHWC reads c contiguously; NCHW strides c by H * W (the zero row is then
//    (C / G - 1) * H * W + 1 long). With KC > 0 the reduction is walked tap by tap in
//    KC-deep channel slices, each slice of the panel (KC x NR, L1-sized) reused by the
//    MB blocks, whose partial sums wait in private memory between slices.
//    dims (ceil(pixel blocks / MB), ceil(K / G panels / KPN), G). With KPN > 1 (KC = 0;
//    1x1 layers) a work-item takes KPN consecutive panels, each over its MB blocks: the
//    blocks' input rows are read from memory once, not once per panel.
//  * NTS=1 (OpenCL, NHWC f32 output): full vectors of y are written with streaming
//    (non-temporal) stores where beta is 0: the plan sets it when y is too large to stay
//    in the device's cache, and a store through the cache costs a read of the line.
//  * WIN=1 (NHWC, f32): the forward pass over dy of a stride-1 backward data. The panel
//    rows are read in place from the layer's own KRSC filters, flipped and transposed:
//    row (tap t, channel c) of output channels kf.. is w[g kg' + c][taps-1-t][kf..],
//    NR contiguous floats (kg' = this problem's C / G), so nothing is packed or flipped.
//    K / G must be a multiple of NR (no partial panel reads past a row). With zero_rows
//    set (a tap can fall in the padding), each work-item zeroes its own zero row in the
//    workspace (C / G floats).
//
//  * ROWRUN=1 (NHWC, G = 1, dilation_w = 1, S > 1, not WIN, KC = 0): a filter row's
//    taps run as one reduction of S * C steps where the block's rows lie inside the
//    image (the zero row then holds S * C zeros).
//
// LAYOUT 0: x NCHW, w KCRS, y and z NKPQ. LAYOUT 1: x NHWC, w KRSC, y and z NPQK.
// X_T (x and w), Y_T (y and z): 0 f32, 1 f16, 2 bf16. The epilogue is conv.cl's:
// y = act(alpha * acc + beta * y + bias[k] + z).

#ifndef LAYOUT
#define LAYOUT 1
#endif
#include "conv_types.clh"

#ifndef MR
#define MR 6
#endif
#ifndef VW
#define VW 16
#endif
#ifndef NV
#define NV 1
#endif
#ifndef MB
#define MB 1
#endif
#ifndef KC
#define KC 0
#endif
#ifndef WIN
#define WIN 0
#endif
#ifndef ROWRUN
#define ROWRUN 0
#endif
#ifndef KPN
#define KPN 1
#endif
#ifndef NTS
#define NTS 0
#endif
#define NR (VW * NV)
#define CP_CAT_(a, b) a##b
#define CP_CAT(a, b) CP_CAT_(a, b)
#define VT CP_CAT(float, VW)
#define VLOADW CP_CAT(vload, VW)
#define VSTOREW CP_CAT(vstore, VW)
#define ZERO_CHUNK 4096  // zero-row floats per packing work-item
#define PACK_C 64        // channels per packing work-item

// dims (items + zero chunks): item (g, k panel, tap, chunk of PACK_C channels) packs
// PACK_C x NR floats, written in order (the filters are read NR rows at a time); the
// rest zero ZERO_CHUNK floats of the zero row each.
AXLE_KERNEL void axle_conv_pack_w(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
                                  AXLE_GLOBAL float* AXLE_RESTRICT ws, ulong wp_off, ulong zero_off, int zero_len,
                                  int items, AXLE_CONV_GEOMETRY) {
  const int id = (int)AXLE_GLOBAL_ID(0);
  if (id >= items) {
    const int z0 = (id - items) * ZERO_CHUNK;
    const int z1 = min(z0 + ZERO_CHUNK, zero_len);
    for (int i = z0; i < z1; ++i) ws[zero_off + (ulong)i] = 0.0f;
    return;
  }
  const int cg = C / G, kg = K / G, kp_n = (kg + NR - 1) / NR, taps = R * S;
  const int cc_n = (cg + PACK_C - 1) / PACK_C;
  const int cc = id % cc_n;
  const int t = (id / cc_n) % taps;
  const int kp = (id / (cc_n * taps)) % kp_n;
  const int g = id / (cc_n * taps * kp_n);
  const int c0 = cc * PACK_C, c1 = min(cg, c0 + PACK_C);
  w += w_off;
  AXLE_GLOBAL float* dst = ws + wp_off + ((ulong)(g * kp_n + kp) * taps + t) * (ulong)cg * NR;
  const int jn = min(NR, kg - kp * NR);  // filters of this panel (the rest are zero)
  const ulong k0 = (ulong)(g * kg + kp * NR);
#if LAYOUT == 0
  const ulong kstride = (ulong)cg * taps, cstride = (ulong)taps;  // KCRS
#else
  const ulong kstride = (ulong)taps * cg, cstride = 1;  // KRSC
#endif
#if LAYOUT == 0
  AXLE_GLOBAL const X_ELEM* src = w + k0 * kstride + (ulong)t;
#else
  AXLE_GLOBAL const X_ELEM* src = w + k0 * kstride + (ulong)t * cg;
#endif
  // Groups of 8 filters: 8 source rows at a time stay in L1 (64 rows a filter row
  // apart may all map to a few cache sets).
  for (int j0 = 0; j0 < NR; j0 += 8) {
    for (int c = c0; c < c1; ++c) {
      AXLE_GLOBAL float* row = dst + (ulong)c * NR;
      for (int j = j0; j < j0 + 8; ++j)
        row[j] = j < jn ? (float)LOAD_X(src, (ulong)j * kstride + (ulong)c * cstride) : 0.0f;
    }
  }
}

// The epilogue of one finished MR x NR block (acc[i * NV + v]) of pixels m0.. and
// filters k0.. (of group g's kg).
AXLE_FUNC void axle_convp_store(VT* acc, int m0, int kf0, int g, AXLE_GLOBAL Y_ELEM* y,
                                AXLE_GLOBAL const float* bias, AXLE_GLOBAL const Y_ELEM* z, int M, int PQ, int K,
                                int kg, float alpha, float beta, int has_bias, int has_z, int act) {
#pragma unroll
  for (int i = 0; i < MR; ++i) {
    const int m = m0 + i;
    if (m < M) {
#if LAYOUT == 0
      const int n = m / PQ;
      const ulong pix = (ulong)n * K * PQ + (ulong)(m - n * PQ);  // + k * PQ
#else
      const ulong pix = (ulong)m * K;  // + k
#endif
#pragma unroll
      for (int v = 0; v < NV; ++v) {
        const int kf = kf0 + v * VW;
        const int cnt = min(VW, kg - kf);
        if (cnt <= 0) continue;
        const int k = g * kg + kf;
        VT a = acc[i * NV + v] * alpha;
#if LAYOUT == 1 && Y_T == 0
        if (cnt == VW && act != 2) {
          const ulong o = pix + (ulong)k;
          if (beta != 0.0f) a = a + VLOADW(0, y + o) * beta;
          if (has_bias) a = a + VLOADW(0, bias + k);
          if (has_z) a = a + VLOADW(0, z + o);
          if (act == 1) {
#ifdef AXLE_OPENCL
            a = fmax(a, AXLE_SPLAT(VT, 0.0f));
#else
            float t[VW];
            VSTOREW(a, 0, t);
            for (int l = 0; l < VW; ++l) t[l] = t[l] > 0.0f ? t[l] : 0.0f;
            a = VLOADW(0, t);
#endif
          }
#if defined(AXLE_OPENCL) && NTS
          // Streaming store (y too large to stay in cache for its reader): no read for
          // ownership. Aligned vectors only; y is not read (beta == 0).
          if (beta == 0.0f && (((ulong)(y + o)) & (sizeof(VT) - 1)) == 0) {
            __builtin_nontemporal_store(a, (AXLE_GLOBAL VT*)(y + o));
            continue;
          }
#endif
          VSTOREW(a, 0, y + o);
          continue;
        }
#endif
        float t[VW];
        VSTOREW(a, 0, t);
        if (beta == 0.0f && !has_bias && !has_z && act == 0) {  // a plain store
          for (int l = 0; l < cnt; ++l) {
#if LAYOUT == 0
            STORE_Y(y, pix + (ulong)(k + l) * PQ, t[l]);
#else
            STORE_Y(y, pix + (ulong)(k + l), t[l]);
#endif
          }
          continue;
        }
        for (int l = 0; l < cnt; ++l) {
#if LAYOUT == 0
          const ulong o = pix + (ulong)(k + l) * PQ;
#else
          const ulong o = pix + (ulong)(k + l);
#endif
          float e = t[l];
          if (beta != 0.0f) e += beta * LOAD_Y(y, o);
          if (has_bias) e += bias[k + l];
          if (has_z) e += LOAD_Y(z, o);
          STORE_Y(y, o, axle_conv_act(e, act));
        }
      }
    }
  }
}

#if LAYOUT == 0
#define CSTEP(c) ((ulong)(c) * HW)
#else
#define CSTEP(c) (c)
#endif

// acc += A(i, c) * Wp(c, 0..NR) for c in [c0, c1) of the current tap: xp[i] are the
// rows' input pointers for the tap, wq the packed panel at (tap, c0).
#define AXLE_CONVP_LOOP(c0, c1)                                                    \
  for (int c = (c0); c < (c1); ++c) {                                              \
    VT bv[NV];                                                                     \
    _Pragma("unroll") for (int v = 0; v < NV; ++v) bv[v] = VLOADW(v, wq);          \
    _Pragma("unroll") for (int i = 0; i < MR; ++i) {                               \
      const VT av = AXLE_SPLAT(VT, LOAD_X(xp[i], CSTEP(c)));                       \
      _Pragma("unroll") for (int v = 0; v < NV; ++v) acc[i * NV + v] =             \
          fma(av, bv[v], acc[i * NV + v]);                                         \
    }                                                                              \
    wq += WSTEP;                                                                   \
  }

// The panel row of tap t and reduction channel c, and the step to the next channel.
#if WIN
#define AXLE_CONVP_WQ(t, c) \
  (wsrc + ((ulong)(g * cg + (c)) * taps + (ulong)(taps - 1 - (t))) * (ulong)kg + (ulong)kp * NR)
#define WSTEP ((ulong)taps * (ulong)kg)
#else
#define AXLE_CONVP_WQ(t, c) (wpan + ((ulong)(t) * cg + (c)) * NR)
#define WSTEP NR
#endif

// The rows' input pointers for tap (r, s): ih0 / iw0 are the rows' top-left input
// coordinates, xb their image bases.
#if LAYOUT == 0
#define AXLE_CONVP_POINTERS(r, s)                                                          \
  _Pragma("unroll") for (int i = 0; i < MR; ++i) {                                         \
    const int ih = ih0[i] + (r) * dh, iw = iw0[i] + (s) * dw;                              \
    xp[i] = ((uint)ih < (uint)H && (uint)iw < (uint)W) ? xg + xb[i] + (ulong)(ih * W + iw) \
                                                       : zrow;                             \
  }
#else
#define AXLE_CONVP_POINTERS(r, s)                                                                 \
  _Pragma("unroll") for (int i = 0; i < MR; ++i) {                                                \
    const int ih = ih0[i] + (r) * dh, iw = iw0[i] + (s) * dw;                                     \
    xp[i] = ((uint)ih < (uint)H && (uint)iw < (uint)W) ? xg + xb[i] + (ulong)(ih * W + iw) * C    \
                                                       : zrow;                                    \
  }
#endif

// Row coordinates of block `blk` (rows past M repeat the last pixel; not stored): two
// divisions for the first row, the rest stepped along q, p and n.
#define AXLE_CONVP_ROWS(blk)                                      \
  {                                                               \
    const int m0_ = (blk) * MR;                                   \
    int n_ = m0_ / PQ, p_ = (m0_ - n_ * PQ) / Q;                  \
    int q_ = m0_ - n_ * PQ - p_ * Q;                              \
    _Pragma("unroll") for (int i = 0; i < MR; ++i) {              \
      ih0[i] = p_ * sh - pt;                                      \
      iw0[i] = q_ * sw - pl;                                      \
      xb[i] = (ulong)n_ * (ulong)C * (ulong)HW;                   \
      if (m0_ + i + 1 < M && ++q_ == Q) {                         \
        q_ = 0;                                                   \
        if (++p_ == P) {                                          \
          p_ = 0;                                                 \
          ++n_;                                                   \
        }                                                         \
      }                                                           \
    }                                                             \
  }

AXLE_KERNEL void axle_conv_packed_fwd(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                      AXLE_GLOBAL const float* AXLE_RESTRICT wsrc, ulong wsrc_off,
                                      AXLE_GLOBAL float* AXLE_RESTRICT ws, ulong wp_off, ulong zero_off,
                                      AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                                      AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
                                      AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, AXLE_CONV_GEOMETRY,
                                      float alpha, float beta, int has_bias, int has_z, int act, int zero_rows) {
  const int blk0 = (int)AXLE_GLOBAL_ID(0) * MB;
  const int kp0 = (int)AXLE_GLOBAL_ID(1) * KPN;
  const int g = (int)AXLE_GLOBAL_ID(2);
  const int cg = C / G, kg = K / G, kp_n = (kg + NR - 1) / NR, taps = R * S;
  const int PQ = P * Q, M = N * PQ, HW = H * W;
  const int blk1 = min((M + MR - 1) / MR, blk0 + MB);
  y += y_off;
  bias += bias_off;
  z += z_off;
#if LAYOUT == 0
  AXLE_GLOBAL const X_ELEM* xg = x + x_off + (ulong)g * cg * HW;
#else
  AXLE_GLOBAL const X_ELEM* xg = x + x_off + (ulong)g * cg;
#endif
#if WIN
  // This work-item's zero row (the stride rounded to 16 floats); no one else touches it.
  const ulong item =
      AXLE_GLOBAL_ID(0) + AXLE_GLOBAL_SIZE(0) * (AXLE_GLOBAL_ID(1) + AXLE_GLOBAL_SIZE(1) * (ulong)g);
  AXLE_GLOBAL float* zw = ws + zero_off + item * (ulong)((cg + 15) / 16 * 16);
  if (zero_rows)  // a tap can fall in the padding
    for (int c = 0; c < cg; ++c) zw[c] = 0.0f;
  AXLE_GLOBAL const X_ELEM* zrow = (AXLE_GLOBAL const X_ELEM*)zw;
  wsrc += wsrc_off;
#else
  AXLE_GLOBAL const X_ELEM* zrow = (AXLE_GLOBAL const X_ELEM*)(ws + zero_off);
  AXLE_GLOBAL const float* wpan0 = ws + wp_off + (ulong)(g * kp_n) * taps * (ulong)cg * NR;
#endif
  int ih0[MR], iw0[MR];
  ulong xb[MR];
  AXLE_GLOBAL const X_ELEM* xp[MR];
  VT acc[MR * NV];
#if KC > 0
  const int kp = kp0;  // KPN is 1 with KC
#if !WIN
  AXLE_GLOBAL const float* wpan = wpan0 + (ulong)kp * taps * (ulong)cg * NR;
#endif
  VT part[MB * MR * NV];
  int bh[MB * MR], bw[MB * MR];  // the blocks' row coordinates, computed once
  ulong bb[MB * MR];
  for (int blk = blk0; blk < blk1; ++blk) {
    AXLE_CONVP_ROWS(blk)
#pragma unroll
    for (int i = 0; i < MR; ++i) {
      bh[(blk - blk0) * MR + i] = ih0[i];
      bw[(blk - blk0) * MR + i] = iw0[i];
      bb[(blk - blk0) * MR + i] = xb[i];
    }
  }
  for (int t = 0; t < taps; ++t) {
    const int r = t / S, s = t - r * S;
    for (int c0 = 0; c0 < cg; c0 += KC) {
      const int c1 = min(cg, c0 + KC);
      for (int blk = blk0; blk < blk1; ++blk) {
        VT* pp = part + (blk - blk0) * (MR * NV);
        if (t == 0 && c0 == 0) {
#pragma unroll
          for (int e = 0; e < MR * NV; ++e) acc[e] = AXLE_SPLAT(VT, 0.0f);
        } else {
#pragma unroll
          for (int e = 0; e < MR * NV; ++e) acc[e] = pp[e];
        }
#pragma unroll
        for (int i = 0; i < MR; ++i) {
          ih0[i] = bh[(blk - blk0) * MR + i];
          iw0[i] = bw[(blk - blk0) * MR + i];
          xb[i] = bb[(blk - blk0) * MR + i];
        }
        AXLE_CONVP_POINTERS(r, s)
        AXLE_GLOBAL const float* wq = AXLE_CONVP_WQ(t, c0);
        AXLE_CONVP_LOOP(c0, c1)
        if (t == taps - 1 && c1 == cg) {
          axle_convp_store(acc, blk * MR, kp * NR, g, y, bias, z, M, PQ, K, kg, alpha, beta, has_bias, has_z, act);
        } else {
#pragma unroll
          for (int e = 0; e < MR * NV; ++e) pp[e] = acc[e];
        }
      }
    }
  }
#else
  const int kp1 = min(kp_n, kp0 + KPN);
  // Panel by panel, each over the work-item's MB blocks: the panel stays in L1 for the
  // blocks, whose input rows stay in L2 (or L1) for the panels.
  for (int kp = kp0; kp < kp1; ++kp)
    for (int blk = blk0; blk < blk1; ++blk) {
#if !WIN
      AXLE_GLOBAL const float* wpan = wpan0 + (ulong)kp * taps * (ulong)cg * NR;
#endif
#pragma unroll
      for (int e = 0; e < MR * NV; ++e) acc[e] = AXLE_SPLAT(VT, 0.0f);
      AXLE_CONVP_ROWS(blk)
#if ROWRUN
      // NHWC, one group, dilation_w 1: where every row's S taps of a filter row lie inside
      // the image, the taps' channels are one contiguous run of S * C inputs, as the
      // panel's rows (tap, c) are: one reduction of S * C steps per filter row instead of
      // S of C (conv1's C = 3: a pointer set-up per 3 steps). Rows outside the image read
      // the zero row (S * C zeros).
      bool run = true;
#pragma unroll
      for (int i = 0; i < MR; ++i) run = run && iw0[i] >= 0 && iw0[i] + S <= W;
      if (run) {
        for (int r = 0; r < R; ++r) {
          AXLE_CONVP_POINTERS(r, 0)
          AXLE_GLOBAL const float* wq = AXLE_CONVP_WQ(r * S, 0);
          AXLE_CONVP_LOOP(0, S * cg)
        }
      } else
#endif
      for (int r = 0; r < R; ++r)
        for (int s = 0; s < S; ++s) {
          AXLE_CONVP_POINTERS(r, s)
          AXLE_GLOBAL const float* wq = AXLE_CONVP_WQ(r * S + s, 0);
          AXLE_CONVP_LOOP(0, cg)
        }
      axle_convp_store(acc, blk * MR, kp * NR, g, y, bias, z, M, PQ, K, kg, alpha, beta, has_bias, has_z, act);
    }
#endif
}
