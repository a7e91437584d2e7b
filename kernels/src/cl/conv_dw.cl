// axle-variant: -DY_T=0
// axle-variant: -DY_T=1
// axle-variant: -DY_T=2
//
// Depthwise convolution (groups == C, K = M * C: channel multiplier M) over NHWC
// tensors with f32 x and w (portable dialect; also compiles as CUDA under NVRTC).
// One work-item computes one output row for 16 adjacent channels, QB pixels at a time
// in float16 accumulators: x is read 16 channels at a time (contiguous in NHWC), the
// 16 filters' taps are gathered once per work-item (R * S <= MAXRS). Fused epilogue as
// conv.cl's: y = act(alpha * acc + beta * y + bias[k] + z); Y_T (y, z): 0 f32, 1 f16,
// 2 bf16. Work-items: (ceil(K / 16), N * P).

#include "conv_types.clh"

#define QB 4
#define MAXRS 25  // filters up to 5x5

AXLE_KERNEL void axle_conv_dw_nhwc(AXLE_GLOBAL const float* AXLE_RESTRICT x, ulong x_off,
                                   AXLE_GLOBAL const float* AXLE_RESTRICT w, ulong w_off,
                                   AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                                   AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
                                   AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, int N, int C, int H, int W,
                                   int K, int R, int S, int P, int Q, int sh, int sw, int pt, int pl, int dh, int dw,
                                   float alpha, float beta, int has_bias, int has_z, int act) {
  const int k0 = (int)AXLE_GLOBAL_ID(0) * 16;
  const int np = (int)AXLE_GLOBAL_ID(1);
  if (k0 >= K || np >= N * P) return;
  x += x_off;
  w += w_off;
  y += y_off;
  bias += bias_off;
  z += z_off;
  const int n = np / P, p = np - n * P;
  const int kn = min(16, K - k0), mult = K / C;
  float lane[16];
  // The 16 filters' taps, once per work-item (R * S <= MAXRS).
  float16 wt[MAXRS];
  for (int t = 0; t < R * S; ++t) {
    for (int j = 0; j < 16; ++j) lane[j] = j < kn ? w[(ulong)(k0 + j) * R * S + t] : 0.0f;
    wt[t] = vload16(0, lane);
  }
  const bool direct_x = mult == 1 && kn == 16;
  for (int q0 = 0; q0 < Q; q0 += QB) {
    const int qn = min(QB, Q - q0);
    float16 acc[QB];
    for (int t = 0; t < QB; ++t) acc[t] = AXLE_SPLAT(float16, 0.0f);
    // Interior chunks (every tap of every pixel inside the row): no bounds checks.
    const bool inside = direct_x && qn == QB && q0 * sw - pl >= 0 && (q0 + QB - 1) * sw - pl + (S - 1) * dw < W;
    for (int r = 0; r < R; ++r) {
      const int ih = p * sh - pt + r * dh;
      if (ih < 0 || ih >= H) continue;
      AXLE_GLOBAL const float* xrow = x + ((ulong)n * H + ih) * W * C;
      if (inside) {
        AXLE_GLOBAL const float* xq = xrow + (ulong)(q0 * sw - pl) * C + k0;
        for (int s = 0; s < S; ++s) {
          const float16 wv = wt[r * S + s];
          AXLE_GLOBAL const float* xs = xq + (ulong)s * dw * C;
#pragma unroll
          for (int t = 0; t < QB; ++t) acc[t] = fma(vload16(0, xs + (ulong)t * sw * C), wv, acc[t]);
        }
        continue;
      }
      for (int s = 0; s < S; ++s) {
        const float16 wv = wt[r * S + s];
        for (int t = 0; t < qn; ++t) {
          const int iw = (q0 + t) * sw - pl + s * dw;
          if (iw < 0 || iw >= W) continue;
          AXLE_GLOBAL const float* xp = xrow + (ulong)iw * C;
          float16 xv;
          if (direct_x) {
            xv = vload16(0, xp + k0);
          } else {
            for (int j = 0; j < 16; ++j) lane[j] = j < kn ? xp[(k0 + j) / mult] : 0.0f;
            xv = vload16(0, lane);
          }
          acc[t] = fma(xv, wv, acc[t]);
        }
      }
    }
    for (int t = 0; t < qn; ++t) {
      const ulong o = (((ulong)n * P + p) * Q + q0 + t) * K + k0;
#if Y_T == 0
      if (kn == 16 && !has_z && beta == 0.0f && act == 0) {  // the common case: one vector store
        float16 v = acc[t] * alpha;
        if (has_bias) v = v + vload16(0, bias + k0);
        vstore16(v, 0, y + o);
        continue;
      }
#endif
      vstore16(acc[t], 0, lane);
      for (int j = 0; j < kn; ++j) {
        float v = alpha * lane[j];
        if (beta != 0.0f) v += beta * LOAD_Y(y, o + j);
        if (has_bias) v += bias[k0 + j];
        if (has_z) v += LOAD_Y(z, o + j);
        STORE_Y(y, o + j, axle_conv_act(v, act));
      }
    }
  }
}
