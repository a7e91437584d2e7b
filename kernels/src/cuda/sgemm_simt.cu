// f32 GEMM on the CUDA cores (FFMA, no tensor cores), f32 accumulation:
//
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias)     (row-major)
//
// A CTA computes a BM x BN tile of C. Both operands are staged in shared memory
// k-major (one row per k, m or n contiguous; A transposed on the way in when it is
// stored m x k) so that every thread reads its fragments with 16-byte loads. Global
// tiles are double-buffered: the next slice is loaded into registers while the
// current one is multiplied, then written to the other shared buffer (one barrier
// per slice). Each warp computes a WM x WN warp tile; each lane a (4*RM) x (4*RN)
// register tile made of 4 x 4 blocks spread across the warp tile, so the fragment
// loads of a warp touch few distinct addresses and no bank twice.
// Every global load is predicated on the matrix bounds (out-of-range elements read as
// zero), so any m, n, k, leading dimension and offset is served.
//
// Tile configurations (AXLE_SIMT_TILE; gemm_cuda_simt.cpp mirrors this table):
//   tile  CTA tile   threads  warp tiles     per thread  k split     slice k  shared
//   0     128 x 128  128      2 x 2, 64 x 64  8 x 16      -           8        33 KiB
//   1      64 x  64  256      2 x 1, 32 x 64  8 x 8       4 groups    32       34 KiB
//   2      32 x  64  256      1 x 1, 32 x 64  8 x 8       8 groups    64       52 KiB
//   3      64 x  32  256      1 x 1, 64 x 32  8 x 8       8 groups    64       52 KiB
// Tile 0 runs two CTAs per SM (large problems); 1..3 ("slice-K") each warp group multiplies its own k rows of every slice; the
// partial tiles are summed through shared memory before the epilogue. They give small
// and skinny problems (few output tiles) enough CTAs to fill the GPU (one per SM).
//
// Compile-time configuration (-D, chosen by the host):
//   AXLE_SIMT_TILE      tile configuration, above
//   AXLE_SIMT_A_KMAJOR  1: A stored m x k (k contiguous); 0: A stored k x m (transposed)
//   AXLE_SIMT_B_KMAJOR  1: B stored n x k (transposed);   0: B stored k x n
//   AXLE_SIMT_VEC4      1: operand rows start 16-byte aligned (16-byte global loads);
//                       0: element-wise loads (any leading dimension / offset)
// Run-time epilogue parameters (as in gemm_mma.cu):
//   c_type    0: f32, 1: f16, 2: bf16 (C and D share one buffer and type)
//   bias_kind 0: none, 1: one f32 per row of C, 2: one f32 per column of C
//   act       0: none, 1: ReLU, 2: GELU (erf)
//   c_vec     1: f32 C with 16-byte aligned rows (16-byte C accesses)
// beta == 0 never reads C. K == 0 computes act(beta * C + bias).
// Dynamic shared memory: kSmemBytes, the kernel's one local-memory argument.
//
// NVRTC compile checks (tests/nvrtc_compile_test.cpp):
// axle-variant: -DAXLE_SIMT_TILE=0 -DAXLE_SIMT_A_KMAJOR=1 -DAXLE_SIMT_B_KMAJOR=0 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=0 -DAXLE_SIMT_A_KMAJOR=1 -DAXLE_SIMT_B_KMAJOR=1 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=0 -DAXLE_SIMT_A_KMAJOR=0 -DAXLE_SIMT_B_KMAJOR=0 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=0 -DAXLE_SIMT_A_KMAJOR=0 -DAXLE_SIMT_B_KMAJOR=1 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=0 -DAXLE_SIMT_A_KMAJOR=1 -DAXLE_SIMT_B_KMAJOR=0 -DAXLE_SIMT_VEC4=0
// axle-variant: -DAXLE_SIMT_TILE=1 -DAXLE_SIMT_A_KMAJOR=1 -DAXLE_SIMT_B_KMAJOR=0 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=1 -DAXLE_SIMT_A_KMAJOR=0 -DAXLE_SIMT_B_KMAJOR=1 -DAXLE_SIMT_VEC4=0
// axle-variant: -DAXLE_SIMT_TILE=2 -DAXLE_SIMT_A_KMAJOR=1 -DAXLE_SIMT_B_KMAJOR=0 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=2 -DAXLE_SIMT_A_KMAJOR=0 -DAXLE_SIMT_B_KMAJOR=1 -DAXLE_SIMT_VEC4=0
// axle-variant: -DAXLE_SIMT_TILE=3 -DAXLE_SIMT_A_KMAJOR=1 -DAXLE_SIMT_B_KMAJOR=1 -DAXLE_SIMT_VEC4=1
// axle-variant: -DAXLE_SIMT_TILE=3 -DAXLE_SIMT_A_KMAJOR=0 -DAXLE_SIMT_B_KMAJOR=0 -DAXLE_SIMT_VEC4=0

