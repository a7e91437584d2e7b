// Tensor-core GEMM for sm_80 and newer: warp-level mma.sync (m16n8k16 f16/bf16,
// m16n8k8 tf32) with f32 accumulation, fed by a cp.async multi-stage pipeline
// through XOR-swizzled shared memory (ldmatrix for 16-bit operands).
//
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias)     (row-major)
//
// One CTA computes a 128 x 128 tile of C with 8 warps (each 64 x 32), three stages
// of 128 x 64-byte slices of A and B in static shared memory (48 KiB). Every global
// load is predicated on the matrix bounds (out-of-range elements read as zero), so
// any m, n, k is served; nothing outside the operands is read.
//
// Compile-time configuration (-D, chosen by the host):
//   AXLE_TC_ELEM      0: f16 inputs, 1: bf16 inputs, 2: f32 inputs rounded to tf32
//   AXLE_TC_A_KMAJOR  1: A stored m x k (k contiguous); 0: A stored k x m (transposed)
//   AXLE_TC_B_KMAJOR  1: B stored n x k (transposed);   0: B stored k x n
//   AXLE_TC_VEC16     1: operand rows start 16-byte aligned (16-byte cp.async);
//                     0: element-wise loads (any leading dimension / offset)
// Run-time epilogue parameters:
//   c_type    0: f32, 1: f16, 2: bf16 (C and D share one buffer and type)
//   bias_kind 0: none, 1: one f32 per row of C, 2: one f32 per column of C
//   act       0: none, 1: ReLU, 2: GELU (erf), 3: GELU (tanh approximation)
// beta == 0 never reads C.
//
// NVRTC compile checks (tests/nvrtc_compile_test.cpp):
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=1 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=0 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=1 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=0 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1 -DAXLE_TC_VEC16=0
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0 -DAXLE_TC_VEC16=0
// axle-variant: -DAXLE_TC_ELEM=2 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0 -DAXLE_TC_VEC16=1
// axle-variant: -DAXLE_TC_ELEM=2 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1 -DAXLE_TC_VEC16=0

#ifndef AXLE_TC_ELEM
#define AXLE_TC_ELEM 0
#endif
#ifndef AXLE_TC_A_KMAJOR
#define AXLE_TC_A_KMAJOR 1
#endif
#ifndef AXLE_TC_B_KMAJOR
#define AXLE_TC_B_KMAJOR 0
#endif
#ifndef AXLE_TC_VEC16
#define AXLE_TC_VEC16 1
#endif

namespace axle_mma {

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#if AXLE_TC_ELEM == 2
typedef float Elem;
#else
typedef u16 Elem;
#endif

constexpr int kEs = (int)sizeof(Elem);
constexpr int kBM = 128, kBN = 128;
constexpr int kThreads = 256;
constexpr int kStages = 3;
constexpr int kGroupM = 8;                   // CTA rasterisation: 8 tile rows per group
constexpr int kBK = 64 / kEs;                // k depth of a stage: 32 (16-bit) or 16 (f32)
constexpr int kCE = 16 / kEs;                // elements per 16-byte chunk
constexpr int kTileBytes = 128 * 64;         // one operand, one stage
constexpr int kMNRowBytes = 128 * kEs;       // MN-major tile row: 128 m (or n) values
constexpr int kMNChunks = kMNRowBytes / 16;  // 16-byte chunks per MN-major row

// Shared tile layouts. K-major: 128 rows (m or n) of 64 bytes (kBK k values); the
// 16-byte chunk index is XORed with bits 1..2 of the row so that the 8 rows read by
// one ldmatrix phase fall in distinct banks. MN-major: kBK rows (k) of 128 m/n values;
// the chunk index is XORed with the low 3 bits of the row.
__device__ __forceinline__ u32 off_kmajor(int row, int chunk) {
  return (u32)(row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4));
}
__device__ __forceinline__ u32 off_mnmajor(int row, int chunk) {
  return (u32)(row * kMNRowBytes + ((chunk ^ (row & 7)) << 4));
}
template <bool KMajor>
__device__ __forceinline__ u32 tile_off(int row, int chunk) {
  return KMajor ? off_kmajor(row, chunk) : off_mnmajor(row, chunk);
}

