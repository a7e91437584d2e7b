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
// a GEMM (K / G) x (C / G) with the reduction over the N P Q output pixels, read in
// place: x as NHWC f32 rows (the caller's tensor, or a copy the pack kernels made when
// the layout, type or channel count does not allow reading it in place), dy as N P Q x K
// f32 rows (likewise).
//
//  * axle_conv_bwdw_pack_x: x into xp[g][n h w][CGP] f32 (channels past C / G zero);
//    CGP = C / G rounded up to NR = VW * NV. One work-item per element of xp.
//  * axle_conv_bwdw_pack_dy: dy into dyp[n p q][K] f32. One work-item per element.
//  * axle_conv_bwdw_partial: one work-item (work-group size 1) per (tap, block of NR
//    channels) x (run of KB blocks of MR filters) x (group, split of the N P output rows).
//    The split's rows are walked in chunks of CR rows; within a chunk every filter block
//    sweeps the chunk's pixels (x and dy stay in cache), its MR x NR sums in floatVW
//    accumulators, parked in private memory between chunks. Per output row the tap's
//    valid columns are computed once, so the pixel loop is branch-free: broadcast
//    dy[m][k], fma with the NR channels of x. The split's sums go to
//    part[g][split][tap][KGP][CGP] (KGP = K / G rounded up to MR).
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

AXLE_KERNEL void axle_conv_bwdw_pack_x(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                       AXLE_GLOBAL float* AXLE_RESTRICT xp, ulong xp_off, int N, int C, int H,
                                       int W, int G, int cgp) {
  const ulong o = (ulong)AXLE_GLOBAL_ID(0);
  const ulong hw = (ulong)H * W, nhw = (ulong)N * hw;
  if (o >= (ulong)G * nhw * cgp) return;
  x += x_off;
  const int cg = C / G;
  const int cl = (int)(o % (ulong)cgp);
  const ulong pix = (o / (ulong)cgp) % nhw;
  const int g = (int)(o / ((ulong)cgp * nhw));
  float v = 0.0f;
  if (cl < cg) {
    const int c = g * cg + cl;
#if LAYOUT == 0
    const ulong n = pix / hw;
    v = LOAD_X(x, (n * C + c) * hw + (pix - n * hw));
#else
    v = LOAD_X(x, pix * C + c);
#endif
  }
  xp[xp_off + o] = v;
}

AXLE_KERNEL void axle_conv_bwdw_pack_dy(AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT dy, ulong dy_off,
                                        AXLE_GLOBAL float* AXLE_RESTRICT dyp, ulong dyp_off, int N, int K, int P,
                                        int Q) {
  const ulong o = (ulong)AXLE_GLOBAL_ID(0);
  const ulong pq = (ulong)P * Q;
  if (o >= (ulong)N * pq * K) return;
  dy += dy_off;
#if LAYOUT == 0
  const int k = (int)(o % (ulong)K);
  const ulong m = o / (ulong)K, n = m / pq;
  dyp[dyp_off + o] = LOAD_Y(dy, (n * K + k) * pq + (m - n * pq));
#else
  dyp[dyp_off + o] = LOAD_Y(dy, o);
#endif
}

// dims (taps * CGP / NR, ceil(ceil(K / G / MR) / KB), G * splits). x: x_pix floats from
// one pixel to the next, x_grp from one group to the next; dy: rows of K floats.
AXLE_KERNEL void axle_conv_bwdw_partial(AXLE_GLOBAL const float* AXLE_RESTRICT x, ulong x_off, int x_pix,
                                        ulong x_grp, AXLE_GLOBAL const float* AXLE_RESTRICT dy, ulong dy_off,
                                        AXLE_GLOBAL float* AXLE_RESTRICT part, ulong part_off, AXLE_CONV_GEOMETRY,
                                        int cgp, int kgp, int splits, int split_rows, int chunk_rows) {
  const int cb_n = cgp / NR, taps = R * S;
  const int t = (int)AXLE_GLOBAL_ID(0) / cb_n, cb = (int)AXLE_GLOBAL_ID(0) - t * cb_n;
  const int r = t / S, s = t - r * S;
  const int g = (int)AXLE_GLOBAL_ID(2) / splits, sp = (int)AXLE_GLOBAL_ID(2) - g * splits;
  const int kg = K / G, kb_n = (kg + MR - 1) / MR;
  const int kb0 = (int)AXLE_GLOBAL_ID(1) * KB, kb1 = min(kb_n, kb0 + KB);
  const int rows = N * P, row0 = sp * split_rows, row1 = min(rows, row0 + split_rows);
  AXLE_GLOBAL const float* xg = x + x_off + (ulong)g * x_grp + (ulong)cb * NR;
  AXLE_GLOBAL const float* dyg = dy + dy_off + (ulong)g * kg;
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
      for (int i = 0; i < MR; ++i) kr[i] = min(kb * MR + i, kg - 1);  // rows past K / G repeat the last
      for (int row = c0; row < c1; ++row) {
        const int n = row / P, p = row - n * P;
        const int ih = p * sh - pt + r * dh;
        if ((uint)ih >= (uint)H || qlo >= qhi) continue;
        AXLE_GLOBAL const float* xr = xg + ((ulong)(n * H + ih) * W + (ulong)(qlo * sw + off)) * (ulong)x_pix;
        AXLE_GLOBAL const float* dr = dyg + ((ulong)row * Q + (ulong)qlo) * (ulong)K;
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
          dr += K;
        }
      }
#pragma unroll
      for (int e = 0; e < MR * NV; ++e) pp[e] = acc[e];
    }
  }
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
  const ulong o = (ulong)AXLE_GLOBAL_ID(0);
  const int cg = C / G, kg = K / G, taps = R * S;
  if (o >= (ulong)K * cg * taps) return;
  dwt += dw_off;
#if LAYOUT == 0
  const int s = (int)(o % (ulong)S);
  const int r = (int)((o / (ulong)S) % (ulong)R);
  const int cl = (int)((o / ((ulong)S * R)) % (ulong)cg);
  const int k = (int)(o / ((ulong)S * R * cg));
#else
  const int cl = (int)(o % (ulong)cg);
  const int s = (int)((o / (ulong)cg) % (ulong)S);
  const int r = (int)((o / ((ulong)cg * S)) % (ulong)R);
  const int k = (int)(o / ((ulong)cg * S * R));
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