#ifndef AXLE_SIMT_TILE
#define AXLE_SIMT_TILE 0
#endif
#ifndef AXLE_SIMT_A_KMAJOR
#define AXLE_SIMT_A_KMAJOR 1
#endif
#ifndef AXLE_SIMT_B_KMAJOR
#define AXLE_SIMT_B_KMAJOR 0
#endif
#ifndef AXLE_SIMT_VEC4
#define AXLE_SIMT_VEC4 1
#endif

namespace axle_simt {

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

// kWarpsM x kWarpsN warp tiles per CTA tile, kWarpsK warp groups along k; a warp's
// lanes form a kLanesM x kLanesN grid; each lane holds kRM x kRN blocks of 4 x 4;
// kKW: k rows per warp group per slice.
#if AXLE_SIMT_TILE == 0
constexpr int kWarpsM = 2, kWarpsN = 2, kWarpsK = 1, kLanesM = 8, kLanesN = 4, kRM = 2, kRN = 4, kKW = 8;
#define AXLE_SIMT_THREADS 128
#define AXLE_SIMT_MIN_CTAS 2
#elif AXLE_SIMT_TILE == 1
constexpr int kWarpsM = 2, kWarpsN = 1, kWarpsK = 4, kLanesM = 4, kLanesN = 8, kRM = 2, kRN = 2, kKW = 8;
#define AXLE_SIMT_THREADS 256
#define AXLE_SIMT_MIN_CTAS 1
#elif AXLE_SIMT_TILE == 2
constexpr int kWarpsM = 1, kWarpsN = 1, kWarpsK = 8, kLanesM = 4, kLanesN = 8, kRM = 2, kRN = 2, kKW = 8;
#define AXLE_SIMT_THREADS 256
#define AXLE_SIMT_MIN_CTAS 1
#elif AXLE_SIMT_TILE == 3
constexpr int kWarpsM = 1, kWarpsN = 1, kWarpsK = 8, kLanesM = 8, kLanesN = 4, kRM = 2, kRN = 2, kKW = 8;
#define AXLE_SIMT_THREADS 256
#define AXLE_SIMT_MIN_CTAS 1
#else
#error AXLE_SIMT_TILE must be 0..3
#endif

constexpr int kThreads = AXLE_SIMT_THREADS;
constexpr int kTM = 4 * kRM, kTN = 4 * kRN;             // per-thread tile
constexpr int kWM = kLanesM * kTM, kWN = kLanesN * kTN;  // warp tile
constexpr int kBM = kWarpsM * kWM, kBN = kWarpsN * kWN;  // CTA tile
constexpr int kBK = kKW * kWarpsK;                       // k depth of a slice
constexpr int kGroupThreads = 32 * kWarpsM * kWarpsN;    // threads of one warp group
constexpr int kPad = 4;                                  // floats after each shared row
constexpr int kLdA = kBM + kPad, kLdB = kBN + kPad;      // shared row strides (floats)
constexpr int kStageFloats = kBK * (kLdA + kLdB);
constexpr int kRedFloats = (kWarpsK / 2) * kBM * kBN;    // slice-K partial tiles
constexpr int kPassRows = kBM / kRM;                    // epilogue: C rows staged per pass
constexpr int kLdE = kBN + kPad;                        // epilogue: staged row stride (floats)
constexpr int kMaxOf2 = 2 * kStageFloats > kRedFloats ? 2 * kStageFloats : kRedFloats;
constexpr int kSmemFloats = kMaxOf2 > kPassRows * kLdE ? kMaxOf2 : kPassRows * kLdE;
constexpr int kSmemBytes = kSmemFloats * 4;  // gemm_cuda_simt.cpp mirrors this value
constexpr int kGroupM = 8;                   // CTA rasterisation: 8 tile rows per group

static_assert(kGroupThreads * kWarpsK == kThreads, "warp layout does not match the thread count");
static_assert(kLanesM * kLanesN == 32, "a warp has 32 lanes");
static_assert((kWarpsK & (kWarpsK - 1)) == 0, "kWarpsK must be a power of two");

// Fragments are read with 16-byte loads from shared memory.
__device__ __forceinline__ float4 lds4(const float* p) { return *reinterpret_cast<const float4*>(p); }

// One kBK-deep slice of an operand: global -> registers -> shared (k-major, row
// stride MN + kPad). Chunks are 4 consecutive elements of a stored row:
// KMajor (stored mn x k): chunks along k; the chunk's row is an mn index.
// MN-major (stored k x mn): chunks along mn; the chunk's row is a k index.
// A thread owns the same chunk column `ch` in rows row0, row0 + kRowStep, ...
template <bool KMajor, int MN>
struct SliceLoader {
  static constexpr int kChunksPerRow = KMajor ? kBK / 4 : MN / 4;
  static constexpr int kPerThread = kBK * MN / 4 / kThreads;
  static constexpr int kRowStep = kThreads / kChunksPerRow;
  static constexpr int kLd = MN + kPad;
  static_assert((kBK * MN / 4) % kThreads == 0 && kThreads % kChunksPerRow == 0,
                "slice chunks must divide evenly among the threads");