#define AXLE_MMA_BF16 (AXLE_TC_ELEM == 1)
#include "ptx_helpers.cuh"

// Copy one kBK-deep slice of an operand into a shared tile. `g` points at element
// (0, 0) of this batch's operand as stored; `ld` is its leading dimension.
// K-major: tile row = m (or n) index mn0 + row, 16-byte chunks along k from k0.
// MN-major: tile row = k index k0 + row, chunks along m (or n) from mn0.
template <bool KMajor>
__device__ __forceinline__ void load_tile(u32 s_tile, const Elem* __restrict__ g, i64 ld, int mn0, int mn_lim,
                                          int k0, int k_lim, int tid) {
  constexpr int kChunksPerRow = KMajor ? (64 / 16) : kMNChunks;
  constexpr int kIters = (kTileBytes / 16) / kThreads;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int c = tid + it * kThreads;
    const int row = c / kChunksPerRow, ch = c % kChunksPerRow;
    const int outer = KMajor ? mn0 + row : k0 + row;
    const int inner = KMajor ? k0 + ch * kCE : mn0 + ch * kCE;
    const int outer_lim = KMajor ? mn_lim : k_lim;
    const int inner_lim = KMajor ? k_lim : mn_lim;
    int valid = 0;
    if (outer < outer_lim) valid = min(max(inner_lim - inner, 0), kCE);
    const Elem* src = valid > 0 ? g + ((i64)outer * ld + inner) : g;
    const u32 dst = s_tile + tile_off<KMajor>(row, ch);
#if AXLE_TC_VEC16
    cp_async16(dst, src, valid * kEs);  // bytes past src_bytes are zero-filled
#else
    u32 w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int e = 0; e < kCE; ++e) {
      if (e < valid) {
        const u32 x = elem_bits(src[e]);
        if (kEs == 4)
          w[e] = x;
        else
          w[e >> 1] |= x << ((e & 1) * 16);
      }
    }
    st_shared_v4(dst, w[0], w[1], w[2], w[3]);
#endif
  }
}

// ---- epilogue helpers ----
#include "gemm_epilogue.cuh"

}  // namespace axle_mma

using namespace axle_mma;

// tf32 fragments are read with scalar loads and need more registers: one CTA per SM.
#if AXLE_TC_ELEM == 2
#define AXLE_TC_MIN_CTAS 1
#else
#define AXLE_TC_MIN_CTAS 2
#endif

