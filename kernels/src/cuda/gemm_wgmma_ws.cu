// axle-arch: sm_90a
// Tensor-core GEMM for sm_90a, second generation ("wgmma2"): warp-specialised,
// persistent, mbarrier-pipelined warpgroup MMA (wgmma.mma_async m64n256k16 for
// f16/bf16, m64n256k8 for tf32), f32 accumulation.
//
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias)     (row-major)
//
// One CTA = three warpgroups (384 threads), one CTA per SM, persistent over output
// tiles of 128 x 256 (tile order grouped 8 tile rows at a time for L2 reuse; batch
// entries are consecutive runs of tiles):
//   warpgroup 0  producer: setmaxnreg.dec to 56 registers; copies 128-byte-deep k
//                slices of A (128 rows) and B (256 rows) into a 4-stage ring of
//                128-byte-swizzled shared tiles with cp.async.
//   warpgroups 1, 2  consumers: setmaxnreg.inc to 224 registers; consumer c owns rows
//                64c .. 64c+63 of the tile (64 x 256 f32 accumulators per warpgroup),
//                issues one k slice of wgmma per stage and keeps one slice in flight
//                (wgmma.wait_group 1) while it releases the previous stage.
// Synchronisation (no __syncthreads after the roles split):
//   full[s]  mbarrier, 128 arrivals (every producer thread). A producer thread arrives
//            for slice j after cp.async.wait_group has retired its own copies of j and
//            it has executed fence.proxy.async (its generic-proxy writes are then
//            ordered before the consumers' async-proxy wgmma reads). It keeps kLag = 2
//            slices of copies in flight: the arrival for slice j is made after slice
//            j + kLag has been issued (kLag <= kStages - 2 keeps this deadlock-free
//            with the consumers holding two stages).
//   empty[s] mbarrier, 8 arrivals (lane 0 of every consumer warp, after its
//            warpgroup's wgmma reading the stage have completed).
// Both sides walk the same global sequence of k slices across all their tiles, so the
// stage index and phase parity run on across tile boundaries; the producer loads the
// next tile's first stages while the consumers run the epilogue of the current one.
//
// Shared layouts (every tile base 1024-byte aligned; "chunk" = 16 bytes, swizzled as
// chunk ^ (row & 7)); a stage is 48 KiB for every element type (kBK = 128 bytes of k):
//   K-major operand (MN rows x kBK): row r at r * 128 bytes. Descriptor: SBO = 1024,
//     LBO unused; each wgmma k step (32 bytes) advances the start address 32 bytes.
//   MN-major 16-bit operand (64 k x MN): 64-wide MN blocks of 8192 bytes, k row r at
//     r * 128 inside a block. Descriptor: LBO = 8192, SBO = 1024, transpose bit set;
//     a k16 step advances 2048 bytes.
//   tf32 (wgmma tf32 takes K-major operands only): an operand stored MN-major in
//     global memory is transposed on the way in by 4-byte cp.async copies into the
//     K-major layout (lanes: 8 consecutive MN x 4 k, conflict-free in shared memory).
// Global loads are predicated on the matrix bounds (zero fill), so any m, n, k is
// served. The host must guarantee 16-byte aligned operand rows (lda, ldb, batch
// strides multiples of 16 bytes, 16-byte aligned base addresses); tf32 data are used
// as stored (wgmma reads the tf32 bits of each f32, i.e. truncation).
//
// Compile-time configuration (-D):
//   AXLE_TC_ELEM      0: f16, 1: bf16, 2: f32 as tf32
//   AXLE_TC_A_KMAJOR  1: A stored m x k (k contiguous); 0: A stored k x m (transposed)
//   AXLE_TC_B_KMAJOR  1: B stored n x k (transposed);   0: B stored k x n
// Run-time epilogue parameters as in gemm_mma.cu (c_type, bias_kind, act); beta == 0
// never reads C. Launch: 384 threads per block, any number of blocks (the host uses
// min(tiles, SMs)), grid y = z = 1, kSmemBytes of dynamic shared memory as the one
// local-memory argument.
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
// axle-variant: -DAXLE_TC_ELEM=2 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=0
// axle-variant: -DAXLE_TC_ELEM=2 -DAXLE_TC_A_KMAJOR=1 -DAXLE_TC_B_KMAJOR=1
// axle-variant: -DAXLE_TC_ELEM=2 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=0
// axle-variant: -DAXLE_TC_ELEM=2 -DAXLE_TC_A_KMAJOR=0 -DAXLE_TC_B_KMAJOR=1

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
#define AXLE_WS_TNSP_A "0"
#else
#define AXLE_WS_TNSP_A "1"
#endif
#if AXLE_TC_B_KMAJOR
#define AXLE_WS_TNSP_B "0"
#else
#define AXLE_WS_TNSP_B "1"
#endif

