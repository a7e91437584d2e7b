// Tensor-core implicit-GEMM forward convolution for sm_80 and newer: warp-level
// mma.sync (m16n8k16 f16/bf16, m16n8k8 tf32; f32 accumulation) fed by a cp.async
// multi-stage pipeline through XOR-swizzled shared memory (ldmatrix), as gemm_mma.cu.
//
//   y = act(alpha * conv(x, w) + beta * y + bias[k] + z)
//
// x NHWC, w KRSC, y (and z) NPQK. One GEMM per group (grid z): rows m = (n, p, q)
// output pixels (M = N*P*Q), columns the group's K/groups filters, reduction over
// (r, s, c) with c fastest (R*S*C/groups), so that a filter is one row of w and a tap
// of an output pixel is C/groups contiguous input channels. A tile's A rows are
// gathered from x: every thread owns two fixed rows (their (n, p, q) decoded once),
// and each 16-byte chunk of channels (8 16-bit or 4 f32) is one tap of one pixel,
// zero-filled where the tap falls in the padding or past the reduction (cp.async with
// src-size 0). C/groups must be a multiple of the chunk so that no chunk straddles two
// taps; the host refuses others.
//
// CTA tile 128 x AXLE_CONV_BN (output pixels x filters), 8 warps, 64 bytes of
// reduction per stage (32 16-bit values, 16 f32):
//   BN  warps (m x n)  warp tile  stages  shared
//   128 2 x 4          64 x 32    3       48 KiB
//    64 4 x 2          32 x 32    4       48 KiB
// Every load is predicated on the bounds, so any M, K and reduction is served.
//
// Compile-time configuration (-D, chosen by the host, conv_cuda.cpp):
//   AXLE_CONV_ELEM   0: f16 inputs, 1: bf16 inputs, 2: f32 inputs rounded to tf32
//   AXLE_CONV_BN     128 or 64: filters per CTA tile
//   AXLE_CONV_VEC16  1: x and w start 16-byte aligned (16-byte cp.async);
//                    0: element-wise loads (any view offset)
// Run-time epilogue parameters (conv_epilogue.cuh): y_type 0 f32, 1 f16, 2 bf16;
// has_bias, has_z; act 0 none, 1 ReLU, 2 GELU (erf). beta == 0 never reads y.
// Index arithmetic is 32-bit: every tensor has fewer than 2^31 elements and the padded
// spatial sizes stay below 2^30 (the host checks both).
//
// NVRTC compile checks (tests/nvrtc_compile_test.cpp):
// axle-variant: -DAXLE_CONV_ELEM=0 -DAXLE_CONV_BN=128 -DAXLE_CONV_VEC16=1
// axle-variant: -DAXLE_CONV_ELEM=1 -DAXLE_CONV_BN=128 -DAXLE_CONV_VEC16=1
// axle-variant: -DAXLE_CONV_ELEM=0 -DAXLE_CONV_BN=64 -DAXLE_CONV_VEC16=1
// axle-variant: -DAXLE_CONV_ELEM=1 -DAXLE_CONV_BN=64 -DAXLE_CONV_VEC16=1
// axle-variant: -DAXLE_CONV_ELEM=0 -DAXLE_CONV_BN=128 -DAXLE_CONV_VEC16=0
// axle-variant: -DAXLE_CONV_ELEM=1 -DAXLE_CONV_BN=128 -DAXLE_CONV_VEC16=0
// axle-variant: -DAXLE_CONV_ELEM=0 -DAXLE_CONV_BN=64 -DAXLE_CONV_VEC16=0
// axle-variant: -DAXLE_CONV_ELEM=1 -DAXLE_CONV_BN=64 -DAXLE_CONV_VEC16=0
// axle-variant: -DAXLE_CONV_ELEM=2 -DAXLE_CONV_BN=128 -DAXLE_CONV_VEC16=1
// axle-variant: -DAXLE_CONV_ELEM=2 -DAXLE_CONV_BN=64 -DAXLE_CONV_VEC16=1
// axle-variant: -DAXLE_CONV_ELEM=2 -DAXLE_CONV_BN=128 -DAXLE_CONV_VEC16=0
// axle-variant: -DAXLE_CONV_ELEM=2 -DAXLE_CONV_BN=64 -DAXLE_CONV_VEC16=0

