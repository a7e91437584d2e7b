// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0 -DVW=8 -DSW=2 -DQB=4
// axle-variant: -DX_T=1 -DY_T=2 -DLAYOUT=1 -DVW=4 -DMULT=2 -DDW=2
// axle-variant: -DX_T=2 -DY_T=0 -DLAYOUT=0 -DVW=1 -DW_T=0 -DFLIP=1
//
// Depthwise convolution (groups == C, K = MULT * C: output channel k = c * MULT + m
// reads input channel c) for the Depthwise algorithm (portable dialect; also compiles
// as CUDA under NVRTC). The filter shape, strides, dilations and the vector width are
// compile-time constants (R, S, SH, SW, DH, DW, VW, QB, MULT), so the taps live in
// registers and every tap loop unrolls; the rest of the geometry is run-time.
//
//  * axle_dw_fwd:   y = act(alpha * conv(x, w) + beta * y + bias[k] + z).
//      LAYOUT 1 (NHWC): a work-item holds CB blocks of VW adjacent input channels (of
//      one multiplier index each) and walks `rows` output rows: the columns whose taps all lie inside the
//      row QB pixels at a time in VW-wide accumulators, without bounds checks (stride-1
//      rows load each input pixel once per chunk and filter row), the border columns
//      one at a time with them.
//      LAYOUT 0 (NCHW): a work-item holds one output channel and walks `rows` output
//      rows VW columns at a time (lanes along the row).
//      Backward data of a stride-1 layer is this kernel over dy with the filters
//      flipped (FLIP) and the complementary padding.
//  * axle_dw_bwd_w: per-slice partial sums of dw (and of db) into a workspace: a work-
//      item takes VW channels (NHWC) or one channel (NCHW, lanes along the row) and a
//      fixed slice of the (n, p) rows; axle_dw_reduce then adds the slices in order and
//      applies alpha and beta (with one slice the kernel writes dw and db itself). No
//      atomics: the same bits from run to run.
//
// X_T (x, dx, dw), Y_T (y, z, dy) as in conv_types.clh; W_T the filters' type (X_T
// unless set: backward data reads dy as x). Filters: K x R x S (KRSC and KCRS agree
// when C / groups is 1).

#include "conv_types.clh"

#ifndef R
#define R 3
#endif
#ifndef S
#define S 3
#endif
#ifndef SH
#define SH 1
#endif
#ifndef SW
#define SW 1
#endif
#ifndef DH
#define DH 1
#endif
#ifndef DW
#define DW 1
#endif
#ifndef VW
#define VW 16
#endif
#ifndef QB
#define QB 8
#endif
#ifndef MULT
#define MULT 1
#endif
#ifndef CB
#define CB 1
#endif
#ifndef FLIP
#define FLIP 0
#endif
#ifndef W_T
#define W_T X_T
#endif
#define RS (R * S)

#if VW == 16
#define VEC float16
#define VLOAD(p) vload16(0, p)
#define VSTORE(v, p) vstore16(v, 0, p)
#elif VW == 8
#define VEC float8
#define VLOAD(p) vload8(0, p)
#define VSTORE(v, p) vstore8(v, 0, p)
#elif VW == 4
#define VEC float4
#define VLOAD(p) vload4(0, p)
#define VSTORE(v, p) vstore4(v, 0, p)
#elif VW == 2
#define VEC float2
#define VLOAD(p) vload2(0, p)
#define VSTORE(v, p) vstore2(v, 0, p)
#else
#define VEC float
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#endif
#if VW > 1
#define VSPLAT(v) AXLE_SPLAT(VEC, v)
#else
#define VSPLAT(v) (v)
#endif
#define VZERO VSPLAT(0.0f)

#if W_T == 0
#define W_ELEM float
#define LOAD_W(p, i) ((p)[i])
#elif W_T == 1
#define W_ELEM AXLE_HALF
#define LOAD_W(p, i) AXLE_LOAD_HALF(i, p)
#else
#define W_ELEM ushort
#define LOAD_W(p, i) axle_bf16_to_float((p)[i])
#endif

// VW elements p[0], p[step], ... of x (any X_T) as one vector.
AXLE_FUNC VEC dw_load_x(AXLE_GLOBAL const X_ELEM* p, int step) {
#if X_T == 0 && VW > 1
  if (step == 1) return VLOAD(p);
#endif
  float lane[VW];
  for (int j = 0; j < VW; ++j) lane[j] = LOAD_X(p, (ulong)j * step);
  return VLOAD(lane);
}