namespace axle_ws {

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#if AXLE_TC_ELEM == 2
typedef float Elem;
#else
typedef u16 Elem;
#endif
constexpr int kEs = (int)sizeof(Elem);
constexpr bool kTf32 = AXLE_TC_ELEM == 2;

constexpr int kBM = 128, kBN = 256;
constexpr int kBK = 128 / kEs;  // k per stage: 64 (16-bit) or 32 (tf32): 128-byte K rows
constexpr int kKSteps = 4;      // wgmma k steps per stage (k16 or k8: 32 bytes each)
constexpr int kStages = 4;
constexpr int kLag = 2;         // producer: slices of copies in flight before it signals
constexpr int kGroupM = 8;
constexpr int kThreads = 384;
constexpr int kProducerThreads = 128;
constexpr int kConsumerWarps = 8;
constexpr u32 kATileBytes = kBM * 128;
constexpr u32 kBTileBytes = kBN * 128;
constexpr u32 kStageBytes = kATileBytes + kBTileBytes;  // 48 KiB
constexpr u32 kMNBlockBytes = 64 * 128;                 // one 64-wide MN block of a 16-bit MN-major tile
constexpr u32 kBarrierBytes = 2 * kStages * 8;
// Dynamic shared memory the host must pass: stages, barriers, 1 KiB alignment slack.
constexpr u32 kSmemBytes = kStages * kStageBytes + 1024 + 128;
static_assert(kLag <= kStages - 2, "the producer's signalling lag must leave the consumers two stages");
static_assert(kBarrierBytes <= 128, "barrier area");
static_assert(kSmemBytes <= 227 * 1024, "fits the sm_90 opt-in shared memory per block");
static_assert(kThreads == kProducerThreads + 32 * kConsumerWarps, "one producer and two consumer warpgroups");

#define AXLE_PTX_SM90 1
#include "ptx_helpers.cuh"

// ---- cp.async ----
__device__ __forceinline__ void cp_async4(u32 dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

// ---- mbarrier ----
__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
  asm volatile(
      "{\n"
      ".reg .b64 st;\n"
      "mbarrier.arrive.shared::cta.b64 st, [%0];\n"
      "}\n" ::"r"(bar)
      : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(u32 bar, u32 parity) {
  u32 done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}
// Wait until the phase of `bar` with the given parity has completed. No wait here
// depends on another CTA, so it is short; a wait that has not finished after 2^30
// polls (many seconds: try_wait itself suspends between polls) means a broken
// pipeline, and the kernel traps (a launch error) instead of hanging the device.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  u32 polls = 0;
  while (!mbar_try_wait(bar, parity)) {
    if (++polls == (1u << 30)) __trap();
  }
}

// ---- wgmma ----
// Descriptor of k step ks (32 bytes of k) of an operand tile.
template <bool KMajor>
__device__ __forceinline__ u64 operand_desc(u32 tile, int ks) {
  return KMajor ? make_desc(tile + ks * 32, 16, 1024) : make_desc(tile + ks * 2048, kMNBlockBytes, 1024);
}

#define AXLE_WS_ACC_OPERANDS \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
  "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
  "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
  "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
  "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
  "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
  "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
  "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
  "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

#define AXLE_WS_ACC_LIST \
  "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
  "}"

// d += A(desc_a) * B(desc_b) for one 64 x 256 x (32 bytes of k) step.
__device__ __forceinline__ void wgmma_step(float (&d)[128], u64 desc_a, u64 desc_b) {
#if AXLE_TC_ELEM == 2
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k8.f32.tf32.tf32 " AXLE_WS_ACC_LIST ", %128, %129, p, 1, 1;\n"
      "}\n"
      : AXLE_WS_ACC_OPERANDS
      : "l"(desc_a), "l"(desc_b), "r"(1));
#else
#if AXLE_TC_ELEM == 1
#define AXLE_WS_TYPE "bf16"
#else
#define AXLE_WS_TYPE "f16"
#endif
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." AXLE_WS_TYPE "." AXLE_WS_TYPE " " AXLE_WS_ACC_LIST
      ", %128, %129, p, 1, 1, " AXLE_WS_TNSP_A ", " AXLE_WS_TNSP_B ";\n"
      "}\n"
      : AXLE_WS_ACC_OPERANDS
      : "l"(desc_a), "l"(desc_b), "r"(1));
#undef AXLE_WS_TYPE
#endif
}