#ifndef AXLE_CONV_ELEM
#define AXLE_CONV_ELEM 0
#endif
#ifndef AXLE_CONV_BN
#define AXLE_CONV_BN 128
#endif
#ifndef AXLE_CONV_VEC16
#define AXLE_CONV_VEC16 1
#endif

namespace axle_cmma {

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#if AXLE_CONV_ELEM == 2
typedef float Elem;
#else
typedef u16 Elem;
#endif

constexpr int kBM = 128, kBN = AXLE_CONV_BN;
constexpr int kThreads = 256;
constexpr int kEs = (int)sizeof(Elem);
constexpr int kBK = 64 / kEs;      // reduction depth of a stage: 32 (16-bit) or 16 (f32)
constexpr int kCE = 16 / kEs;      // elements per 16-byte chunk
constexpr int kWarpsN = kBN / 32;  // warp tiles are 32 filters wide
constexpr int kWarpsM = 8 / kWarpsN;
constexpr int kWM = kBM / kWarpsM;  // 64 or 32 output pixels per warp
constexpr int kMT = kWM / 16;       // m16 tiles per warp
constexpr int kStages = kBN == 128 ? 3 : 4;
constexpr int kATileBytes = kBM * 64;  // 128 rows of 64 bytes
constexpr int kBTileBytes = kBN * 64;
constexpr int kStageBytes = kATileBytes + kBTileBytes;
constexpr int kGroupM = 8;                  // CTA rasterisation: 8 tile rows per group
constexpr int kARows = kBM * 4 / kThreads;  // A chunks (rows) per thread: 2
constexpr int kBRows = kBN * 4 / kThreads;  // B chunks (rows) per thread: 2 or 1
constexpr int kNoRow = -(1 << 30);          // input row of an output pixel past M

static_assert(kBN == 128 || kBN == 64, "AXLE_CONV_BN must be 128 or 64");
static_assert(kStages * kStageBytes <= 48 * 1024, "static shared memory is limited to 48 KiB");

// K-major tile: rows of 64 bytes (32 reduction values); the 16-byte chunk index is
// XORed with bits 1..2 of the row so that the 8 rows of one ldmatrix phase fall in
// distinct banks (gemm_mma.cu's off_kmajor).
__device__ __forceinline__ u32 off_kmajor(int row, int chunk) {
  return (u32)(row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4));
}

#define AXLE_MMA_BF16 (AXLE_CONV_ELEM == 1)
#include "ptx_helpers.cuh"

// One 16-byte chunk (kCE elements) global -> shared; `valid` false zero-fills it.
__device__ __forceinline__ void load_chunk(u32 dst, const Elem* src, bool valid) {
#if AXLE_CONV_VEC16
  cp_async16(dst, src, valid ? 16 : 0);  // bytes past src_bytes are zero-filled
#else
  u32 w[4] = {0u, 0u, 0u, 0u};
  if (valid) {
#pragma unroll
    for (int e = 0; e < kCE; ++e) {
      if (kEs == 4)
        w[e] = elem_bits(src[e]);
      else
        w[e >> 1] |= elem_bits(src[e]) << ((e & 1) * 16);
    }
  }
  st_shared_v4(dst, w[0], w[1], w[2], w[3]);
#endif
}

// ---- epilogue helpers ----
#include "gemm_epilogue.cuh"
// after gemm_epilogue.cuh: it uses load_c, store_c and activate
#include "conv_epilogue.cuh"

