// axle-arch: sm_90a
// Tensor-core GEMM for sm_90a: warpgroup MMA (wgmma.mma_async m64n256k16, f16/bf16
// inputs, f32 accumulation) reading both operands from 128-byte-swizzled shared
// memory, filled by a 4-stage cp.async pipeline.
//
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias)     (row-major)
//
// One CTA (two warpgroups, 256 threads) computes a 128 x 256 tile of C; warpgroup w
// owns rows 64w .. 64w+63. A stage holds a 128 x 64 slice of A and a 256 x 64 slice
// of B (48 KiB); four stages plus 1 KiB of alignment slack are dynamic shared memory
// (kSmemBytes, passed by the host as the kernel's one local-memory argument). Global
// loads are predicated on the matrix bounds (zero fill), so any m, n, k is served;
// the host must guarantee 16-byte aligned operand rows (lda, ldb, batch strides
// multiples of 8 elements, 16-byte aligned base addresses).
//
// Compile-time configuration (-D):
//   AXLE_TC_ELEM      0: f16, 1: bf16
//   AXLE_TC_A_KMAJOR  1: A stored m x k (k contiguous); 0: A stored k x m (transposed)
//   AXLE_TC_B_KMAJOR  1: B stored n x k (transposed);   0: B stored k x n
// Run-time epilogue parameters as in gemm_mma.cu (c_type, bias_kind, act); beta == 0
// never reads C.
//
// Shared layouts (canonical wgmma layouts with 128-byte swizzle; every tile base is
// 1024-byte aligned; "chunk" = 16 bytes, swizzled as chunk ^ (row & 7)):
//   K-major operand (MN rows x 64 k): row r at r * 128 bytes. Descriptor: SBO = 1024
//     (next 8-row group), LBO unused; a k16 step advances the start address 32 bytes.
//   MN-major operand (64 k x MN): 64-wide MN blocks of 8192 bytes; inside a block,
//     k row r at r * 128 bytes. Descriptor: LBO = 8192 (next MN block), SBO = 1024
//     (next 8-k group); a k16 step advances the start address 2048 bytes.
//
// NVRTC compile checks (tests/nvrtc_compile_test.cpp):
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=1
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=0
// axle-variant: -DAXLE_TC_ELEM=0 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=1
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=0
// axle-variant: -DAXLE_TC_ELEM=1 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1

#ifndef AXLE_TC_ELEM
#define AXLE_TC_ELEM 1
#endif
#ifndef AXLE_TC_A_KMAJOR
#define AXLE_TC_A_KMAJOR 1
#endif
#ifndef AXLE_TC_B_KMAJOR
#define AXLE_TC_B_KMAJOR 0
#endif

#if AXLE_TC_A_KMAJOR
#define AXLE_WGMMA_TNSP_A "0"
#else
#define AXLE_WGMMA_TNSP_A "1"
#endif
#if AXLE_TC_B_KMAJOR
#define AXLE_WGMMA_TNSP_B "0"
#else
#define AXLE_WGMMA_TNSP_B "1"
#endif

namespace axle_wg {

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

constexpr int kBM = 128, kBN = 256, kBK = 64;
constexpr int kThreads = 256;
constexpr int kStages = 4;
constexpr int kGroupM = 8;
constexpr u32 kATileBytes = kBM * kBK * 2;
constexpr u32 kBTileBytes = kBN * kBK * 2;
constexpr u32 kStageBytes = kATileBytes + kBTileBytes;
constexpr u32 kMNBlockBytes = kBK * 128;  // one 64-wide MN block of an MN-major tile

#define AXLE_PTX_SM90 1
#include "ptx_helpers.cuh"

template <bool KMajor>
__device__ __forceinline__ u64 operand_desc(u32 tile, int ks) {
  return KMajor ? make_desc(tile + ks * 32, 16, 1024) : make_desc(tile + ks * 2048, kMNBlockBytes, 1024);
}

// Copy a 64-deep k slice of an operand (MN rows/columns from mn0) into a tile.
template <bool KMajor, int MN>
__device__ __forceinline__ void load_tile(u32 s_tile, const u16* __restrict__ g, i64 ld, int mn0, int mn_lim, int k0,
                                          int k_lim, int tid) {
  constexpr int kChunks = MN * kBK * 2 / 16;
  constexpr int kPerRow = KMajor ? (kBK * 2 / 16) : (MN * 2 / 16);
  static_assert(kChunks % kThreads == 0, "tile chunks must divide evenly among threads");
#pragma unroll
  for (int it = 0; it < kChunks / kThreads; ++it) {
    const int c = tid + it * kThreads;
    const int row = c / kPerRow, cc = c % kPerRow;
    const int outer = KMajor ? mn0 + row : k0 + row;
    const int inner = KMajor ? k0 + cc * 8 : mn0 + cc * 8;
    const int outer_lim = KMajor ? mn_lim : k_lim;
    const int inner_lim = KMajor ? k_lim : mn_lim;
    int valid = 0;
    if (outer < outer_lim) valid = min(max(inner_lim - inner, 0), 8);
    const u16* src = valid > 0 ? g + ((i64)outer * ld + inner) : g;
    const u32 off = KMajor ? (u32)(row * 128 + ((cc ^ (row & 7)) << 4))
                           : (u32)((cc >> 3) * kMNBlockBytes + row * 128 + (((cc & 7) ^ (row & 7)) << 4));
    cp_async16(s_tile + off, src, valid * 2);  // bytes past src_bytes are zero-filled
  }
}

#define AXLE_WGMMA_ASM(TYPE) \
  asm volatile( \
      "{\n" \
      ".reg .pred p;\n" \
      "setp.ne.b32 p, %130, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " " \
      "{" \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
      "}, %128, %129, p, 1, 1, " AXLE_WGMMA_TNSP_A ", " AXLE_WGMMA_TNSP_B ";\n" \
      "}\n" \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), \
        "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), \
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), \
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), \
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), \
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), \
        "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), \
        "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), \
        "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), \
        "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), \
        "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), \
        "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), \
        "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), \
        "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), \
        "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), \
        "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127]) \
      : "l"(desc_a), "l"(desc_b), "r"(1))