// ---- producer: one k slice of one operand into a stage tile ----
// 16-byte chunks: a K-major operand of any element type, or an MN-major 16-bit one.
// Thread ptid always copies the same chunk column of rows r0, r0 + kRowStep, ...: the
// swizzled offsets and the source pointer advance by constants (few registers: the
// producer runs with 56).
template <bool KMajor, int MN>
__device__ __forceinline__ void load_tile16(u32 s_tile, const Elem* __restrict__ g, i64 ld, int mn0, int mn_lim,
                                            int k0, int k_lim, int ptid) {
  static_assert(KMajor || kEs == 2, "MN-major tf32 operands go through load_tile_t4");
  constexpr int kCE = 16 / kEs;                          // elements per chunk
  constexpr int kChunks = MN * 128 / 16;                 // the tile is MN * 128 bytes
  constexpr int kPerRow = KMajor ? 8 : (MN * kEs / 16);  // chunks per global row of the slice
  constexpr int kRowStep = kProducerThreads / kPerRow;   // rows between one thread's chunks
  static_assert(kChunks % kProducerThreads == 0 && kProducerThreads % kPerRow == 0, "chunk split");
  const int r0 = ptid / kPerRow, cc = ptid % kPerRow;
  const int outer0 = (KMajor ? mn0 : k0) + r0;
  const int inner = (KMajor ? k0 : mn0) + cc * kCE;
  const int outer_lim = KMajor ? mn_lim : k_lim;
  const int inner_valid = min(max((KMajor ? k_lim : mn_lim) - inner, 0), kCE);
  const Elem* src = g + ((i64)outer0 * ld + inner);
  const i64 step = (i64)kRowStep * ld;
#pragma unroll
  for (int it = 0; it < kChunks / kProducerThreads; ++it) {
    const int row = r0 + it * kRowStep;
    const int valid = outer0 + it * kRowStep < outer_lim ? inner_valid : 0;
    const u32 off = KMajor ? (u32)(row * 128 + ((cc ^ (row & 7)) << 4))
                           : (u32)((cc >> 3) * kMNBlockBytes + row * 128 + (((cc & 7) ^ (row & 7)) << 4));
    cp_async16(s_tile + off, valid > 0 ? (const void*)src : (const void*)g, valid * kEs);  // rest zero-filled
    src += step;
  }
}

// tf32, operand stored MN-major in global memory (element (k, mn) at g[k * ld + mn]):
// 4-byte copies that transpose it into the K-major swizzled tile. One warp
// instruction covers 8 consecutive mn (lanes 0-2) x 4 consecutive k (lanes 3-4): a
// full 32-byte sector per k row in global memory, 32 distinct banks in shared memory.
// Warp w covers k = 4 w + k_l (even iterations) and 16 + 4 w + k_l (odd ones), mn
// blocks of 8 in turn.
template <int MN>
__device__ __forceinline__ void load_tile_t4(u32 s_tile, const float* __restrict__ g, i64 ld, int mn0, int mn_lim,
                                             int k0, int k_lim, int ptid) {
  static_assert(kBK == 32, "tf32 slices are 32 deep");
  const int lane = ptid & 31, w = ptid >> 5;
  const int mn_l = lane & 7;
  const int kA = 4 * w + (lane >> 3), kB = kA + 16;  // the two k rows of this thread
  const bool okA = k0 + kA < k_lim, okB = k0 + kB < k_lim;
  const float* srcA = g + ((i64)(k0 + kA) * ld + mn0 + mn_l);
  const float* srcB = srcA + 16 * ld;
  const u32 offA = (u32)(mn_l * 128 + (((kA >> 2) ^ mn_l) << 4) + ((kA & 3) << 2));
  const u32 offB = (u32)(mn_l * 128 + (((kB >> 2) ^ mn_l) << 4) + ((kB & 3) << 2));
#pragma unroll 4
  for (int mb = 0; mb < MN / 8; ++mb) {
    const bool okm = mn0 + mb * 8 + mn_l < mn_lim;
    cp_async4(s_tile + mb * 1024 + offA, okm && okA ? (const void*)(srcA + mb * 8) : (const void*)g,
              okm && okA ? 4 : 0);
    cp_async4(s_tile + mb * 1024 + offB, okm && okB ? (const void*)(srcB + mb * 8) : (const void*)g,
              okm && okB ? 4 : 0);
  }
}