// The same for dy (Y_T).
AXLE_FUNC VEC dw_load_y(AXLE_GLOBAL const Y_ELEM* p, int step) {
#if Y_T == 0 && VW > 1
  if (step == 1) return VLOAD(p);
#endif
  float lane[VW];
  for (int j = 0; j < VW; ++j) lane[j] = LOAD_Y(p, (ulong)j * step);
  return VLOAD(lane);
}

// NHWC: the pixel at column iw of row `xrow` (zeros outside [0, W)), without a branch:
// the load reads a clamped column and the select drops it.
AXLE_FUNC VEC dw_pixel(AXLE_GLOBAL const X_ELEM* xrow, int iw, int W, int C) {
  const bool ok = iw >= 0 && iw < W;
  const VEC v = dw_load_x(xrow + (ulong)(ok ? iw : 0) * C, 1);
  return ok ? v : VZERO;
}

// One filter row r of a chunk of NQ (<= QB) output pixels: LD(o) is the input pixel at
// column offset o from the chunk's first (q0 * SW - pl). Stride-1 rows load each pixel
// once.
#if SW == 1 && DW == 1
#define DW_FWD_ROW(LD, NQ)                                                                   \
  _Pragma("unroll") for (int j = 0; j < NQ + S - 1; ++j) {                                   \
    const VEC xv = LD(j);                                                                    \
    _Pragma("unroll") for (int s = 0; s < S; ++s) if (j - s >= 0 && j - s < NQ) acc[j - s] = \
        fma(xv, wt[r * S + s], acc[j - s]);                                                  \
  }
#define DW_BWD_ROW(LD, NQ)                                                                   \
  _Pragma("unroll") for (int j = 0; j < NQ + S - 1; ++j) {                                   \
    const VEC xv = LD(j);                                                                    \
    _Pragma("unroll") for (int s = 0; s < S; ++s) if (j - s >= 0 && j - s < NQ) acc[r * S + s] = \
        fma(xv, g[j - s], acc[r * S + s]);                                                   \
  }
#else
#define DW_FWD_ROW(LD, NQ)                                                                    \
  _Pragma("unroll") for (int t = 0; t < NQ; ++t) _Pragma("unroll") for (int s = 0; s < S; ++s) \
      acc[t] = fma(LD(t * SW + s * DW), wt[r * S + s], acc[t]);
#define DW_BWD_ROW(LD, NQ)                                                                    \
  _Pragma("unroll") for (int t = 0; t < NQ; ++t) _Pragma("unroll") for (int s = 0; s < S; ++s) \
      acc[r * S + s] = fma(LD(t * SW + s * DW), g[t], acc[r * S + s]);
#endif
#define DW_LD_FAST(o) dw_load_x(xp + (ulong)(o) * C, 1)
#define DW_LD_EDGE(o) dw_pixel(xrow, iw0 + (o), W, C)
// The output columns [*lo, *hi] whose taps all lie inside the row (*hi < *lo: none).
AXLE_FUNC void dw_interior(int W, int Q, int pl, int* lo, int* hi) {
  *lo = pl <= 0 ? 0 : (pl + SW - 1) / SW;
  const int num = W - 1 - (S - 1) * DW + pl;
  *hi = num < 0 ? -1 : min(num / SW, Q - 1);
}

// NCHW rows: the VW values of row `row` (W long) at columns c0, c0 + step, ... with
// zeros outside [0, W).
AXLE_FUNC VEC dw_row_x(AXLE_GLOBAL const X_ELEM* row, int c0, int step, int W) {
  if (c0 >= 0 && c0 + (VW - 1) * step < W) return dw_load_x(row + c0, step);
  float lane[VW];
  for (int j = 0; j < VW; ++j) {
    const int c = c0 + j * step;
    lane[j] = c >= 0 && c < W ? LOAD_X(row, c) : 0.0f;
  }
  return VLOAD(lane);
}

AXLE_FUNC VEC dw_row_y(AXLE_GLOBAL const Y_ELEM* row, int c0, int W) {
  if (c0 + VW <= W) return dw_load_y(row + c0, 1);
  float lane[VW];
  for (int j = 0; j < VW; ++j) lane[j] = c0 + j < W ? LOAD_Y(row, c0 + j) : 0.0f;
  return VLOAD(lane);
}

// Lane j of v.
AXLE_FUNC float dw_lane(VEC v, int j) {
  float lane[VW];
  VSTORE(v, lane);
  return lane[j];
}