__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], u64 desc_a, u64 desc_b) {
#if AXLE_TC_ELEM == 1
  AXLE_WGMMA_ASM("bf16");
#else
  AXLE_WGMMA_ASM("f16");
#endif
}

// ---- epilogue helpers ----
#include "gemm_epilogue.cuh"

}  // namespace axle_wg

using namespace axle_wg;

extern "C" __global__ void __launch_bounds__(256, 1)
axle_gemm_wgmma(const u16* __restrict__ A, const u16* __restrict__ B, void* C, const float* __restrict__ bias,
                int M, int N, int K, long long lda, long long ldb, long long ldc, long long stride_a,
                long long stride_b, long long stride_c, int batch, float alpha, float beta, int c_type,
                int bias_kind, int act, unsigned long long smem_offset) {
  // The dynamic shared memory is this kernel's only local-memory argument; its byte
  // offset (smem_offset) is therefore 0 and the base is re-aligned to 1024 bytes here.
  (void)smem_offset;
  extern __shared__ __align__(1024) unsigned char axle_wgmma_smem[];
  constexpr bool kAK = AXLE_TC_A_KMAJOR != 0;
  constexpr bool kBKm = AXLE_TC_B_KMAJOR != 0;

  const int tid = threadIdx.x;
  const int wg = tid >> 7;               // warpgroup: rows 64 * wg .. of the CTA tile
  const int wq = (tid >> 5) & 3;         // warp inside the warpgroup
  const int lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;

  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + kBN - 1) / kBN;
  int tm, tn;
  grouped_tile(blockIdx.x, tiles_m, tiles_n, kGroupM, tm, tn);
  if (tm >= tiles_m || tn >= tiles_n) return;
  const int m0 = tm * kBM, n0 = tn * kBN;
  const int KT = (K + kBK - 1) / kBK;
  const u32 s_base = (smem_u32(axle_wgmma_smem) + 1023u) & ~1023u;

  for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
    const u16* a = A + (i64)bz * stride_a;
    const u16* b = B + (i64)bz * stride_b;
    void* c = static_cast<unsigned char*>(C) + (i64)bz * stride_c * (c_type == 0 ? 4 : 2);

    float d[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) d[i] = 0.f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < KT) {
        const u32 sa = s_base + s * kStageBytes;
        load_tile<kAK, kBM>(sa, a, lda, m0, M, s * kBK, K, tid);
        load_tile<kBKm, kBN>(sa + kATileBytes, b, ldb, n0, N, s * kBK, K, tid);
      }
      cp_async_commit();
    }

    for (int kt = 0; kt < KT; ++kt) {
      cp_async_wait<kStages - 2>();  // this thread's copies of slice kt have landed
      fence_proxy_async();
      __syncthreads();               // ... and everyone's

      const u32 sA = s_base + (kt % kStages) * kStageBytes;
      const u32 sB = sA + kATileBytes;
      const u32 sAw = sA + wg * (64 * 128);  // K-major: 64 rows of 128 B; MN-major: one 8 KiB block
#pragma unroll
      for (int i = 0; i < 128; ++i) fence_operand(d[i]);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBK / 16; ++ks)
        wgmma_m64n256k16(d, operand_desc<kAK>(sAw, ks), operand_desc<kBKm>(sB, ks));
      wgmma_commit();
      wgmma_wait<1>();  // this warpgroup's MMAs on slice kt-1 are complete
#pragma unroll
      for (int i = 0; i < 128; ++i) fence_operand(d[i]);
      __syncthreads();  // ... for both warpgroups: the stage of slice kt-1 is free

      const int nk = kt + kStages - 1;
      if (nk < KT) {
        const u32 sa = s_base + (nk % kStages) * kStageBytes;
        load_tile<kAK, kBM>(sa, a, lda, m0, M, nk * kBK, K, tid);
        load_tile<kBKm, kBN>(sa + kATileBytes, b, ldb, n0, N, nk * kBK, K, tid);
      }
      cp_async_commit();
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < 128; ++i) fence_operand(d[i]);
    cp_async_wait<0>();
    __syncthreads();  // shared memory is free for the next batch entry

    const int row0 = m0 + wg * 64 + wq * 16 + g;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int col = n0 + i * 8 + 2 * t;
      epilogue_one(c, bias, M, N, ldc, row0, col, d[4 * i + 0], alpha, beta, c_type, bias_kind, act);
      epilogue_one(c, bias, M, N, ldc, row0, col + 1, d[4 * i + 1], alpha, beta, c_type, bias_kind, act);
      epilogue_one(c, bias, M, N, ldc, row0 + 8, col, d[4 * i + 2], alpha, beta, c_type, bias_kind, act);
      epilogue_one(c, bias, M, N, ldc, row0 + 8, col + 1, d[4 * i + 3], alpha, beta, c_type, bias_kind, act);
    }
  }
}