template <bool KMajor, int MN>
__device__ __forceinline__ void load_operand(u32 s_tile, const Elem* __restrict__ g, i64 ld, int mn0, int mn_lim,
                                             int k0, int k_lim, int ptid) {
#if AXLE_TC_ELEM == 2
  if (!KMajor) {
    load_tile_t4<MN>(s_tile, g, ld, mn0, mn_lim, k0, k_lim, ptid);
    return;
  }
  load_tile16<true, MN>(s_tile, g, ld, mn0, mn_lim, k0, k_lim, ptid);
#else
  load_tile16<KMajor, MN>(s_tile, g, ld, mn0, mn_lim, k0, k_lim, ptid);
#endif
}

// ---- shared helpers: tile order, epilogue ----
#include "gemm_epilogue.cuh"

// ---- tile schedule ----
struct TileCoord {
  int bz, m0, n0;
};
__device__ __forceinline__ TileCoord tile_coord(i64 t, int tiles_m, int tiles_n) {
  const i64 per_batch = (i64)tiles_m * tiles_n;
  TileCoord tc;
  tc.bz = (int)(t / per_batch);
  int tm, tn;
  grouped_tile((int)(t - (i64)tc.bz * per_batch), tiles_m, tiles_n, kGroupM, tm, tn);
  tc.m0 = tm * kBM;
  tc.n0 = tn * kBN;
  return tc;
}

// ---- epilogue ----
// Fast path: the whole 64 x 256 block in bounds, no bias or activation, C rows and
// base aligned to two elements: pairs of columns stored as one 8- or 4-byte word.
template <int CT>
__device__ __forceinline__ void epilogue_pairs(void* c, i64 ldc, int row0, int col0, const float (&d)[128],
                                               float alpha, float beta) {
#pragma unroll
  for (int i = 0; i < 32; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const i64 idx = (i64)(row0 + 8 * h) * ldc + (col0 + i * 8);
      float v0 = alpha * d[4 * i + 2 * h], v1 = alpha * d[4 * i + 2 * h + 1];
      if (CT == 0) {
        float2* p = reinterpret_cast<float2*>(static_cast<float*>(c) + idx);
        if (beta != 0.f) {
          const float2 o = *p;
          v0 += beta * o.x;
          v1 += beta * o.y;
        }
        *p = make_float2(v0, v1);
      } else {
        u32* p = reinterpret_cast<u32*>(static_cast<u16*>(c) + idx);
        if (beta != 0.f) {
          const u32 o = *p;
          v0 += beta * (CT == 1 ? half_to_float((u16)(o & 0xFFFFu)) : bf16_to_float((u16)(o & 0xFFFFu)));
          v1 += beta * (CT == 1 ? half_to_float((u16)(o >> 16)) : bf16_to_float((u16)(o >> 16)));
        }
        const u32 lo = CT == 1 ? float_to_half(v0) : float_to_bf16(v0);
        const u32 hi = CT == 1 ? float_to_half(v1) : float_to_bf16(v1);
        *p = lo | (hi << 16);
      }
    }
  }
}

}  // namespace axle_ws

using namespace axle_ws;