extern "C" __global__ void __launch_bounds__(256, AXLE_TC_MIN_CTAS)
axle_gemm_mma(const Elem* __restrict__ A, const Elem* __restrict__ B, void* C, const float* __restrict__ bias,
              int M, int N, int K, long long lda, long long ldb, long long ldc, long long stride_a,
              long long stride_b, long long stride_c, int batch, float alpha, float beta, int c_type,
              int bias_kind, int act) {
  __shared__ __align__(128) unsigned char smem[kStages * 2 * kTileBytes];
  constexpr bool kAK = AXLE_TC_A_KMAJOR != 0;
  constexpr bool kBKm = AXLE_TC_B_KMAJOR != 0;

  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int wm = (warp >> 2) * 64;  // warp tile origin inside the CTA tile
  const int wn = (warp & 3) * 32;
  const int g = lane >> 2, t = lane & 3;

  // Grouped rasterisation of the 1-D grid over (tile_m, tile_n) for L2 reuse.
  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + kBN - 1) / kBN;
  int tm, tn;
  grouped_tile(blockIdx.x, tiles_m, tiles_n, kGroupM, tm, tn);
  if (tm >= tiles_m || tn >= tiles_n) return;
  const int m0 = tm * kBM, n0 = tn * kBN;
  const int KT = (K + kBK - 1) / kBK;
  const u32 s_base = smem_u32(smem);

  for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
    const Elem* a = A + (i64)bz * stride_a;
    const Elem* b = B + (i64)bz * stride_b;
    void* c = static_cast<unsigned char*>(C) + (i64)bz * stride_c * (c_type == 0 ? 4 : 2);

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < KT) {
        const u32 sa = s_base + s * 2 * kTileBytes;
        load_tile<kAK>(sa, a, lda, m0, M, s * kBK, K, tid);
        load_tile<kBKm>(sa + kTileBytes, b, ldb, n0, N, s * kBK, K, tid);
      }
      cp_async_commit();
    }

    for (int kt = 0; kt < KT; ++kt) {
      cp_async_wait<kStages - 2>();
      __syncthreads();  // slice kt is visible; every warp is done with slice kt-1
      {
        const int nk = kt + kStages - 1;
        if (nk < KT) {
          const u32 sa = s_base + (nk % kStages) * 2 * kTileBytes;
          load_tile<kAK>(sa, a, lda, m0, M, nk * kBK, K, tid);
          load_tile<kBKm>(sa + kTileBytes, b, ldb, n0, N, nk * kBK, K, tid);
        }
        cp_async_commit();
      }
      const u32 sA = s_base + (kt % kStages) * 2 * kTileBytes;
      const u32 sB = sA + kTileBytes;

#if AXLE_TC_ELEM == 2
      // tf32: m16n8k8, fragments read with 32-bit shared loads.
#pragma unroll
      for (int ks = 0; ks < kBK / 8; ++ks) {
        // B fragments first, then A one m16 tile at a time (fewer live registers).
        u32 bf[4][2];
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int n = wn + nt * 8 + g;
            const int k = ks * 8 + t + r * 4;
            const u32 off = kBKm ? off_kmajor(n, k >> 2) + (k & 3) * 4 : off_mnmajor(k, n >> 2) + (n & 3) * 4;
            bf[nt][r] = to_tf32(ld_shared_u32(sB + off));
          }
        }
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
          u32 af[4];
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int m = wm + mt * 16 + g + (r & 1) * 8;
            const int k = ks * 8 + t + (r >> 1) * 4;
            const u32 off = kAK ? off_kmajor(m, k >> 2) + (k & 3) * 4 : off_mnmajor(k, m >> 2) + (m & 3) * 4;
            af[r] = to_tf32(ld_shared_u32(sA + off));
          }
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) mma_1688_tf32(acc[mt][nt], af, bf[nt][0], bf[nt][1]);
        }
      }
#else
      const int j = lane >> 3, i = lane & 7;
#pragma unroll
      for (int ks = 0; ks < kBK / 16; ++ks) {
        u32 af[4][4], bf[4][2];
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
          if (kAK) {
            // matrices: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
            const int m = wm + mt * 16 + (lane & 15);
            const int kc = ks * 2 + (lane >> 4);
            ldmatrix_x4(af[mt], sA + off_kmajor(m, kc));
          } else {
            const int k = ks * 16 + (j >> 1) * 8 + i;
            const int mc = (wm + mt * 16 + (j & 1) * 8) >> 3;
            ldmatrix_x4_trans(af[mt], sA + off_mnmajor(k, mc));
          }
        }
#pragma unroll
        for (int np = 0; np < 2; ++np) {
          u32 r[4];
          // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
          if (kBKm) {
            const int n = wn + np * 16 + (j >> 1) * 8 + i;
            const int kc = ks * 2 + (j & 1);
            ldmatrix_x4(r, sB + off_kmajor(n, kc));
          } else {
            const int k = ks * 16 + (j & 1) * 8 + i;
            const int nc = (wn + np * 16 + (j >> 1) * 8) >> 3;
            ldmatrix_x4_trans(r, sB + off_mnmajor(k, nc));
          }
          bf[2 * np][0] = r[0];
          bf[2 * np][1] = r[1];
          bf[2 * np + 1][0] = r[2];
          bf[2 * np + 1][1] = r[3];
        }
#pragma unroll
        for (int mt = 0; mt < 4; ++mt)
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) mma_16816(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
      }
#endif
    }
    cp_async_wait<0>();
    __syncthreads();  // shared memory is free for the next batch entry

#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = m0 + wm + mt * 16 + g + (e >> 1) * 8;
          const int col = n0 + wn + nt * 8 + 2 * t + (e & 1);
          epilogue_one(c, bias, M, N, ldc, row, col, acc[mt][nt][e], alpha, beta, c_type, bias_kind, act);
        }
  }
}