  float4 r[kPerThread];
  const float* p;  // this thread's first chunk of slice 0 (not dereferenced unless in range)
  i64 step;        // elements between this thread's chunks
  int row0, ch;

  __device__ __forceinline__ void init(const float* g, i64 ld, int mn0, int tid) {
    row0 = tid / kChunksPerRow;
    ch = tid % kChunksPerRow;
    step = (i64)kRowStep * ld;
    p = KMajor ? g + ((i64)(mn0 + row0) * ld + ch * 4) : g + ((i64)row0 * ld + mn0 + ch * 4);
  }

  // `full`: the whole slice is inside the matrix (no bounds checks).
  __device__ __forceinline__ void load(bool full, i64 ld, int mn0, int mn_lim, int k0, int k_lim) {
    const float* q = KMajor ? p + k0 : p + (i64)k0 * ld;
    if (full) {
#pragma unroll
      for (int it = 0; it < kPerThread; ++it) {
        const float* e = q + it * step;
#if AXLE_SIMT_VEC4
        r[it] = *reinterpret_cast<const float4*>(e);
#else
        r[it] = make_float4(e[0], e[1], e[2], e[3]);
#endif
      }
      return;
    }
#pragma unroll
    for (int it = 0; it < kPerThread; ++it) {
      const int outer = KMajor ? mn0 + row0 + it * kRowStep : k0 + row0 + it * kRowStep;
      const int inner = KMajor ? k0 + ch * 4 : mn0 + ch * 4;
      const int outer_lim = KMajor ? mn_lim : k_lim;
      const int inner_lim = KMajor ? k_lim : mn_lim;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (outer < outer_lim) {
        const float* e = q + it * step;
#if AXLE_SIMT_VEC4
        if (inner + 4 <= inner_lim) {
          v = *reinterpret_cast<const float4*>(e);
        } else
#endif
        {
          if (inner < inner_lim) v.x = e[0];
          if (inner + 1 < inner_lim) v.y = e[1];
          if (inner + 2 < inner_lim) v.z = e[2];
          if (inner + 3 < inner_lim) v.w = e[3];
        }
      }
      r[it] = v;
    }
  }

