// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1 -DMR=6 -DVW=16 -DNV=4 -DKB=11
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0 -DMR=6 -DVW=16 -DNV=1 -DKB=4
// axle-variant: -DX_T=1 -DY_T=1 -DLAYOUT=1 -DMR=6 -DVW=8 -DNV=2 -DKB=8
// axle-variant: -DX_T=2 -DY_T=0 -DLAYOUT=0 -DMR=4 -DVW=8 -DNV=1 -DKB=1
//
// The weight gradient as an implicit GEMM (portable dialect; also compiles as CUDA under
// NVRTC), for y = conv(x, w): per group and filter tap (r, s),
//
//   dw[k][r][s][c] = sum over output pixels m = (n, p, q) of dy[m][k] * x[pixel m reads at (r, s)][c],
//
// a GEMM (K / G) x (C / G) with the reduction over the N P Q output pixels. x and dy are
// read in place when they are NHWC f32 rows of one channel (filter) block, else from
// blocked f32 copies the pack kernels make.
//
//  * axle_conv_bwdw_pack_x: x into xp[g][channel block][n h w][NR] f32, NR = VW * NV
//    (channels past C / G zero; CGP = C / G rounded up to NR). One work-item per pixel.
//  * axle_conv_bwdw_pack_dy: dy into dyp[g][filter block][n p q][MR] f32 (filters past
//    K / G zero). One work-item per pixel. Packed, each block's pixels are
//    consecutive: wide rows (C or K of 128 and more) would put the pixels a multiple of
//    the L1 way size apart.
//  * axle_conv_bwdw_partial: one work-item (work-group size 1) per (tap, block of NR
//    channels) x (run of KB blocks of MR filters) x (group, split of the N P output rows).
//    The split's rows are walked in chunks of CR rows; within a chunk every filter block
//    sweeps the chunk's pixels (x and dy stay in cache), its MR x NR sums in floatVW
//    accumulators, parked in private memory between chunks. Per output row the tap's
//    valid columns are computed once, so the pixel loop is branch-free: broadcast
//    dy[m][k], fma with the NR channels of x. The split's sums go to
//    part[g][split][tap][KGP][CGP] (KGP = K / G rounded up to MR), or with `direct`
//    (one split, NHWC f32, C / G a multiple of NR) straight to dw with alpha and beta.
//  * axle_conv_bwdw_reduce: one work-item per dw element, in the layout's filter order:
//    dw = alpha * (the splits' partial sums added in split order) + beta * dw.
//
// No atomics, every sum in a fixed order: the same inputs give the same bits.
// LAYOUT 0: x NCHW, dw KCRS, dy NKPQ. LAYOUT 1: x NHWC, dw KRSC, dy NPQK.
// X_T (x, dw), Y_T (dy): 0 f32, 1 f16, 2 bf16.

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
#ifndef KB
#define KB 1
#endif
#define NR (VW * NV)
#define BW_CAT_(a, b) a##b
#define BW_CAT(a, b) BW_CAT_(a, b)
#define VT BW_CAT(float, VW)
#define VLOADW BW_CAT(vload, VW)
#define VSTOREW BW_CAT(vstore, VW)

// One work-item per (group, input pixel): its C / G channels into the channel blocks.
AXLE_KERNEL void axle_conv_bwdw_pack_x(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                       AXLE_GLOBAL float* AXLE_RESTRICT xp, ulong xp_off, int N, int C, int H,
                                       int W, int G, int cgp) {
  const int id = (int)AXLE_GLOBAL_ID(0);
  const int hw = H * W, nhw = N * hw;
  if (id >= G * nhw) return;
  const int g = id / nhw, pix = id - g * nhw;
  const int cg = C / G, cb_n = cgp / NR;
#if LAYOUT == 0
  const int n = pix / hw;
  AXLE_GLOBAL const X_ELEM* src = x + x_off + ((ulong)n * C + (ulong)g * cg) * hw + (ulong)(pix - n * hw);
  const ulong cs = (ulong)hw;
#else
  AXLE_GLOBAL const X_ELEM* src = x + x_off + (ulong)pix * C + (ulong)g * cg;
  const ulong cs = 1;
#endif
  AXLE_GLOBAL float* dst = xp + xp_off + ((ulong)g * cb_n * nhw + (ulong)pix) * NR;
  for (int cb = 0; cb < cb_n; ++cb) {
    AXLE_GLOBAL float* d = dst + (ulong)cb * nhw * NR;
    const int c0 = cb * NR;
    for (int j = 0; j < NR; ++j) d[j] = c0 + j < cg ? (float)LOAD_X(src, (ulong)(c0 + j) * cs) : 0.0f;
  }
}

