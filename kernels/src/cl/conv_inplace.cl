// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1 -DMR=3 -DNR=6 -DVW=16 -DCTAIL=0
// axle-variant: -DX_T=1 -DY_T=2 -DLAYOUT=1 -DMR=3 -DNR=3 -DVW=8 -DCTAIL=1
//
// Axle 2-D convolution, NHWC implicit GEMM with the filters read in place (portable
// dialect; CPU-oriented; also compiles as CUDA under NVRTC).
//
// In NHWC with KRSC filters, both operands of the implicit GEMM are contiguous along
// the reduction within a tap: filter k's row w[k][r][s][0..C/G) and pixel m's input
// x[n][ih][iw][0..C/G). So nothing is packed: a work-item holds an MR (filters) x NR
// (output pixels) block of VW-wide partial sums, acc(i, j) += w(k_i, c..c+VW) *
// x(m_j, c..c+VW), and reduces each across its lanes once at the end. Per VW channels
// that is MR + NR vector loads for MR * NR fmas, the packed kernel's ratio, without the
// launch and the memory traffic of packing the filters on every run: what pays on
// layers with few output pixels per filter (large C, small H x W, batch 1) and on 1x1
// layers.
//
// A pixel whose tap falls in the padding reads a zero row: where that can happen
// (zero_rows), each work-item zeroes its own C/G elements of the workspace first (no
// other work-item touches them).
//
// dims (ceil(pixel blocks / mb), ceil(filter blocks / kbn), G); a work-item walks its
// mb pixel blocks, and for each its kbn filter blocks (the pixels' rows stay in L1
// while the filters stream past). C / G need not be a multiple of VW: CTAIL=1 adds a
// scalar tail (kept out of the common case, whose registers it would crowd).
// The epilogue is conv.cl's: y = act(alpha * acc + beta * y + bias[k] + z).

#include "conv_types.clh"

#ifndef MR
#define MR 3
#endif
#ifndef NR
#define NR 6
#endif
#ifndef VW
#define VW 16
#endif
#ifndef CTAIL
#define CTAIL 1
#endif
#define CI_CAT_(a, b) a##b
#define CI_CAT(a, b) CI_CAT_(a, b)
#define VT CI_CAT(float, VW)
#define VLOADW CI_CAT(vload, VW)
#define VSTOREW CI_CAT(vstore, VW)

// VW elements of x or w from p, as floats.
AXLE_FUNC VT axle_ci_load(AXLE_GLOBAL const X_ELEM* p) {
#if X_T == 0
  return VLOADW(0, p);
#else
  float t[VW];
#pragma unroll
  for (int l = 0; l < VW; ++l) t[l] = LOAD_X(p, l);
  return VLOADW(0, t);
#endif
}

// The sum of v's lanes.
AXLE_FUNC float axle_ci_hsum(VT v) {
#if defined(AXLE_OPENCL) && VW == 16
  const float8 h8 = v.lo + v.hi;
  const float4 h4 = h8.lo + h8.hi;
  const float2 h2 = h4.lo + h4.hi;
  return h2.x + h2.y;
#elif defined(AXLE_OPENCL) && VW == 8
  const float4 h4 = v.lo + v.hi;
  const float2 h2 = h4.lo + h4.hi;
  return h2.x + h2.y;
#else
  float t[VW];
  VSTOREW(v, 0, t);
  float s = 0.0f;
#pragma unroll
  for (int l = 0; l < VW; ++l) s += t[l];
  return s;
#endif
}