  __device__ __forceinline__ void store(float* s) const {
#pragma unroll
    for (int it = 0; it < kPerThread; ++it) {
      const int row = row0 + it * kRowStep;
      if (KMajor) {
        float* d = s + (ch * 4) * kLd + row;
        d[0] = r[it].x;
        d[kLd] = r[it].y;
        d[2 * kLd] = r[it].z;
        d[3 * kLd] = r[it].w;
      } else {
        *reinterpret_cast<float4*>(s + row * kLd + ch * 4) = r[it];
      }
    }
  }
};

// ---- epilogue helpers ----
#include "gemm_epilogue.cuh"

// Four consecutive elements (row, col .. col + 3) of C, row < M, col < N, col a
// multiple of 4; `c` points at this batch's C.
__device__ __forceinline__ void epilogue4(void* c, const float* __restrict__ bias, int N, i64 ldc, int row, int col,
                                          float4 acc, float alpha, float beta, int c_type, int bias_kind, int act,
                                          int c_vec) {
  const i64 idx = (i64)row * ldc + col;
  float v[4] = {alpha * acc.x, alpha * acc.y, alpha * acc.z, alpha * acc.w};
  if (c_vec && col + 4 <= N) {
    float* cp = static_cast<float*>(c) + idx;
    if (beta != 0.f) {
      const float4 o = *reinterpret_cast<const float4*>(cp);
      v[0] += beta * o.x;
      v[1] += beta * o.y;
      v[2] += beta * o.z;
      v[3] += beta * o.w;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (bias_kind == 1) v[q] += bias[row];
      else if (bias_kind == 2) v[q] += bias[col + q];
      v[q] = activate(v[q], act);
    }
    *reinterpret_cast<float4*>(cp) = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    if (col + q < N) {
      float x = v[q];
      if (beta != 0.f) x += beta * load_c(c, idx + q, c_type);
      if (bias_kind == 1) x += bias[row];
      else if (bias_kind == 2) x += bias[col + q];
      store_c(c, idx + q, c_type, activate(x, act));
    }
  }
}

}  // namespace axle_simt

using namespace axle_simt;

extern "C" __global__ void __launch_bounds__(AXLE_SIMT_THREADS, AXLE_SIMT_MIN_CTAS)
axle_sgemm_simt(const float* __restrict__ A, const float* __restrict__ B, void* C, const float* __restrict__ bias,
                int M, int N, int K, long long lda, long long ldb, long long ldc, long long stride_a,
                long long stride_b, long long stride_c, int batch, float alpha, float beta, int c_type,
                int bias_kind, int act, int c_vec, unsigned long long smem_offset) {
  // The dynamic shared memory is this kernel's only local-memory argument: offset 0.
  (void)smem_offset;
  extern __shared__ __align__(16) float axle_simt_smem[];
  {
    u32 dyn;
    asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(dyn));
    if (dyn < (u32)kSmemBytes) __trap();  // the host passed too little shared memory
  }
  constexpr bool kAK = AXLE_SIMT_A_KMAJOR != 0;
  constexpr bool kBKm = AXLE_SIMT_B_KMAJOR != 0;

  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int grp = warp / (kWarpsM * kWarpsN);  // warp group along k
  const int wi = warp % (kWarpsM * kWarpsN);
  const int wm = (wi / kWarpsN) * kWM, wn = (wi % kWarpsN) * kWN;
  const int lm = (lane / kLanesN) * 4, ln = (lane % kLanesN) * 4;

  // Grouped rasterisation of the 1-D grid over (tile_m, tile_n) for L2 reuse.
  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + kBN - 1) / kBN;
  int tm, tn;
  grouped_tile(blockIdx.x, tiles_m, tiles_n, kGroupM, tm, tn);
  if (tm >= tiles_m || tn >= tiles_n) return;
  const int m0 = tm * kBM, n0 = tn * kBN;
  const int KT = (K + kBK - 1) / kBK;
  const bool m_full = m0 + kBM <= M, n_full = n0 + kBN <= N;

  // Stage s: A slice at smem + s * kStageFloats, B slice kBK * kLdA floats after it.
  float* const s_a0 = axle_simt_smem;
  float* const s_b0 = axle_simt_smem + kBK * kLdA;

  for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
    const float* a = A + (i64)bz * stride_a;
    const float* b = B + (i64)bz * stride_b;

    float acc[kTM][kTN];