AXLE_FUNC void dw_store(AXLE_GLOBAL Y_ELEM* y, AXLE_GLOBAL const float* bias, AXLE_GLOBAL const Y_ELEM* z, ulong o,
                        int k, float acc, float alpha, float beta, int has_bias, int has_z, int act) {
  float v = alpha * acc;
  if (beta != 0.0f) v += beta * LOAD_Y(y, o);
  if (has_bias) v += bias[k];
  if (has_z) v += LOAD_Y(z, o);
  STORE_Y(y, o, axle_conv_act(v, act));
}

// Work-items: NHWC (ceil(C / VW * MULT / CB), ceil(N * P / rows)): CB channel blocks (VW
// channels of one multiplier index each) walked innermost, so that the pixels of a chunk
// are read CB * VW channels at a time (sequential memory); NCHW (K, ceil(N * P / rows)).
AXLE_KERNEL void axle_dw_fwd(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                             AXLE_GLOBAL const W_ELEM* AXLE_RESTRICT w, ulong w_off,
                             AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                             AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
                             AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, int N, int C, int H, int W,
                             int P, int Q, int pt, int pl, int rows, float alpha, float beta,
                             int has_bias, int has_z, int act) {
  const int row0 = (int)AXLE_GLOBAL_ID(1) * rows;
  const int K = C * MULT;
  x += x_off;
  w += w_off;
  y += y_off;
  bias += bias_off;
  z += z_off;
  const int row_end = min(row0 + rows, N * P);
#if LAYOUT == 1
  const int nb = C / VW * MULT;
  const int it0 = (int)AXLE_GLOBAL_ID(0) * CB;
  const bool vec_out = Y_T == 0 && MULT == 1 && VW > 1 && !has_z && beta == 0.0f && act == 0;
  int q_lo, q_hi;
  dw_interior(W, Q, pl, &q_lo, &q_hi);
  // The taps of the CB channel blocks, once: block b holds the VW filters
  // k = (c0 + j) * MULT + m of item it0 + b.
  VEC wts[CB * RS];
  for (int b = 0; b < CB; ++b) {
    const int it = min(it0 + b, nb - 1);
    const int m = it % MULT, c0 = it / MULT * VW;
    float lane[VW];
    for (int t = 0; t < RS; ++t) {
      for (int j = 0; j < VW; ++j) lane[j] = LOAD_W(w, (ulong)((c0 + j) * MULT + m) * RS + (FLIP ? RS - 1 - t : t));
      wts[b * RS + t] = VLOAD(lane);
    }
  }
  const int bn = min(CB, nb - it0);
  for (int np = row0; np < row_end; ++np) {
    const int n = np / P, p = np - n * P;
    // Chunks of QB pixels inside [q_lo, q_hi] without bounds checks; the pixels at the
    // borders one at a time with them. The channel blocks innermost: a chunk's pixels are
    // read CB * VW channels at a time.
    for (int q0 = 0; q0 < Q;) {
      const bool chunk = q0 >= q_lo && q0 + QB - 1 <= q_hi;
      const int qn = chunk ? QB : 1;
      for (int b = 0; b < bn; ++b) {
        const int it = it0 + b;
        const int m = it % MULT, c0 = it / MULT * VW;
        AXLE_GLOBAL const X_ELEM* xn = x + (ulong)n * H * W * C + c0;
        VEC wt[RS];
#pragma unroll
        for (int t = 0; t < RS; ++t) wt[t] = wts[b * RS + t];
        VEC acc[QB];
#pragma unroll
        for (int t = 0; t < QB; ++t) acc[t] = VZERO;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int ih = p * SH - pt + r * DH;
          if (ih < 0 || ih >= H) continue;
          AXLE_GLOBAL const X_ELEM* xrow = xn + (ulong)ih * W * C;
          const int iw0 = q0 * SW - pl;
          if (chunk) {
            AXLE_GLOBAL const X_ELEM* xp = xrow + (ulong)iw0 * C;
            DW_FWD_ROW(DW_LD_FAST, QB)
          } else {
            DW_FWD_ROW(DW_LD_EDGE, 1)
          }
        }
#pragma unroll
        for (int t = 0; t < QB; ++t) {
          if (t >= qn) continue;
          const ulong o = ((ulong)np * Q + q0 + t) * K + c0 * MULT + m;
#if VW > 1 && Y_T == 0 && MULT == 1
          if (vec_out) {
            VEC v = acc[t] * alpha;
            if (has_bias) v = v + VLOAD(bias + c0);
            VSTORE(v, y + o);
            continue;
          }
#endif
          float lane[VW];
          VSTORE(acc[t], lane);
          for (int j = 0; j < VW; ++j)
            dw_store(y, bias, z, o + (ulong)j * MULT, (c0 + j) * MULT + m, lane[j], alpha, beta, has_bias, has_z,
                     act);
        }
      }
      q0 += qn;
    }
  }
