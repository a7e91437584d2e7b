// f32 implicit-GEMM forward convolution on the CUDA cores (FFMA, no tensor cores),
// f32 accumulation, NCHW (KCRS filters) or NHWC (KRSC filters):
//
//   y = act(alpha * conv(x, w) + beta * y + bias[k] + z)
//
// One GEMM per group (grid z): rows m = (n, p, q) output pixels, columns the group's
// K/groups filters, reduction over the filter's storage order ((c, r, s) with s
// fastest for KCRS, (r, s, c) with c fastest for KRSC), so that a filter is one row of
// w. A CTA computes a 128 x 64 tile (output pixels x filters) with 128 threads, as
// sgemm_simt.cu's register tiling: 2 x 2 warps of 64 x 32, each lane 8 x 8 made of
// 2 x 2 blocks of 4 x 4 spread across the warp tile (conflict-free 16-byte fragment
// loads). Both operands are staged k-major in shared memory (one row per reduction
// index, pixels or filters contiguous) and double-buffered: the next slice is loaded
// into registers while the current one is multiplied (one barrier per slice).
// The gather: every thread owns one A row (an output pixel, decoded once) and loads its
// 8 reduction values of a slice; the slice's first (c, r, s) is decoded once and then
// stepped, so the inner loads do no division. Out-of-range and padding taps read as
// zero, so any shape is served (C/groups, K, strides, padding, dilation, groups).
// Index arithmetic is 32-bit: every tensor has fewer than 2^31 elements and the padded
// spatial sizes stay below 2^30 (the host checks both).
//
// Compile-time configuration (-D, chosen by the host, conv_cuda.cpp):
//   AXLE_CONV_LAYOUT  0: NCHW x, KCRS w, NKPQ y; 1: NHWC x, KRSC w, NPQK y
// Run-time epilogue parameters (conv_epilogue.cuh): y_type 0 f32, 1 f16, 2 bf16;
// has_bias, has_z; act 0 none, 1 ReLU, 2 GELU (erf). beta == 0 never reads y.
//
// NVRTC compile checks (tests/nvrtc_compile_test.cpp):
// axle-variant: -DAXLE_CONV_LAYOUT=0
// axle-variant: -DAXLE_CONV_LAYOUT=1

#ifndef AXLE_CONV_LAYOUT
#define AXLE_CONV_LAYOUT 1
#endif