// One work-item per (group, output pixel): its K / G filters into the filter blocks
// (dyp[g][filter block][n p q][MR], filters past K / G zero).
AXLE_KERNEL void axle_conv_bwdw_pack_dy(AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT dy, ulong dy_off,
                                        AXLE_GLOBAL float* AXLE_RESTRICT dyp, ulong dyp_off, int N, int K, int P,
                                        int Q, int G) {
  const int id = (int)AXLE_GLOBAL_ID(0);
  const int pq = P * Q, npq = N * pq;
  if (id >= G * npq) return;
  const int g = id / npq, m = id - g * npq;
  const int kg = K / G, kb_n = (kg + MR - 1) / MR;
#if LAYOUT == 0
  const int n = m / pq;
  AXLE_GLOBAL const Y_ELEM* src = dy + dy_off + ((ulong)n * K + (ulong)g * kg) * pq + (ulong)(m - n * pq);
  const ulong ks = (ulong)pq;
#else
  AXLE_GLOBAL const Y_ELEM* src = dy + dy_off + (ulong)m * K + (ulong)g * kg;
  const ulong ks = 1;
#endif
  AXLE_GLOBAL float* dst = dyp + dyp_off + ((ulong)g * kb_n * npq + (ulong)m) * MR;
  for (int kb = 0; kb < kb_n; ++kb) {
    AXLE_GLOBAL float* d = dst + (ulong)kb * npq * MR;
    const int k0 = kb * MR;
    for (int i = 0; i < MR; ++i) d[i] = k0 + i < kg ? (float)LOAD_Y(src, (ulong)(k0 + i) * ks) : 0.0f;
  }
}