#else
  const int k = (int)AXLE_GLOBAL_ID(0), c = k / MULT;
  if (k >= K) return;
  float wt[RS];
  for (int t = 0; t < RS; ++t) wt[t] = LOAD_W(w, (ulong)k * RS + (FLIP ? RS - 1 - t : t));
  for (int np = row0; np < row_end; ++np) {
    const int n = np / P, p = np - n * P;
    AXLE_GLOBAL const X_ELEM* xp = x + ((ulong)n * C + c) * H * W;
    const ulong yrow = (((ulong)n * K + k) * P + p) * Q;
    for (int q0 = 0; q0 < Q; q0 += VW) {
      VEC acc = VZERO;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int ih = p * SH - pt + r * DH;
        if (ih < 0 || ih >= H) continue;
        AXLE_GLOBAL const X_ELEM* xrow = xp + (ulong)ih * W;
#pragma unroll
        for (int s = 0; s < S; ++s)
          acc = fma(dw_row_x(xrow, q0 * SW - pl + s * DW, SW, W), VSPLAT(wt[r * S + s]), acc);
      }
      const int qn = min(VW, Q - q0);
#if VW > 1 && Y_T == 0
      if (qn == VW && !has_z && beta == 0.0f && act == 0) {
        VEC v = acc * alpha;
        if (has_bias) v = v + VSPLAT(bias[k]);
        VSTORE(v, y + yrow + q0);
        continue;
      }
#endif
      float lane[VW];
      VSTORE(acc, lane);
      for (int j = 0; j < qn; ++j)
        dw_store(y, bias, z, yrow + q0 + j, k, lane[j], alpha, beta, has_bias, has_z, act);
    }
  }
#endif
}

// Tap t (t == RS: the bias) of channel k of one slice: its partial sum, or, when the rows
// form one slice, the result itself (no reduction launch).
AXLE_FUNC void dw_put(AXLE_GLOBAL float* part, AXLE_GLOBAL X_ELEM* dwt, ulong dw_off, AXLE_GLOBAL float* db,
                      ulong db_off, int slice, int slices, int t, int k, int K, float sum, int has_bias, float alpha,
                      float beta) {
  if (slices > 1) {
    part[((ulong)slice * (RS + 1) + t) * K + k] = sum;
    return;
  }
  float v = alpha * sum;
  if (t < RS) {
    const ulong o = dw_off + (ulong)k * RS + t;
    if (beta != 0.0f) v += beta * LOAD_X(dwt, o);
    STORE_X(dwt, o, v);
  } else if (has_bias) {
    if (beta != 0.0f) v += beta * db[db_off + k];
    db[db_off + k] = v;
  }
}