// The problem as the loaders see it (one group).
struct Geometry {
  int C, H, W, S, cg, kg, red;  // red = R * S * C/groups
  int dil_h, dil_w;
};

// One stage: the A slice (gathered pixels) and the B slice (filter rows) of reduction
// values k0 .. k0 + kBK - 1 into the shared tiles at s_a / s_a + kATileBytes.
__device__ __forceinline__ void load_stage(u32 s_a, const Elem* __restrict__ x, const Elem* __restrict__ w,
                                           const Geometry& g, const int (&a_nh)[kARows], const int (&a_ih)[kARows],
                                           const int (&a_iw)[kARows], int n0, int k0, int tid) {
  const int ch = tid & 3, row0 = tid >> 2;
  const int kk = k0 + ch * kCE;
  const bool k_ok = kk < g.red;
  // The chunk's tap (r, s) and first channel c; all its channels share the tap.
  int dr = 0, ds = 0, c = 0;
  if (k_ok) {
    const int tap = kk / g.cg;
    c = kk - tap * g.cg;
    const int r = tap / g.S;
    dr = r * g.dil_h;
    ds = (tap - r * g.S) * g.dil_w;
  }
#pragma unroll
  for (int i = 0; i < kARows; ++i) {
    const int row = row0 + i * (kThreads / 4);
    const int ih = a_ih[i] + dr, iw = a_iw[i] + ds;
    const bool ok = k_ok && (unsigned)ih < (unsigned)g.H && (unsigned)iw < (unsigned)g.W;
    const Elem* src = ok ? x + ((a_nh[i] + ih) * g.W + iw) * g.C + c : x;
    load_chunk(s_a + off_kmajor(row, ch), src, ok);
  }
  const u32 s_b = s_a + kATileBytes;
#pragma unroll
  for (int i = 0; i < kBRows; ++i) {
    const int row = row0 + i * (kThreads / 4);
    const bool ok = k_ok && n0 + row < g.kg;
    const Elem* src = ok ? w + (n0 + row) * g.red + kk : w;
    load_chunk(s_b + off_kmajor(row, ch), src, ok);
  }
}

}  // namespace axle_cmma

using namespace axle_cmma;

// tf32 fragments are read with scalar loads and need more registers: one CTA per SM
// with the 128-wide tile.
#if AXLE_CONV_ELEM == 2 && AXLE_CONV_BN == 128
#define AXLE_CONV_MIN_CTAS 1
#else
#define AXLE_CONV_MIN_CTAS 2
#endif

extern "C" __global__ void __launch_bounds__(256, AXLE_CONV_MIN_CTAS)
    axle_conv_mma(const Elem* __restrict__ X, const Elem* __restrict__ Wt, void* Y, const float* __restrict__ bias,
                  const void* Z, int N, int C, int H, int W, int K, int R, int S, int P, int Q, int stride_h,
                  int stride_w, int pad_top, int pad_left, int dil_h, int dil_w, int groups, float alpha, float beta,
                  int y_type, int has_bias, int has_z, int act) {
  __shared__ __align__(128) unsigned char smem[kStages * kStageBytes];
  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int wm = (warp / kWarpsN) * kWM, wn = (warp % kWarpsN) * 32;
  const int gq = lane >> 2, t = lane & 3;

  Geometry g;
  g.C = C, g.H = H, g.W = W, g.S = S;
  g.cg = C / groups, g.kg = K / groups, g.red = R * S * g.cg;
  g.dil_h = dil_h, g.dil_w = dil_w;
  const int M = N * P * Q, PQ = P * Q;

  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (g.kg + kBN - 1) / kBN;
  int tm, tn;
  grouped_tile(blockIdx.x, tiles_m, tiles_n, kGroupM, tm, tn);
  if (tm >= tiles_m || tn >= tiles_n) return;
  const int m0 = tm * kBM, n0 = tn * kBN;
  const int grp = blockIdx.z;
  const Elem* x = X + grp * g.cg;           // this group's first channel
  const Elem* w = Wt + grp * g.kg * g.red;  // this group's first filter
  const int kbase = grp * g.kg;             // this group's first output channel

  // The two output pixels whose A rows this thread loads: image row base and the
  // input coordinates of tap (0, 0).
  int a_nh[kARows], a_ih[kARows], a_iw[kARows];
#pragma unroll
  for (int i = 0; i < kARows; ++i) {
    const int m = m0 + (tid >> 2) + i * (kThreads / 4);
    if (m < M) {
      const int n = m / PQ, pq = m - n * PQ, p = pq / Q, q = pq - p * Q;
      a_nh[i] = n * H;
      a_ih[i] = p * stride_h - pad_top;
      a_iw[i] = q * stride_w - pad_left;
    } else {
      a_nh[i] = 0;
      a_ih[i] = kNoRow;  // fails every bounds check
      a_iw[i] = 0;
    }
  }

  const int KT = (g.red + kBK - 1) / kBK;
  const u32 s_base = smem_u32(smem);

  float acc[kMT][4][4];
#pragma unroll
  for (int i = 0; i < kMT; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < KT) load_stage(s_base + s * kStageBytes, x, w, g, a_nh, a_ih, a_iw, n0, s * kBK, tid);
    cp_async_commit();
  }