#pragma unroll
    for (int i = 0; i < kTM; ++i)
#pragma unroll
      for (int j = 0; j < kTN; ++j) acc[i][j] = 0.f;

    SliceLoader<kAK, kBM> la;
    SliceLoader<kBKm, kBN> lb;
    la.init(a, lda, m0, tid);
    lb.init(b, ldb, n0, tid);
    if (KT > 0) {
      la.load(m_full && kBK <= K, lda, m0, M, 0, K);
      lb.load(n_full && kBK <= K, ldb, n0, N, 0, K);
      la.store(s_a0);
      lb.store(s_b0);
    }
    __syncthreads();

    for (int kt = 0; kt < KT; ++kt) {
      const bool more = kt + 1 < KT;
      if (more) {
        const int k0 = (kt + 1) * kBK;
        const bool k_full = k0 + kBK <= K;
        la.load(m_full && k_full, lda, m0, M, k0, K);
        lb.load(n_full && k_full, ldb, n0, N, k0, K);
      }
      const int cur = (kt & 1) * kStageFloats, nxt = kStageFloats - cur;
      const float* sa = s_a0 + cur + grp * kKW * kLdA + wm + lm;
      const float* sb = s_b0 + cur + grp * kKW * kLdB + wn + ln;
#pragma unroll
      for (int kk = 0; kk < kKW; ++kk) {
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
      if (more) {
        la.store(s_a0 + nxt);
        lb.store(s_b0 + nxt);
      }
      __syncthreads();  // slice kt+1 is visible; every warp is done with slice kt
    }

    // Slice-K: sum the warp groups' partial tiles (tree over shared memory).
    if (kWarpsK > 1) {
      const int gt = tid % kGroupThreads;
#pragma unroll
      for (int s = kWarpsK / 2; s >= 1; s >>= 1) {
        if (grp >= s && grp < 2 * s) {
          float* dst = axle_simt_smem + (grp - s) * (kBM * kBN) + gt;
#pragma unroll
          for (int i = 0; i < kTM; ++i)
#pragma unroll
            for (int j = 0; j < kTN; ++j) dst[(i * kTN + j) * kGroupThreads] = acc[i][j];
        }
        __syncthreads();
        if (grp < s) {
          const float* src = axle_simt_smem + grp * (kBM * kBN) + gt;
#pragma unroll
          for (int i = 0; i < kTM; ++i)
#pragma unroll
            for (int j = 0; j < kTN; ++j) acc[i][j] += src[(i * kTN + j) * kGroupThreads];
        }
        __syncthreads();
      }
    }

    // Epilogue through shared memory, kRM passes of kBM / kRM rows: the owners of the
    // final tile (warp group 0) write rows 4*i .. 4*i+3 of their register blocks, then
    // every thread finishes 16-byte row chunks (consecutive threads: consecutive chunks).
    void* c = static_cast<unsigned char*>(C) + (i64)bz * stride_c * (c_type == 0 ? 4 : 2);
#pragma unroll
    for (int i = 0; i < kRM; ++i) {
      if (grp == 0) {
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int j = 0; j < kRN; ++j)
            *reinterpret_cast<float4*>(axle_simt_smem + ((wm / kRM) + lm + r) * kLdE + wn + j * kLanesN * 4 + ln) =
                make_float4(acc[4 * i + r][4 * j], acc[4 * i + r][4 * j + 1], acc[4 * i + r][4 * j + 2],
                            acc[4 * i + r][4 * j + 3]);
      }
      __syncthreads();
#pragma unroll 1
      for (int q = tid; q < kPassRows * (kBN / 4); q += kThreads) {
        const int p = q / (kBN / 4), c4 = q % (kBN / 4);
        const int row = m0 + (p / (kLanesM * 4)) * kWM + i * (kLanesM * 4) + p % (kLanesM * 4);
        const int col = n0 + c4 * 4;
        if (row < M && col < N)
          epilogue4(c, bias, N, ldc, row, col, lds4(axle_simt_smem + p * kLdE + c4 * 4), alpha, beta, c_type,
                    bias_kind, act, c_vec);
      }
      __syncthreads();  // shared memory is free for the next pass / batch entry
    }
  }
}