// Partials: part[((slice * (RS + 1) + tap) * K + k] for tap < RS (dw) and tap == RS (db).
// Work-items: NHWC (C / VW * MULT, slices), NCHW (K, slices); a slice is `rows` rows of
// the N * P output rows.
AXLE_KERNEL void axle_dw_bwd_w(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                               AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT dy, ulong dy_off,
                               AXLE_GLOBAL float* AXLE_RESTRICT part, ulong part_off,
                               AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dwt, ulong dw_off,
                               AXLE_GLOBAL float* AXLE_RESTRICT db, ulong db_off, int N, int C, int H, int W,
                               int P, int Q, int pt, int pl, int rows, int slices, int has_bias, float alpha,
                               float beta) {
  const int item = (int)AXLE_GLOBAL_ID(0);
  const int slice = (int)AXLE_GLOBAL_ID(1);
  const int row0 = slice * rows;
  const int K = C * MULT;
  x += x_off;
  dy += dy_off;
  part += part_off;
  const int row_end = min(row0 + rows, N * P);
  VEC acc[RS + 1];
#pragma unroll
  for (int t = 0; t <= RS; ++t) acc[t] = VZERO;
#if LAYOUT == 1
  if (item >= C / VW * MULT) return;
  const int m = item % MULT, c0 = item / MULT * VW;
  int q_lo, q_hi;
  dw_interior(W, Q, pl, &q_lo, &q_hi);
  for (int np = row0; np < row_end; ++np) {
    const int n = np / P, p = np - n * P;
    AXLE_GLOBAL const X_ELEM* xn = x + (ulong)n * H * W * C + c0;
    AXLE_GLOBAL const Y_ELEM* dyrow = dy + (ulong)np * Q * K + c0 * MULT + m;
    for (int q0 = 0; q0 < Q;) {
      const bool chunk = q0 >= q_lo && q0 + QB - 1 <= q_hi;
      const int qn = chunk ? QB : 1;
      VEC g[QB];
#pragma unroll
      for (int t = 0; t < QB; ++t) {
        const VEC gv = dw_load_y(dyrow + (ulong)(q0 + min(t, qn - 1)) * K, MULT);
        g[t] = t < qn ? gv : VZERO;
        acc[RS] = acc[RS] + g[t];
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int ih = p * SH - pt + r * DH;
        if (ih < 0 || ih >= H) continue;
        AXLE_GLOBAL const X_ELEM* xrow = xn + (ulong)ih * W * C;
        const int iw0 = q0 * SW - pl;
        if (chunk) {
          AXLE_GLOBAL const X_ELEM* xp = xrow + (ulong)iw0 * C;
          DW_BWD_ROW(DW_LD_FAST, QB)
        } else {
          DW_BWD_ROW(DW_LD_EDGE, 1)
        }
      }
      q0 += qn;
    }
  }
  for (int t = 0; t <= RS; ++t) {
    float lane[VW];
    VSTORE(acc[t], lane);
    for (int j = 0; j < VW; ++j) dw_put(part, dwt, dw_off, db, db_off, slice, slices, t, (c0 + j) * MULT + m, K,
                                        lane[j], has_bias, alpha, beta);
  }
#else
  if (item >= K) return;
  const int k = item, c = k / MULT;
  for (int np = row0; np < row_end; ++np) {
    const int n = np / P, p = np - n * P;
    AXLE_GLOBAL const X_ELEM* xp = x + ((ulong)n * C + c) * H * W;
    AXLE_GLOBAL const Y_ELEM* dyrow = dy + (((ulong)n * K + k) * P + p) * Q;
    for (int q0 = 0; q0 < Q; q0 += VW) {
      const VEC g = dw_row_y(dyrow, q0, Q);  // zeros past the row's end
      acc[RS] = acc[RS] + g;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int ih = p * SH - pt + r * DH;
        if (ih < 0 || ih >= H) continue;
        AXLE_GLOBAL const X_ELEM* xrow = xp + (ulong)ih * W;
#pragma unroll
        for (int s = 0; s < S; ++s)
          acc[r * S + s] = fma(dw_row_x(xrow, q0 * SW - pl + s * DW, SW, W), g, acc[r * S + s]);
      }
    }
  }
  for (int t = 0; t <= RS; ++t) {
    float lane[VW];
    VSTORE(acc[t], lane);
    float sum = 0.0f;
    for (int j = 0; j < VW; ++j) sum += lane[j];
    dw_put(part, dwt, dw_off, db, db_off, slice, slices, t, k, K, sum, has_bias, alpha, beta);
  }
#endif
}

// dw[k][tap] = alpha * sum over slices + beta * dw (tap < RS); db[k] likewise for tap ==
// RS when has_bias. One work-item per (tap, k); the slices are added in order.
AXLE_KERNEL void axle_dw_reduce(AXLE_GLOBAL const float* AXLE_RESTRICT part, ulong part_off,
                                AXLE_GLOBAL X_ELEM* AXLE_RESTRICT dwt, ulong dw_off,
                                AXLE_GLOBAL float* AXLE_RESTRICT db, ulong db_off, int K, int slices, int has_bias,
                                float alpha, float beta) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  const int taps = has_bias ? RS + 1 : RS;
  if (i >= taps * K) return;
  const int t = i / K, k = i - t * K;
  part += part_off;
  float sum = 0.0f;
  for (int sl = 0; sl < slices; ++sl) sum += part[((ulong)sl * (RS + 1) + t) * K + k];
  float v = alpha * sum;
  if (t < RS) {
    const ulong o = dw_off + (ulong)k * RS + t;
    if (beta != 0.0f) v += beta * LOAD_X(dwt, o);
    STORE_X(dwt, o, v);
  } else {
    if (beta != 0.0f) v += beta * db[db_off + k];
    db[db_off + k] = v;
  }
}