#if AXLE_CONV_ELEM != 2
  const int j8 = lane >> 3, i8 = lane & 7;
#endif
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kt is visible; every warp is done with stage kt-1
    {
      const int nk = kt + kStages - 1;
      if (nk < KT) load_stage(s_base + (nk % kStages) * kStageBytes, x, w, g, a_nh, a_ih, a_iw, n0, nk * kBK, tid);
      cp_async_commit();
    }
    const u32 sA = s_base + (kt % kStages) * kStageBytes;
    const u32 sB = sA + kATileBytes;
#if AXLE_CONV_ELEM == 2
    // tf32: m16n8k8, fragments read with 32-bit shared loads (gemm_mma.cu's K-major path).
#pragma unroll
    for (int ks = 0; ks < kBK / 8; ++ks) {
      u32 bf[4][2];
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int n = wn + nt * 8 + gq, k = ks * 8 + t + r * 4;
          bf[nt][r] = to_tf32(ld_shared_u32(sB + off_kmajor(n, k >> 2) + (k & 3) * 4));
        }
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        u32 af[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int m = wm + mt * 16 + gq + (r & 1) * 8, k = ks * 8 + t + (r >> 1) * 4;
          af[r] = to_tf32(ld_shared_u32(sA + off_kmajor(m, k >> 2) + (k & 3) * 4));
        }
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_1688_tf32(acc[mt][nt], af, bf[nt][0], bf[nt][1]);
      }
    }
#else
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      u32 af[kMT][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        // matrices: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
        const int m = wm + mt * 16 + (lane & 15);
        ldmatrix_x4(af[mt], sA + off_kmajor(m, ks * 2 + (lane >> 4)));
      }
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
        u32 r[4];
        const int n = wn + np * 16 + (j8 >> 1) * 8 + i8;
        ldmatrix_x4(r, sB + off_kmajor(n, ks * 2 + (j8 & 1)));
        bf[2 * np][0] = r[0];
        bf[2 * np][1] = r[1];
        bf[2 * np + 1][0] = r[2];
        bf[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_16816(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }
#endif
  }
  cp_async_wait<0>();

  // y is NPQK: output pixel m, filter k of the group at m * K + kbase + k.
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = m0 + wm + mt * 16 + gq + (e >> 1) * 8;
        const int col = n0 + wn + nt * 8 + 2 * t + (e & 1);
        if (row < M && col < g.kg)
          conv_epilogue_one(Y, Z, bias, (i64)row * K + kbase + col, kbase + col, acc[mt][nt][e], alpha, beta, y_type,
                            has_bias, has_z, act);
      }
}