namespace axle_csimt {

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

constexpr int kThreads = 128;
constexpr int kWarpsM = 2, kWarpsN = 2, kLanesM = 8, kLanesN = 4, kRM = 2, kRN = 2;
constexpr int kTM = 4 * kRM, kTN = 4 * kRN;              // per-thread tile: 8 x 8
constexpr int kWM = kLanesM * kTM, kWN = kLanesN * kTN;  // warp tile: 64 x 32
constexpr int kBM = kWarpsM * kWM, kBN = kWarpsN * kWN;  // CTA tile: 128 x 64
constexpr int kBK = 8;                                   // reduction depth of a slice
constexpr int kPad = 4;                                  // floats after each shared row
constexpr int kLdA = kBM + kPad, kLdB = kBN + kPad;
constexpr int kGroupM = 8;                   // CTA rasterisation: 8 tile rows per group
constexpr int kBPer = kBN * kBK / kThreads;  // B values per thread per slice: 4

static_assert(kBM == kThreads, "every thread owns one A row");
static_assert(kWarpsM * kWarpsN * 32 == kThreads, "warp layout does not match the thread count");
static_assert(kLanesM * kLanesN == 32, "a warp has 32 lanes");
static_assert(kBPer * 2 == kBK, "two threads share a filter row of a slice");

__device__ __forceinline__ float4 lds4(const float* p) { return *reinterpret_cast<const float4*>(p); }

// ---- epilogue helpers ----
#include "gemm_epilogue.cuh"
// after gemm_epilogue.cuh: it uses load_c, store_c and activate
#include "conv_epilogue.cuh"

struct Geometry {
  int C, H, W, R, S, cg, kg, red;  // red = C/groups * R * S
  int dil_h, dil_w;
};

// The A row (one output pixel) of a thread: base (n*H for NHWC, n*C for NCHW) and the
// input coordinates of tap (0, 0); ih = -2^30 for a row past M (fails every check).
struct PixelRow {
  int base, ih, iw;
};

// The thread's 8 values of A and 4 of B for reduction values k0 .. k0 + 7.
__device__ __forceinline__ void load_slice(float (&ra)[kBK], float (&rb)[kBPer], const float* __restrict__ x,
                                           const float* __restrict__ w, const Geometry& g, const PixelRow& pr, int n0,
                                           int k0, int tid) {
  // Decode the slice's first reduction index, then step.
#if AXLE_CONV_LAYOUT == 1
  const int tap = k0 / g.cg;
  int c = k0 - tap * g.cg;
  int r = tap / g.S;
  int s = tap - r * g.S;
#else
  const int cr = k0 / g.S;
  int s = k0 - cr * g.S;
  int c = cr / g.R;
  int r = cr - c * g.R;
#endif
  int dr = r * g.dil_h, ds = s * g.dil_w;
#pragma unroll
  for (int j = 0; j < kBK; ++j) {
    const int ih = pr.ih + dr, iw = pr.iw + ds;
    const bool ok = k0 + j < g.red && (unsigned)ih < (unsigned)g.H && (unsigned)iw < (unsigned)g.W;
#if AXLE_CONV_LAYOUT == 1
    ra[j] = ok ? x[((pr.base + ih) * g.W + iw) * g.C + c] : 0.f;
    if (++c == g.cg) {
      c = 0;
      ds += g.dil_w;
      if (++s == g.S) {
        s = 0;
        ds = 0;
        dr += g.dil_h;
      }
    }
#else
    ra[j] = ok ? x[((pr.base + c) * g.H + ih) * g.W + iw] : 0.f;
    ds += g.dil_w;
    if (++s == g.S) {
      s = 0;
      ds = 0;
      dr += g.dil_h;
      if (++r == g.R) {
        r = 0;
        dr = 0;
        ++c;
      }
    }
#endif
  }
  const int n = tid >> 1, kq = k0 + (tid & 1) * kBPer;
  const bool n_ok = n0 + n < g.kg;
  const float* wr = w + (n0 + n) * g.red;
#pragma unroll
  for (int j = 0; j < kBPer; ++j) rb[j] = n_ok && kq + j < g.red ? wr[kq + j] : 0.f;
}

__device__ __forceinline__ void store_slice(float* s_a, float* s_b, const float (&ra)[kBK], const float (&rb)[kBPer],
                                            int tid) {
#pragma unroll
  for (int j = 0; j < kBK; ++j) s_a[j * kLdA + tid] = ra[j];
  const int n = tid >> 1, kq = (tid & 1) * kBPer;
#pragma unroll
  for (int j = 0; j < kBPer; ++j) s_b[(kq + j) * kLdB + n] = rb[j];
}

}  // namespace axle_csimt

using namespace axle_csimt;