AXLE_KERNEL void axle_conv_inplace_fwd(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                       AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
                                       AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                                       AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
                                       AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, AXLE_CONV_GEOMETRY,
                                       float alpha, float beta, int has_bias, int has_z, int act,
                                       AXLE_GLOBAL X_ELEM* AXLE_RESTRICT ws, ulong zero_off, int zero_rows, int mb,
                                       int kbn) {
  const int cg = C / G, kg = K / G, taps = R * S;
  const int PQ = P * Q, M = N * PQ;
  const int blocks = (M + NR - 1) / NR, kblocks = (kg + MR - 1) / MR;
  const int g = (int)AXLE_GLOBAL_ID(2);
  const int blk0 = (int)AXLE_GLOBAL_ID(0) * mb, blk1 = min(blocks, blk0 + mb);
  const int kb0 = (int)AXLE_GLOBAL_ID(1) * kbn, kb1 = min(kblocks, kb0 + kbn);
  const int cv = cg - cg % VW;  // channels walked in vectors; the rest are the tail
  // This work-item's zero row (cg elements, the stride rounded to 16).
  const ulong item =
      AXLE_GLOBAL_ID(0) + AXLE_GLOBAL_SIZE(0) * (AXLE_GLOBAL_ID(1) + AXLE_GLOBAL_SIZE(1) * (ulong)g);
  AXLE_GLOBAL X_ELEM* zrow = ws + zero_off + item * (ulong)((cg + 15) / 16 * 16);
  if (blk0 >= blk1 || kb0 >= kb1) return;
  if (zero_rows)  // a tap can fall in the padding
    for (int c = 0; c < cg; ++c) STORE_X(zrow, c, 0.0f);
  AXLE_GLOBAL const X_ELEM* xg = x + x_off + (ulong)g * cg;
  AXLE_GLOBAL const X_ELEM* wg = w + w_off + (ulong)g * kg * taps * cg;
  y += y_off;
  bias += bias_off;
  z += z_off;
  for (int blk = blk0; blk < blk1; ++blk) {
    int ih0[NR], iw0[NR];
    ulong xb[NR];
#pragma unroll
    for (int j = 0; j < NR; ++j) {  // pixels past M repeat the last one (not stored)
      const int m = min(blk * NR + j, M - 1);
      const int n = m / PQ, pq = m - n * PQ;
      const int p = pq / Q, q = pq - p * Q;
      ih0[j] = p * sh - pt;
      iw0[j] = q * sw - pl;
      xb[j] = (ulong)n * H;
    }
    for (int kb = kb0; kb < kb1; ++kb) {
      AXLE_GLOBAL const X_ELEM* wr[MR];
#pragma unroll
      for (int i = 0; i < MR; ++i)  // filters past K / G repeat the last one (not stored)
        wr[i] = wg + (ulong)min(kb * MR + i, kg - 1) * taps * cg;
      VT acc[MR * NR];
#pragma unroll
      for (int e = 0; e < MR * NR; ++e) acc[e] = AXLE_SPLAT(VT, 0.0f);
#if CTAIL
      float tail[MR * NR];
#pragma unroll
      for (int e = 0; e < MR * NR; ++e) tail[e] = 0.0f;
#endif
      for (int r = 0; r < R; ++r)
        for (int s = 0; s < S; ++s) {
          AXLE_GLOBAL const X_ELEM* xp[NR];
#pragma unroll
          for (int j = 0; j < NR; ++j) {
            const int ih = ih0[j] + r * dh, iw = iw0[j] + s * dw;
            xp[j] = ((uint)ih < (uint)H && (uint)iw < (uint)W) ? xg + ((xb[j] + ih) * W + iw) * C : zrow;
          }
          const ulong wt = (ulong)(r * S + s) * cg;
          for (int c = 0; c < cv; c += VW) {
            VT b[NR];
#pragma unroll
            for (int j = 0; j < NR; ++j) b[j] = axle_ci_load(xp[j] + c);
#pragma unroll
            for (int i = 0; i < MR; ++i) {
              const VT a = axle_ci_load(wr[i] + wt + c);
#pragma unroll
              for (int j = 0; j < NR; ++j) acc[i * NR + j] = fma(a, b[j], acc[i * NR + j]);
            }
          }
#if CTAIL
          for (int c = cv; c < cg; ++c) {
#pragma unroll
            for (int i = 0; i < MR; ++i) {
              const float a = LOAD_X(wr[i], wt + c);
#pragma unroll
              for (int j = 0; j < NR; ++j) tail[i * NR + j] = fma(a, LOAD_X(xp[j], c), tail[i * NR + j]);
            }
          }
#endif
        }
      // Epilogue: pixel m's filters k are contiguous in y (NPQK).
#pragma unroll
      for (int j = 0; j < NR; ++j) {
        const int m = blk * NR + j;
        if (m >= M) continue;
#pragma unroll
        for (int i = 0; i < MR; ++i) {
          const int kf = kb * MR + i;
          if (kf >= kg) continue;
          const int k = g * kg + kf;
          const ulong o = (ulong)m * K + (ulong)k;
#if CTAIL
          float e = alpha * (axle_ci_hsum(acc[i * NR + j]) + tail[i * NR + j]);
#else
          float e = alpha * axle_ci_hsum(acc[i * NR + j]);
#endif
          if (beta != 0.0f) e += beta * LOAD_Y(y, o);
          if (has_bias) e += bias[k];
          if (has_z) e += LOAD_Y(z, o);
          STORE_Y(y, o, axle_conv_act(e, act));
        }
      }
    }
  }
}