// dims (taps * CGP / NR, ceil(ceil(K / G / MR) / KB), G * splits). x: channel c of
// pixel i of group g at x[g * x_grp + (c / NR) * x_cb + i * x_pix + c % NR]; dy:
// filter k = kb * MR + i of pixel m of group g at
// dy[g * dy_grp + kb * dy_kb + m * dy_pix + min(kb * dy_kstep + i, dy_klim)] (in place:
// dy_kstep = MR, dy_klim = K / G - 1; packed: 0 and MR - 1).
AXLE_KERNEL void axle_conv_bwdw_partial(AXLE_GLOBAL const float* AXLE_RESTRICT x, ulong x_off, ulong x_grp,
                                        ulong x_cb, int x_pix, AXLE_GLOBAL const float* AXLE_RESTRICT dy,
                                        ulong dy_off, ulong dy_grp, ulong dy_kb, int dy_pix, int dy_kstep,
                                        int dy_klim, AXLE_GLOBAL float* AXLE_RESTRICT part, ulong part_off,
                                        AXLE_CONV_GEOMETRY, int cgp, int kgp, int splits, int split_rows,
                                        int chunk_rows, AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dwt, ulong dw_off,
                                        int direct, float alpha, float beta) {
  const int cb_n = cgp / NR, taps = R * S;
  const int t = (int)AXLE_GLOBAL_ID(0) / cb_n, cb = (int)AXLE_GLOBAL_ID(0) - t * cb_n;
  const int r = t / S, s = t - r * S;
  const int g = (int)AXLE_GLOBAL_ID(2) / splits, sp = (int)AXLE_GLOBAL_ID(2) - g * splits;
  const int kg = K / G, kb_n = (kg + MR - 1) / MR;
  const int kb0 = (int)AXLE_GLOBAL_ID(1) * KB, kb1 = min(kb_n, kb0 + KB);
  const int rows = N * P, row0 = sp * split_rows, row1 = min(rows, row0 + split_rows);
  AXLE_GLOBAL const float* xg = x + x_off + (ulong)g * x_grp + (ulong)cb * x_cb;
  AXLE_GLOBAL const float* dyg = dy + dy_off + (ulong)g * dy_grp;
  // The tap's valid output columns: iw = q * sw + off within [0, W).
  const int off = s * dw - pl;
  const int qlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  const int qhi = W - 1 - off < 0 ? 0 : min(Q, (W - 1 - off) / sw + 1);
  const int xstep = sw * x_pix;
  VT sums[KB * MR * NV];
  for (int e = 0; e < KB * MR * NV; ++e) sums[e] = AXLE_SPLAT(VT, 0.0f);
  VT acc[MR * NV];
  int kr[MR];
  for (int c0 = row0; c0 < row1; c0 += chunk_rows) {
    const int c1 = min(row1, c0 + chunk_rows);
    for (int kb = kb0; kb < kb1; ++kb) {
      VT* pp = sums + (kb - kb0) * (MR * NV);
#pragma unroll
      for (int e = 0; e < MR * NV; ++e) acc[e] = pp[e];
#pragma unroll
      for (int i = 0; i < MR; ++i) kr[i] = min(kb * dy_kstep + i, dy_klim);  // in place: rows past K / G repeat
      AXLE_GLOBAL const float* dyk = dyg + (ulong)kb * dy_kb;
      for (int row = c0; row < c1; ++row) {
        const int n = row / P, p = row - n * P;
        const int ih = p * sh - pt + r * dh;
        if ((uint)ih >= (uint)H || qlo >= qhi) continue;
        AXLE_GLOBAL const float* xr = xg + ((ulong)(n * H + ih) * W + (ulong)(qlo * sw + off)) * (ulong)x_pix;
        AXLE_GLOBAL const float* dr = dyk + ((ulong)row * Q + (ulong)qlo) * (ulong)dy_pix;
        for (int q = qlo; q < qhi; ++q) {
          VT xv[NV];
#pragma unroll
          for (int v = 0; v < NV; ++v) xv[v] = VLOADW(v, xr);
#pragma unroll
          for (int i = 0; i < MR; ++i) {
            const VT av = AXLE_SPLAT(VT, dr[kr[i]]);
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[i * NV + v] = fma(av, xv[v], acc[i * NV + v]);
          }
          xr += xstep;
          dr += dy_pix;
        }
      }
#pragma unroll
      for (int e = 0; e < MR * NV; ++e) pp[e] = acc[e];
    }
  }
#if LAYOUT == 1 && X_T == 0
  if (direct) {  // one split, KRSC f32 dw, whole channel blocks: dw = alpha * sums + beta * dw
    for (int kb = kb0; kb < kb1; ++kb)
      for (int i = 0; i < MR; ++i) {
        const int kl = kb * MR + i;
        if (kl >= kg) break;
        AXLE_GLOBAL float* o = dwt + dw_off + ((ulong)(g * kg + kl) * taps + t) * (ulong)(C / G) + (ulong)cb * NR;
        for (int v = 0; v < NV; ++v) {
          VT a = sums[((kb - kb0) * MR + i) * NV + v] * alpha;
          if (beta != 0.0f) a = a + VLOADW(v, o) * beta;
          VSTOREW(a, v, o);
        }
      }
    return;
  }
#endif
  AXLE_GLOBAL float* out = part + part_off + (((ulong)g * splits + sp) * taps + t) * (ulong)kgp * cgp + (ulong)cb * NR;
  for (int kb = kb0; kb < kb1; ++kb) {
#pragma unroll
    for (int i = 0; i < MR; ++i) {
      AXLE_GLOBAL float* o = out + (ulong)(kb * MR + i) * cgp;
#pragma unroll
      for (int v = 0; v < NV; ++v) VSTOREW(sums[((kb - kb0) * MR + i) * NV + v], v, o);
    }
  }
}

AXLE_KERNEL void axle_conv_bwdw_reduce(AXLE_GLOBAL const float* AXLE_RESTRICT part, ulong part_off,
                                       AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dwt, ulong dw_off, int K, int C, int R,
                                       int S, int G, int kgp, int cgp, int splits, float alpha, float beta) {
  const int o = (int)AXLE_GLOBAL_ID(0);  // dw has fewer than 2^31 elements
  const int cg = C / G, kg = K / G, taps = R * S;
  if (o >= K * cg * taps) return;
  dwt += dw_off;
#if LAYOUT == 0
  const int kc = o / taps, t0 = o - kc * taps;
  const int k = kc / cg, cl = kc - k * cg, r = t0 / S, s = t0 - r * S;
#else
  const int kt = o / cg, cl = o - kt * cg;
  const int k = kt / taps, t0 = kt - k * taps, r = t0 / S, s = t0 - r * S;
#endif
  const int grp = k / kg, kl = k - grp * kg, t = r * S + s;
  const ulong step = (ulong)taps * kgp * cgp;
  AXLE_GLOBAL const float* src =
      part + part_off + ((ulong)grp * splits * taps + t) * (ulong)kgp * cgp + (ulong)kl * cgp + cl;
  float sum = 0.0f;
  for (int sp = 0; sp < splits; ++sp) sum += src[sp * step];
  float v = alpha * sum;
  if (beta != 0.0f) v += beta * LOAD_X(dwt, o);
  STORE_X(dwt, o, v);
}
