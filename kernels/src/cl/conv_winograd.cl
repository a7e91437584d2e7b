// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=0
// axle-variant: -DX_T=0 -DY_T=0 -DLAYOUT=1
// axle-variant: -DX_T=1 -DY_T=1 -DLAYOUT=1
// axle-variant: -DX_T=2 -DY_T=0 -DLAYOUT=0
//
// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (portable dialect; also compiles
// as CUDA under NVRTC). With the transforms
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
//
// a 2x2 output tile is Y = A^T [ (G g G^T) .* (B^T d B) ] A over its 4x4 input tile d.
// The host runs three kernels around a batched GEMM over the 16 tile positions xi:
//   axle_wino_filter:  U[xi][g][k][c] = (G w[k][c] G^T)[xi]          (per run)
//   axle_wino_input:   V[xi][g][c][t] = (B^T d[n][c][tile t] B)[xi]
//   (blas)             M[xi][g][k][t] = sum_c U[xi][g][k][c] V[xi][g][c][t]
//   axle_wino_output:  y = act(alpha * (A^T M A) + beta * y + bias[k] + z)
// t runs over the N * TH * TW tiles (TH = ceil(P / 2), TW = ceil(Q / 2)), k and c over
// one group's filters and channels. LAYOUT, X_T and Y_T as in conv.cl.

#include "conv_types.clh"