extern "C" __global__ void __launch_bounds__(128, 3)
    axle_conv_simt(const float* __restrict__ X, const float* __restrict__ Wt, void* Y, const float* __restrict__ bias,
                   const void* Z, int N, int C, int H, int W, int K, int R, int S, int P, int Q, int stride_h,
                   int stride_w, int pad_top, int pad_left, int dil_h, int dil_w, int groups, float alpha, float beta,
                   int y_type, int has_bias, int has_z, int act) {
  __shared__ __align__(16) float s_a[2][kBK * kLdA];
  __shared__ __align__(16) float s_b[2][kBK * kLdB];
  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int wm = (warp / kWarpsN) * kWM, wn = (warp % kWarpsN) * kWN;
  const int lm = (lane / kLanesN) * 4, ln = (lane % kLanesN) * 4;

  Geometry g;
  g.C = C, g.H = H, g.W = W, g.R = R, g.S = S;
  g.cg = C / groups, g.kg = K / groups, g.red = g.cg * R * S;
  g.dil_h = dil_h, g.dil_w = dil_w;
  const int M = N * P * Q, PQ = P * Q;

  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (g.kg + kBN - 1) / kBN;
  int tm, tn;
  grouped_tile(blockIdx.x, tiles_m, tiles_n, kGroupM, tm, tn);
  if (tm >= tiles_m || tn >= tiles_n) return;
  const int m0 = tm * kBM, n0 = tn * kBN;
  const int grp = blockIdx.z;
#if AXLE_CONV_LAYOUT == 1
  const float* x = X + grp * g.cg;  // the group's first channel of pixel 0
#else
  const float* x = X + grp * g.cg * H * W;  // the group's first channel plane of image 0
#endif
  const float* w = Wt + grp * g.kg * g.red;
  const int kbase = grp * g.kg;

  PixelRow pr;
  {
    const int m = m0 + tid;
    if (m < M) {
      const int n = m / PQ, pq = m - n * PQ, p = pq / Q, q = pq - p * Q;
      pr.base = AXLE_CONV_LAYOUT == 1 ? n * H : n * C;
      pr.ih = p * stride_h - pad_top;
      pr.iw = q * stride_w - pad_left;
    } else {
      pr.base = 0;
      pr.ih = -(1 << 30);
      pr.iw = 0;
    }
  }

  float acc[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < kTN; ++j) acc[i][j] = 0.f;

  const int KT = (g.red + kBK - 1) / kBK;
  float ra[kBK], rb[kBPer];
  load_slice(ra, rb, x, w, g, pr, n0, 0, tid);
  store_slice(s_a[0], s_b[0], ra, rb, tid);
  __syncthreads();

  for (int kt = 0; kt < KT; ++kt) {
    const bool more = kt + 1 < KT;
    if (more) load_slice(ra, rb, x, w, g, pr, n0, (kt + 1) * kBK, tid);
    const float* sa = s_a[kt & 1] + wm + lm;
    const float* sb = s_b[kt & 1] + wn + ln;
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float fa[kTM], fb[kTN];
#pragma unroll
      for (int i = 0; i < kRM; ++i) {
        const float4 t = lds4(sa + kk * kLdA + i * kLanesM * 4);
        fa[4 * i] = t.x;
        fa[4 * i + 1] = t.y;
        fa[4 * i + 2] = t.z;
        fa[4 * i + 3] = t.w;
      }
#pragma unroll
      for (int j = 0; j < kRN; ++j) {
        const float4 t = lds4(sb + kk * kLdB + j * kLanesN * 4);
        fb[4 * j] = t.x;
        fb[4 * j + 1] = t.y;
        fb[4 * j + 2] = t.z;
        fb[4 * j + 3] = t.w;
      }
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
    }
    if (more) store_slice(s_a[(kt + 1) & 1], s_b[(kt + 1) & 1], ra, rb, tid);
    __syncthreads();  // slice kt+1 is visible; every warp is done with slice kt
  }

  // Epilogue from registers: thread rows wm + lm + 32 i + r, columns wn + ln + 16 j + q.
#pragma unroll
  for (int i = 0; i < kRM; ++i)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int row = m0 + wm + lm + i * kLanesM * 4 + r;
      if (row >= M) continue;
#if AXLE_CONV_LAYOUT == 1
      const i64 row_idx = (i64)row * K + kbase;  // y NPQK
      const i64 col_step = 1;
#else
      const int n = row / PQ, pq = row - n * PQ;
      const i64 row_idx = ((i64)n * K + kbase) * PQ + pq;  // y NKPQ
      const i64 col_step = PQ;
#endif
#pragma unroll
      for (int j = 0; j < kRN; ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int col = n0 + wn + ln + j * kLanesN * 4 + q;
          if (col < g.kg)
            conv_epilogue_one(Y, Z, bias, row_idx + col * col_step, kbase + col, acc[4 * i + r][4 * j + q], alpha, beta,
                              y_type, has_bias, has_z, act);
        }
    }
}