extern "C" __global__ void __launch_bounds__(384, 1)
axle_gemm_wgmma_ws(const Elem* __restrict__ A, const Elem* __restrict__ B, void* C, const float* __restrict__ bias,
                   int M, int N, int K, long long lda, long long ldb, long long ldc, long long stride_a,
                   long long stride_b, long long stride_c, int batch, float alpha, float beta, int c_type,
                   int bias_kind, int act, unsigned long long smem_offset) {
  // The dynamic shared memory is this kernel's only local-memory argument; its byte
  // offset (smem_offset) is therefore 0 and the base is re-aligned to 1024 bytes here.
  (void)smem_offset;
  extern __shared__ __align__(1024) unsigned char axle_wgmma_ws_smem[];
  constexpr bool kAK = AXLE_TC_A_KMAJOR != 0;
  constexpr bool kBKm = AXLE_TC_B_KMAJOR != 0;

  const int tid = threadIdx.x;
  const u32 s_base = (smem_u32(axle_wgmma_ws_smem) + 1023u) & ~1023u;
  const u32 s_full = s_base + kStages * kStageBytes;  // full[s] at s_full + 8 s
  const u32 s_empty = s_full + kStages * 8;           // empty[s] at s_empty + 8 s

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(s_full + 8 * s, kProducerThreads);
      mbar_init(s_empty + 8 * s, kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();  // the only CTA-wide barrier: the roles split below

  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + kBN - 1) / kBN;
  const i64 tiles = (i64)tiles_m * tiles_n * batch;
  const int KT = (K + kBK - 1) / kBK;
  const int wg = tid >> 7;

  if (wg == 0) {
    // ---------------- producer ----------------
    asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n" ::: "memory");
    const int ptid = tid;
    u32 it = 0;  // k slices issued so far (all tiles)
    for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
      const TileCoord tc = tile_coord(t, tiles_m, tiles_n);
      const Elem* a = A + (i64)tc.bz * stride_a;
      const Elem* b = B + (i64)tc.bz * stride_b;
      for (int kt = 0; kt < KT; ++kt, ++it) {
        const u32 s = it % kStages;
        mbar_wait(s_empty + 8 * s, ((it / kStages) & 1u) ^ 1u);  // first pass: free
        const u32 sa = s_base + s * kStageBytes;
        load_operand<kAK, kBM>(sa, a, lda, tc.m0, M, kt * kBK, K, ptid);
        load_operand<kBKm, kBN>(sa + kATileBytes, b, ldb, tc.n0, N, kt * kBK, K, ptid);
        cp_async_commit();
        if (it >= (u32)kLag) {
          cp_async_wait<kLag>();  // this thread's copies of slice it - kLag have landed
          fence_proxy_async();
          mbar_arrive(s_full + 8 * ((it - kLag) % kStages));
        }
      }
    }
    cp_async_wait<0>();
    fence_proxy_async();
    for (u32 j = it >= (u32)kLag ? it - kLag : 0u; j < it; ++j) mbar_arrive(s_full + 8 * (j % kStages));
    return;
  }

  // ---------------- consumers ----------------
  asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n" ::: "memory");
  const int cw = wg - 1;            // consumer warpgroup: rows 64 cw .. of the tile
  const int wq = (tid >> 5) & 3;    // warp inside the warpgroup
  const int lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const i64 es_c = c_type == 0 ? 4 : 2;
  u32 it = 0;  // k slices consumed so far (all tiles)
  float d[128];

  for (i64 t = blockIdx.x; t < tiles; t += gridDim.x) {
    const TileCoord tc = tile_coord(t, tiles_m, tiles_n);
#pragma unroll
    for (int i = 0; i < 128; ++i) d[i] = 0.f;

    for (int kt = 0; kt < KT; ++kt, ++it) {
      const u32 s = it % kStages;
      mbar_wait(s_full + 8 * s, (it / kStages) & 1u);
      const u32 sA = s_base + s * kStageBytes;
      const u32 sB = sA + kATileBytes;
      const u32 sAw = sA + cw * (64 * 128);  // K-major: 64 rows of 128 B; MN-major: one 8 KiB block
#pragma unroll
      for (int i = 0; i < 128; ++i) fence_operand(d[i]);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) wgmma_step(d, operand_desc<kAK || kTf32>(sAw, ks), operand_desc<kBKm || kTf32>(sB, ks));
      wgmma_commit();
      wgmma_wait<1>();  // this warpgroup's MMAs on the previous slice are complete
#pragma unroll
      for (int i = 0; i < 128; ++i) fence_operand(d[i]);
      if (kt > 0 && lane == 0) mbar_arrive(s_empty + 8 * ((it - 1) % kStages));
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < 128; ++i) fence_operand(d[i]);
    if (KT > 0 && lane == 0) mbar_arrive(s_empty + 8 * ((it - 1) % kStages));

    // Epilogue straight from the accumulators (the producer is already loading the
    // next tile).
    void* c = static_cast<unsigned char*>(C) + (i64)tc.bz * stride_c * es_c;
    const int row0 = tc.m0 + cw * 64 + wq * 16 + g;
    const int col0 = tc.n0 + 2 * t4;
    const bool fast = bias_kind == 0 && act == 0 && tc.m0 + kBM <= M && tc.n0 + kBN <= N && (ldc & 1) == 0 &&
                      (reinterpret_cast<unsigned long long>(c) & (u64)(2 * es_c - 1)) == 0;
    if (fast) {
      if (c_type == 0)
        epilogue_pairs<0>(c, ldc, row0, col0, d, alpha, beta);
      else if (c_type == 1)
        epilogue_pairs<1>(c, ldc, row0, col0, d, alpha, beta);
      else
        epilogue_pairs<2>(c, ldc, row0, col0, d, alpha, beta);
    } else {
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int col = col0 + i * 8;
        epilogue_one(c, bias, M, N, ldc, row0, col, d[4 * i + 0], alpha, beta, c_type, bias_kind, act);
        epilogue_one(c, bias, M, N, ldc, row0, col + 1, d[4 * i + 1], alpha, beta, c_type, bias_kind, act);
        epilogue_one(c, bias, M, N, ldc, row0 + 8, col, d[4 * i + 2], alpha, beta, c_type, bias_kind, act);
        epilogue_one(c, bias, M, N, ldc, row0 + 8, col + 1, d[4 * i + 3], alpha, beta, c_type, bias_kind, act);
      }
    }
  }
}