// One work-item per (k, c) of the filters (k over all K, c within the group).
AXLE_KERNEL void axle_wino_filter(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT w, ulong w_off,
                                  AXLE_GLOBAL float* AXLE_RESTRICT u, ulong u_off, int K, int cg, int G) {
  const int c = (int)AXLE_GLOBAL_ID(0);
  const int k = (int)AXLE_GLOBAL_ID(1);
  if (c >= cg || k >= K) return;
  w += w_off;
  u += u_off;
  float g[3][3];
  for (int r = 0; r < 3; ++r)
    for (int s = 0; s < 3; ++s)
#if LAYOUT == 0
      g[r][s] = LOAD_X(w, ((ulong)k * cg + c) * 9 + r * 3 + s);
#else
      g[r][s] = LOAD_X(w, ((ulong)k * 9 + r * 3 + s) * cg + c);
#endif
  // t = G g (4 x 3), then U = t G^T (4 x 4).
  float t[4][3];
  for (int s = 0; s < 3; ++s) {
    t[0][s] = g[0][s];
    t[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
    t[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
    t[3][s] = g[2][s];
  }
  const int kg = K / G, grp = k / kg, kl = k - grp * kg;
  const ulong plane = (ulong)G * kg * cg;  // one xi
  const ulong base = ((ulong)grp * kg + kl) * cg + c;
  for (int i = 0; i < 4; ++i) {
    const float v0 = t[i][0], v1 = 0.5f * (t[i][0] + t[i][1] + t[i][2]), v2 = 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                v3 = t[i][2];
    u[(ulong)(i * 4 + 0) * plane + base] = v0;
    u[(ulong)(i * 4 + 1) * plane + base] = v1;
    u[(ulong)(i * 4 + 2) * plane + base] = v2;
    u[(ulong)(i * 4 + 3) * plane + base] = v3;
  }
}

// One work-item per (tile t, channel c of all C).
AXLE_KERNEL void axle_wino_input(AXLE_GLOBAL const X_ELEM* AXLE_RESTRICT x, ulong x_off,
                                 AXLE_GLOBAL float* AXLE_RESTRICT v, ulong v_off, int N, int C, int H, int W, int TH,
                                 int TW, int pt, int pl, int G) {
  const int t = (int)AXLE_GLOBAL_ID(0);
  const int c = (int)AXLE_GLOBAL_ID(1);
  const int T = N * TH * TW;
  if (t >= T || c >= C) return;
  x += x_off;
  v += v_off;
  const int tw = t % TW, th = (t / TW) % TH, n = t / (TW * TH);
  const int h0 = 2 * th - pt, w0 = 2 * tw - pl;
  float d[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int ih = h0 + i, iw = w0 + j;
      float e = 0.0f;
      if (ih >= 0 && ih < H && iw >= 0 && iw < W)
#if LAYOUT == 0
        e = LOAD_X(x, (((ulong)n * C + c) * H + ih) * W + iw);
#else
        e = LOAD_X(x, (((ulong)n * H + ih) * W + iw) * C + c);
#endif
      d[i][j] = e;
    }
  // s = B^T d (rows), then V = s B (columns).
  float s[4][4];
  for (int j = 0; j < 4; ++j) {
    s[0][j] = d[0][j] - d[2][j];
    s[1][j] = d[1][j] + d[2][j];
    s[2][j] = d[2][j] - d[1][j];
    s[3][j] = d[1][j] - d[3][j];
  }
  const int cg = C / G, grp = c / cg, cl = c - grp * cg;
  const ulong plane = (ulong)C * T;  // one xi: G groups of cg x T
  const ulong base = ((ulong)grp * cg + cl) * T + t;
  for (int i = 0; i < 4; ++i) {
    v[(ulong)(i * 4 + 0) * plane + base] = s[i][0] - s[i][2];
    v[(ulong)(i * 4 + 1) * plane + base] = s[i][1] + s[i][2];
    v[(ulong)(i * 4 + 2) * plane + base] = s[i][2] - s[i][1];
    v[(ulong)(i * 4 + 3) * plane + base] = s[i][1] - s[i][3];
  }
}

// One work-item per (tile t, output channel k of all K).
AXLE_KERNEL void axle_wino_output(AXLE_GLOBAL const float* AXLE_RESTRICT m, ulong m_off,
                                  AXLE_GLOBAL Y_ELEM* AXLE_RESTRICT y, ulong y_off,
                                  AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off,
                                  AXLE_GLOBAL const Y_ELEM* AXLE_RESTRICT z, ulong z_off, int N, int K, int P, int Q,
                                  int TH, int TW, float alpha, float beta, int has_bias, int has_z, int act) {
  const int t = (int)AXLE_GLOBAL_ID(0);
  const int k = (int)AXLE_GLOBAL_ID(1);
  const int T = N * TH * TW;
  if (t >= T || k >= K) return;
  m += m_off;
  y += y_off;
  bias += bias_off;
  z += z_off;
  const ulong plane = (ulong)K * T;
  const ulong base = (ulong)k * T + t;
  float e[4][4];
  for (int xi = 0; xi < 16; ++xi) e[xi / 4][xi % 4] = m[(ulong)xi * plane + base];
  // o = A^T e (2 x 4), then Y = o A (2 x 2).
  float o[2][4];
  for (int j = 0; j < 4; ++j) {
    o[0][j] = e[0][j] + e[1][j] + e[2][j];
    o[1][j] = e[1][j] - e[2][j] - e[3][j];
  }
  const int tw = t % TW, th = (t / TW) % TH, n = t / (TW * TH);
  const float b = has_bias ? bias[k] : 0.0f;
  for (int i = 0; i < 2; ++i) {
    const int p = 2 * th + i;
    if (p >= P) continue;
    for (int j = 0; j < 2; ++j) {
      const int q = 2 * tw + j;
      if (q >= Q) continue;
      const float acc = j == 0 ? o[i][0] + o[i][1] + o[i][2] : o[i][1] - o[i][2] - o[i][3];
#if LAYOUT == 0
      const ulong idx = (((ulong)n * K + k) * P + p) * Q + q;
#else
      const ulong idx = (((ulong)n * P + p) * Q + q) * K + k;
#endif
      float r = alpha * acc;
      if (beta != 0.0f) r += beta * LOAD_Y(y, idx);
      r += b;
      if (has_z) r += LOAD_Y(z, idx);
      STORE_Y(y, idx, axle_conv_act(r, act));
    }
  }
}
