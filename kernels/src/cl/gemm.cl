// axle-variant: -DA_T=0 -DB_T=0 -DC_T=0 -DMR=6 -DVW=16 -DNV=2
// axle-variant: -DA_T=0 -DB_T=0 -DC_T=1 -DMR=12 -DVW=16 -DNV=2 -DMB=4 -DKC=128 -DPACK_A=0
// axle-variant: -DA_T=0 -DB_T=0 -DC_T=0 -DMR=6 -DVW=16 -DNV=4 -DMB=11 -DKC=128 -DPACK_A=1 -DPACK_B=0 -DNB=4
// axle-variant: -DA_T=0 -DB_T=0 -DC_T=0 -DMR=8 -DVW=16 -DNV=3 -DMB=1 -DKC=0 -DPACK_A=0 -DPACK_B=0
// axle-variant: -DA_T=1 -DB_T=1 -DC_T=1 -DMR=8 -DVW=16 -DNV=1
// axle-variant: -DA_T=2 -DB_T=2 -DC_T=2 -DMR=4 -DVW=8 -DNV=2
// axle-variant: -DA_T=0 -DB_T=0 -DC_T=0 -DBM=128 -DBN=128 -DBK=16 -DTM=8 -DTN=8 -DTRANS_A=0 -DTRANS_B=0
// axle-variant: -DA_T=1 -DB_T=1 -DC_T=0 -DBM=64 -DBN=64 -DBK=8 -DTM=4 -DTN=4 -DTRANS_A=1 -DTRANS_B=1
// axle-variant: -DA_T=3 -DB_T=3 -DC_T=3 -DBM=32 -DBN=32 -DBK=8 -DTM=4 -DTN=4 -DTRANS_A=0 -DTRANS_B=1
//
// Axle GEMM kernels (portable dialect: OpenCL C with the AXLE_ macros; also compiles
// as CUDA under NVRTC). All matrices are row-major; a column-major call is mapped to
// a row-major one on the host. op(A) is m x k, op(B) is k x n, C is m x n, and
//
//   C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias)
//
// with beta == 0 never reading C. Kernel families in this file:
//
//  * packed (CPU / PoCL): axle_gemm_pack_a / axle_gemm_pack_b copy the operands into
//    contiguous panels (A: MR rows, k-major; B: NR = VW*NV columns, k-major) converting
//    f16/bf16 storage to f32 and zero-padding edges; axle_gemm_packed then runs one
//    work-item (work-group size 1) per MB x 1 blocks of MR x NR of C, holding a block
//    in floatVW accumulators updated with explicit fma. Options: A read in place (f32,
//    PACK_A=0), B read in place (f32, not transposed, PACK_B=0; a partial last panel
//    shifted to end at column n; with KC slices, next-slice touching), so that small
//    products are one launch with neither operand packed, k sliced (KC), work-item order (NFIRST), split K (partial
//    sums to a workspace, finished by axle_gemm_epilogue), transposed store (trans_c,
//    for C^T = op(B)^T op(A)^T). Narrow C (n <= 8, GEMV-like): axle_gemm_pack_bt and
//    axle_gemm_narrow, vectorised along k.
//  * tiled (GPU): axle_gemm_tiled, the classic local-memory kernel: a work-group
//    computes a BM x BN tile, each work-item TM x TN of it, staging BK-deep slices of
//    A and B in local memory. Reads the operands directly (transposes and element
//    types are compile-time defines). Also the f64 path.
//  * axle_gemm_epilogue: C = act(alpha * sum(partials) + beta * C + bias); with zero
//    partials it is the "alpha == 0 or k == 0" scaling of C.
//
// Element type codes (A_T, B_T, C_T): 0 f32, 1 f16, 2 bf16, 3 f64. The accumulator is
// f64 when any of them is f64, else f32. bias is float (double for f64).
// act: 0 none, 1 ReLU, 2 GELU (erf form). bias_kind: 0 none, 1 per row, 2 per column.

#ifndef A_T
#define A_T 0
#endif
#ifndef B_T
#define B_T A_T
#endif
#ifndef C_T
#define C_T A_T
#endif

#if A_T == 3 || B_T == 3 || C_T == 3
#define ACC_F64 1
#ifdef AXLE_OPENCL
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
typedef double real_t;
#else
#define ACC_F64 0
typedef float real_t;
#endif

#define AX_CAT_(a, b) a##b
#define AX_CAT(a, b) AX_CAT_(a, b)

// ---- typed loads and stores -------------------------------------------------------
#if A_T == 0
#define A_ELEM float
#define LOAD_A(p, i) ((real_t)(p)[i])
#elif A_T == 1
#define A_ELEM AXLE_HALF
#define LOAD_A(p, i) ((real_t)AXLE_LOAD_HALF(i, p))
#elif A_T == 2
#define A_ELEM ushort
#define LOAD_A(p, i) ((real_t)axle_bf16_to_float((p)[i]))
#else
#define A_ELEM double
#define LOAD_A(p, i) ((real_t)(p)[i])
#endif

#if B_T == 0
#define B_ELEM float
#define LOAD_B(p, i) ((real_t)(p)[i])
#elif B_T == 1
#define B_ELEM AXLE_HALF
#define LOAD_B(p, i) ((real_t)AXLE_LOAD_HALF(i, p))
#elif B_T == 2
#define B_ELEM ushort
#define LOAD_B(p, i) ((real_t)axle_bf16_to_float((p)[i]))
#else
#define B_ELEM double
#define LOAD_B(p, i) ((real_t)(p)[i])
#endif

#if C_T == 0
#define C_ELEM float
#define LOAD_C(p, i) ((real_t)(p)[i])
#define STORE_C(p, i, v) ((p)[i] = (float)(v))
#elif C_T == 1
#define C_ELEM AXLE_HALF
#define LOAD_C(p, i) ((real_t)AXLE_LOAD_HALF(i, p))
#define STORE_C(p, i, v) AXLE_STORE_HALF((float)(v), i, p)
#elif C_T == 2
#define C_ELEM ushort
#define LOAD_C(p, i) ((real_t)axle_bf16_to_float((p)[i]))
#define STORE_C(p, i, v) ((p)[i] = axle_float_to_bf16((float)(v)))
#else
#define C_ELEM double
#define LOAD_C(p, i) ((real_t)(p)[i])
#define STORE_C(p, i, v) ((p)[i] = (double)(v))
#endif

// ---- the epilogue, shared by every path ------------------------------------------
AXLE_FUNC real_t axle_gemm_act(real_t v, int act) {
  if (act == 1) return v > (real_t)0 ? v : (real_t)0;
  if (act == 2) return (real_t)0.5 * v * ((real_t)1 + erf(v * (real_t)0.70710678118654752440));
  return v;
}

// acc already holds the finished sum of products (alpha not yet applied).
AXLE_FUNC void axle_gemm_store(AXLE_GLOBAL C_ELEM* c, ulong idx, real_t acc, real_t alpha, real_t beta,
                               AXLE_GLOBAL const real_t* bias, int bias_kind, int act, int i, int j) {
  real_t v = alpha * acc;
  if (beta != (real_t)0) v += beta * LOAD_C(c, idx);
  if (bias_kind == 1) v += bias[i];
  else if (bias_kind == 2) v += bias[j];
  STORE_C(c, idx, axle_gemm_act(v, act));
}

// C = act(alpha * sum_s W[s] + beta * C + bias); splits == 0 means no partials (the
// scale-only case). One work-item per element; dims (n, rows, batch) for rows row0
// onwards (the host launches tall C in pieces of rows: grid dimension y is limited on
// CUDA). trans_c: the (m x n) result is stored transposed (element (i, j) at c[j * ldc + i]).
AXLE_KERNEL void axle_gemm_epilogue(AXLE_GLOBAL const float* AXLE_RESTRICT w, ulong w_off, int splits,
                                    AXLE_GLOBAL C_ELEM* AXLE_RESTRICT c, ulong c_off, ulong c_stride, int ldc,
                                    AXLE_GLOBAL const real_t* AXLE_RESTRICT bias, ulong bias_off, int bias_kind,
                                    int act, int m, int n, real_t alpha, real_t beta, int trans_c, int row0) {
  const int j = (int)AXLE_GLOBAL_ID(0);
  const int i = row0 + (int)AXLE_GLOBAL_ID(1);
  const int b = (int)AXLE_GLOBAL_ID(2);
  if (i >= m || j >= n) return;
  w += w_off;
  c += c_off;
  bias += bias_off;
  real_t acc = (real_t)0;
  const ulong mn = (ulong)m * (ulong)n;
  for (int s = 0; s < splits; ++s) acc += (real_t)w[((ulong)b * (ulong)splits + (ulong)s) * mn + (ulong)i * n + j];
  axle_gemm_store(c + (ulong)b * c_stride, trans_c ? (ulong)j * ldc + i : (ulong)i * ldc + j, acc, alpha, beta, bias,
                  bias_kind, act, i, j);
}

#if !ACC_F64 && defined(MR)
// =================================================================================
// Packed CPU family
// =================================================================================
#ifndef VW
#define VW 16
#endif
#ifndef NV
#define NV 1
#endif
#ifndef PACK_A
#define PACK_A 1
#endif
#define NR (VW * NV)
#define VT AX_CAT(float, VW)
#define VLOADW AX_CAT(vload, VW)
#define VSTOREW AX_CAT(vstore, VW)
#ifndef MB
#define MB 1  // m panels per work-item
#endif
#ifndef PACK_B
#define PACK_B 1  // 0: B (f32, not transposed, n >= NR) read in place
#endif
#ifndef NFIRST
#define NFIRST 0  // 1: work-items ordered column panel fastest (dims (n panels, m groups, ...))
#endif
#ifndef KC
#define KC 0  // k slice depth (0: whole k range at once)
#endif
#ifndef NB
#define NB 1  // adjacent column panels per work-item (KC > 0 with B read in place only)
#endif
#if NB > 1 && (KC == 0 || PACK_B)
#error "NB > 1 needs KC > 0 and PACK_B=0"
#endif
#ifndef PACK_ROWS
#define PACK_ROWS 256  // k rows packed per work-item
#endif

// op(A) (m x k) -> panels of MR rows: ap[(panel * k + p) * MR + r], zero rows past m.
// dims (m panels, ceil(k / PACK_ROWS), batch).
AXLE_KERNEL void axle_gemm_pack_a(AXLE_GLOBAL const A_ELEM* AXLE_RESTRICT a, ulong a_off, ulong a_stride, int lda,
                                  int trans_a, AXLE_GLOBAL float* AXLE_RESTRICT ap, ulong ap_off, ulong ap_stride,
                                  int m, int k) {
  const int panel = (int)AXLE_GLOBAL_ID(0);
  const int p0 = (int)AXLE_GLOBAL_ID(1) * PACK_ROWS;
  const int b = (int)AXLE_GLOBAL_ID(2);
  const int p1 = min(p0 + PACK_ROWS, k);
  a += a_off + (ulong)b * a_stride;
  AXLE_GLOBAL float* dst = ap + ap_off + (ulong)b * ap_stride + (ulong)panel * (ulong)k * MR;
  const int i0 = panel * MR;
  // p outer, r inner: the packed panel is written sequentially; A is read along MR row
  // streams (not transposed) or one contiguous run per p (transposed).
  if (i0 + MR <= m) {
    if (trans_a) {
      for (int p = p0; p < p1; ++p) {
        AXLE_GLOBAL const A_ELEM* src = a + (ulong)p * lda + i0;
#pragma unroll
        for (int r = 0; r < MR; ++r) dst[(ulong)p * MR + r] = (float)LOAD_A(src, r);
      }
    } else {
      AXLE_GLOBAL const A_ELEM* src = a + (ulong)i0 * lda;
      for (int p = p0; p < p1; ++p) {
#pragma unroll
        for (int r = 0; r < MR; ++r) dst[(ulong)p * MR + r] = (float)LOAD_A(src, (ulong)r * lda + p);
      }
    }
  } else {
    for (int p = p0; p < p1; ++p) {
      for (int r = 0; r < MR; ++r) {
        const int i = i0 + r;
        dst[(ulong)p * MR + r] =
            i < m ? (float)LOAD_A(a, trans_a ? (ulong)p * lda + i : (ulong)i * lda + p) : 0.0f;
      }
    }
  }
}

// op(B) (k x n) -> panels of NR columns: bp[(panel * k + p) * NR + c], zero columns
// past n. dims (n panels, ceil(k / PACK_ROWS), batch).
AXLE_KERNEL void axle_gemm_pack_b(AXLE_GLOBAL const B_ELEM* AXLE_RESTRICT bsrc, ulong b_off, ulong b_stride, int ldb,
                                  int trans_b, AXLE_GLOBAL float* AXLE_RESTRICT bp, ulong bp_off, ulong bp_stride,
                                  int n, int k) {
  const int panel = (int)AXLE_GLOBAL_ID(0);
  const int p0 = (int)AXLE_GLOBAL_ID(1) * PACK_ROWS;
  const int b = (int)AXLE_GLOBAL_ID(2);
  const int p1 = min(p0 + PACK_ROWS, k);
  bsrc += b_off + (ulong)b * b_stride;
  AXLE_GLOBAL float* dst = bp + bp_off + (ulong)b * bp_stride + (ulong)panel * (ulong)k * NR;
  const int j0 = panel * NR;
  if (trans_b) {  // B stored n x k: column j of op(B) is row j of B, contiguous in p
    if (j0 + NR <= n) {
      AXLE_GLOBAL const B_ELEM* src = bsrc + (ulong)j0 * ldb;
      for (int p = p0; p < p1; ++p) {
#pragma unroll
        for (int c = 0; c < NR; ++c) dst[(ulong)p * NR + c] = (float)LOAD_B(src, (ulong)c * ldb + p);
      }
    } else {
      for (int p = p0; p < p1; ++p)
        for (int c = 0; c < NR; ++c) {
          const int j = j0 + c;
          dst[(ulong)p * NR + c] = j < n ? (float)LOAD_B(bsrc, (ulong)j * ldb + p) : 0.0f;
        }
    }
  } else if (j0 + NR <= n) {
    for (int p = p0; p < p1; ++p) {
      AXLE_GLOBAL const B_ELEM* row = bsrc + (ulong)p * ldb + j0;
#if B_T == 0
      for (int v = 0; v < NV; ++v) VSTOREW(VLOADW(v, row), v, dst + (ulong)p * NR);
#else
      for (int c = 0; c < NR; ++c) dst[(ulong)p * NR + c] = (float)LOAD_B(row, c);
#endif
    }
  } else {
    for (int p = p0; p < p1; ++p) {
      AXLE_GLOBAL const B_ELEM* row = bsrc + (ulong)p * ldb;
      for (int c = 0; c < NR; ++c) {
        const int j = j0 + c;
        dst[(ulong)p * NR + c] = j < n ? (float)LOAD_B(row, j) : 0.0f;
      }
    }
  }
}

// Store one finished MR x NR block (acc[r * NV + v]) of C at (i0, j0): the epilogue,
// or raw partial sums to w when K is split. Columns before jlo are skipped (a shifted
// last panel overlaps the one before it).
AXLE_FUNC void axle_gemm_packed_store(VT* acc, int i0, int j0, int jlo, AXLE_GLOBAL C_ELEM* cb, int ldc,
                                      AXLE_GLOBAL const float* bias, int bias_kind, int act, int m, int n,
                                      int splits, float alpha, float beta, AXLE_GLOBAL float* wb,
                                      int trans_c) {
#pragma unroll
  for (int r = 0; r < MR; ++r) {
    const int i = i0 + r;
    if (i < m) {
#pragma unroll
      for (int v = 0; v < NV; ++v) {
        const int jv = j0 + v * VW;
        const int cnt = min(VW, n - jv);
        const int lo = max(0, jlo - jv);  // columns before jlo belong to the previous panel
        if (splits == 1 && lo == 0 && cnt == VW && beta == 0.0f && bias_kind == 0 && act == 0 && !trans_c) {
#if C_T == 0
          VSTOREW(acc[r * NV + v] * alpha, 0, cb + (ulong)i * ldc + jv);
#else
          float tmp[VW];
          VSTOREW(acc[r * NV + v], 0, tmp);
          for (int q = 0; q < VW; ++q) STORE_C(cb, (ulong)i * ldc + jv + q, alpha * tmp[q]);
#endif
        } else {
          float tmp[VW];
          VSTOREW(acc[r * NV + v], 0, tmp);
          if (splits > 1) {
            for (int q = lo; q < cnt; ++q) wb[(ulong)i * n + jv + q] = tmp[q];
          } else {
            for (int q = lo; q < cnt; ++q)
              axle_gemm_store(cb, trans_c ? (ulong)(jv + q) * ldc + i : (ulong)i * ldc + jv + q, tmp[q], alpha, beta,
                              bias, bias_kind, act, i, jv + q);
          }
        }
      }
    }
  }
}

// acc += A(i0.., p) * B(p, j0..) for p in [p0, p1). aq: packed A panel at p0
// (PACK_A) or the A base (in place); bq: packed B panel at p0.
#if PACK_A
#define AXLE_A_AT(r) aq[r]
#define AXLE_A_STEP aq += MR
#else
#define AXLE_A_AT(r) aq[ro[r]]
#define AXLE_A_STEP aq += ps
#endif
#define AXLE_MICRO_LOOP(p0, p1)                                                   \
  for (int p = (p0); p < (p1); ++p) {                                             \
    VT bv[NV];                                                                    \
    _Pragma("unroll") for (int v = 0; v < NV; ++v) bv[v] = VLOADW(v, bq);         \
    _Pragma("unroll") for (int r = 0; r < MR; ++r) {                              \
      const VT av = AXLE_SPLAT(VT, AXLE_A_AT(r));                                 \
      _Pragma("unroll") for (int v = 0; v < NV; ++v) acc[r * NV + v] =            \
          fma(av, bv[v], acc[r * NV + v]);                                        \
    }                                                                             \
    AXLE_A_STEP;                                                                  \
    bq += AXLE_B_STEP;                                                            \
  }

// One work-item (work-group size 1) per MB row panels x one column panel of C (each
// panel block MR x NR). dims (ceil(m panels / MB), n panels, batch * splits), or
// (n panels, ceil(m panels / MB), batch * splits) with NFIRST: consecutive work-items
// then share their A rows (kept in L2) and stream B panels. With
// splits > 1 the k range is cut into `splits` pieces of kps and raw partial sums go to
// w[(b * splits + s) * m * n + i * n + j]. trans_c stores the m x n result transposed
// (the host computes C^T = op(B)^T op(A)^T this way for short, wide C). With KC > 0 the k range is walked in KC-deep
// slices, each slice's B block (KC x NR, L1-sized) reused by the MB row panels, whose
// partial sums wait in private memory between slices.
AXLE_KERNEL void axle_gemm_packed(AXLE_GLOBAL const float* AXLE_RESTRICT a, ulong a_off, ulong a_stride, int lda,
                                  int trans_a, AXLE_GLOBAL const float* AXLE_RESTRICT bp, ulong bp_off,
                                  ulong bp_stride, AXLE_GLOBAL C_ELEM* AXLE_RESTRICT c, ulong c_off,
                                  ulong c_stride, int ldc, AXLE_GLOBAL const float* AXLE_RESTRICT bias,
                                  ulong bias_off, int bias_kind, int act, int m, int n, int k, int kps,
                                  int splits, float alpha, float beta, AXLE_GLOBAL float* AXLE_RESTRICT w,
                                  ulong w_off, int trans_c, AXLE_GLOBAL const float* AXLE_RESTRICT bd,
                                  ulong bd_off, ulong bd_stride, int ldb) {
#if NFIRST
  const int pb = (int)AXLE_GLOBAL_ID(0);
  const int pa0 = (int)AXLE_GLOBAL_ID(1) * MB;
#else
  const int pb = (int)AXLE_GLOBAL_ID(1);
  const int pa0 = (int)AXLE_GLOBAL_ID(0) * MB;
#endif
  const int bs = (int)AXLE_GLOBAL_ID(2);
  const int b = bs / splits;
  const int s = bs - b * splits;
  const int j0 = pb * (NB * NR);  // first column of this work-item's first panel
  const int kb = s * kps;
  const int ke = min(k, kb + kps);
  const int pa1 = min((m + MR - 1) / MR, pa0 + MB);
  AXLE_GLOBAL const float* ab = a + a_off + (ulong)b * a_stride;
#if PACK_B
  AXLE_GLOBAL const float* bpb = bp + bp_off + (ulong)b * bp_stride + (ulong)pb * (ulong)k * NR;
#define AXLE_B_STEP NR
  const int jb = j0;
#else
  // B (f32, not transposed) read in place. A partial last column panel is shifted left
  // to end at column n (the host guarantees n >= NR): it recomputes some columns of
  // the panel before it and stores only its own (from j0).
  const int jb = min(j0, n - NR);
  AXLE_GLOBAL const float* bpb = bd + bd_off + (ulong)b * bd_stride + jb;
  const ulong bstep = (ulong)ldb;
#define AXLE_B_STEP bstep
#endif
  AXLE_GLOBAL C_ELEM* cb = c + c_off + (ulong)b * c_stride;
  AXLE_GLOBAL float* wb = w + w_off + (ulong)bs * (ulong)m * (ulong)n;
  bias += bias_off;
#if !PACK_A
  // A read in place (f32 only): element (i, p) at a[i * rs + p * ps]; rows past m
  // are clamped to the last row and discarded at the store.
  const ulong rs = trans_a ? 1 : (ulong)lda;
  const ulong ps = trans_a ? (ulong)lda : 1;
#endif
  VT acc[MR * NV];
#if KC > 0
  VT part[NB * MB * MR * NV];
#if !PACK_B
  volatile float sink;  // keeps the touch loads of the next B slice
#endif
  for (int kc0 = kb; kc0 < ke; kc0 += KC) {
    const int kc1 = min(ke, kc0 + KC);
    // NB adjacent column panels: each B row is then read NB * NR columns at a time,
    // fewer pages and longer runs for the prefetchers.
    for (int jq = 0; jq < NB; ++jq) {
    const int j0q = j0 + jq * NR;
    if (j0q >= n) break;
#if PACK_B
    const int jbq = j0q;
    AXLE_GLOBAL const float* bpbq = bpb;
#else
    const int jbq = min(j0q, n - NR);
    AXLE_GLOBAL const float* bpbq = bpb + (jbq - jb);
#endif
    for (int pa = pa0; pa < pa1; ++pa) {
      VT* pp = part + (jq * MB + pa - pa0) * (MR * NV);
      if (kc0 == kb) {
#pragma unroll
        for (int q = 0; q < MR * NV; ++q) acc[q] = AXLE_SPLAT(VT, 0.0f);
      } else {
#pragma unroll
        for (int q = 0; q < MR * NV; ++q) acc[q] = pp[q];
      }
      AXLE_GLOBAL const float* bq = bpbq + (ulong)kc0 * AXLE_B_STEP;
#if PACK_A
      AXLE_GLOBAL const float* aq = ab + ((ulong)pa * (ulong)k + (ulong)kc0) * MR;
#else
      ulong ro[MR];
#pragma unroll
      for (int r = 0; r < MR; ++r) ro[r] = (ulong)min(pa * MR + r, m - 1) * rs;
      AXLE_GLOBAL const float* aq = ab + (ulong)kc0 * ps;
#endif
#if !PACK_B
      if (pa == pa0 && kc1 < ke) {
        // First pass over this slice of in-place B: also touch the same rows of the
        // next slice (each row is on its own page, beyond the hardware prefetchers'
        // reach), so that they are in cache when the next slice starts.
        const ulong ahead = (ulong)KC * bstep;
        float touch = 0.0f;
        for (int p = kc0; p < kc1; ++p) {
          AXLE_GLOBAL const float* nq = p + KC < ke ? bq + ahead : bq;  // stay inside op(B)
          VT bv[NV];
#pragma unroll
          for (int v = 0; v < NV; ++v) bv[v] = VLOADW(v, bq);
#pragma unroll
          for (int v = 0; v < NV * VW; v += 16) touch += nq[v];
#pragma unroll
          for (int r = 0; r < MR; ++r) {
            const VT av = AXLE_SPLAT(VT, AXLE_A_AT(r));
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[r * NV + v] = fma(av, bv[v], acc[r * NV + v]);
          }
          AXLE_A_STEP;
          bq += bstep;
        }
        sink = touch;
      } else
#endif
      {
        AXLE_MICRO_LOOP(kc0, kc1)
      }
      if (kc1 == ke) {
        axle_gemm_packed_store(acc, pa * MR, jbq, j0q, cb, ldc, bias, bias_kind, act, m, n, splits, alpha, beta, wb,
                               trans_c);
      } else {
#pragma unroll
        for (int q = 0; q < MR * NV; ++q) pp[q] = acc[q];
      }
    }
    }
  }
#else
  for (int pa = pa0; pa < pa1; ++pa) {
#pragma unroll
    for (int q = 0; q < MR * NV; ++q) acc[q] = AXLE_SPLAT(VT, 0.0f);
    AXLE_GLOBAL const float* bq = bpb + (ulong)kb * AXLE_B_STEP;
#if PACK_A
    AXLE_GLOBAL const float* aq = ab + ((ulong)pa * (ulong)k + (ulong)kb) * MR;
#else
    ulong ro[MR];
#pragma unroll
    for (int r = 0; r < MR; ++r) ro[r] = (ulong)min(pa * MR + r, m - 1) * rs;
    AXLE_GLOBAL const float* aq = ab + (ulong)kb * ps;
#endif
    AXLE_MICRO_LOOP(kb, ke)
    axle_gemm_packed_store(acc, pa * MR, jb, j0, cb, ldc, bias, bias_kind, act, m, n, splits, alpha, beta, wb,
                               trans_c);
  }
#endif
}

// ---- narrow C: GEMV-like products ------------------------------------------------
// C (m x n, n <= NARROW_N) for f32 op(A) with rows contiguous in k (A not transposed;
// the kernels exist in f32-A programs only).
// op(B)^T comes as n rows of ldbt floats: B itself when it is f32 and stored n x k,
// else written by axle_gemm_pack_bt. axle_gemm_narrow then runs one work-item per NARROW_R rows of C and a k
// range: floatVW products of A rows with those B^T rows, summed across lanes at the
// end. dims (ceil(m / NARROW_R), 1, batch * splits); with splits > 1 raw sums go to w
// (finished by axle_gemm_epilogue). Memory-bound on A, which is read once.
#if A_T == 0
#define NARROW_N 8
#define NARROW_R 3

// dims (n, ceil(k / PACK_ROWS), batch).
AXLE_KERNEL void axle_gemm_pack_bt(AXLE_GLOBAL const B_ELEM* AXLE_RESTRICT bsrc, ulong b_off, ulong b_stride, int ldb,
                                   int trans_b, AXLE_GLOBAL float* AXLE_RESTRICT bt, ulong bt_off, ulong bt_stride,
                                   int ldbt, int n, int k) {
  const int j = (int)AXLE_GLOBAL_ID(0);
  const int p0 = (int)AXLE_GLOBAL_ID(1) * PACK_ROWS;
  const int b = (int)AXLE_GLOBAL_ID(2);
  const int p1 = min(p0 + PACK_ROWS, k);
  bsrc += b_off + (ulong)b * b_stride;
  AXLE_GLOBAL float* dst = bt + bt_off + (ulong)b * bt_stride + (ulong)j * ldbt;
  for (int p = p0; p < p1; ++p) dst[p] = (float)LOAD_B(bsrc, trans_b ? (ulong)j * ldb + p : (ulong)p * ldb + j);
}

AXLE_KERNEL void axle_gemm_narrow(AXLE_GLOBAL const float* AXLE_RESTRICT a, ulong a_off, ulong a_stride, int lda,
                                  AXLE_GLOBAL const float* AXLE_RESTRICT bt, ulong bt_off, ulong bt_stride, int ldbt,
                                  AXLE_GLOBAL C_ELEM* AXLE_RESTRICT c, ulong c_off, ulong c_stride, int ldc,
                                  AXLE_GLOBAL const float* AXLE_RESTRICT bias, ulong bias_off, int bias_kind, int act,
                                  int m, int n, int k, int kps, int splits, float alpha, float beta,
                                  AXLE_GLOBAL float* AXLE_RESTRICT w, ulong w_off, int trans_c) {
  const int i0 = (int)AXLE_GLOBAL_ID(0) * NARROW_R;
  const int bs = (int)AXLE_GLOBAL_ID(2);
  const int b = bs / splits;
  const int s = bs - b * splits;
  const int kb = s * kps;
  const int ke = min(k, kb + kps);
  const int kv = kb + (ke - kb) / VW * VW;  // end of the whole vectors
  AXLE_GLOBAL const float* ab = a + a_off + (ulong)b * a_stride;
  AXLE_GLOBAL const float* bb = bt + bt_off + (ulong)b * bt_stride;
  ulong ro[NARROW_R];  // rows past m are clamped to the last row and not stored
#pragma unroll
  for (int r = 0; r < NARROW_R; ++r) ro[r] = (ulong)min(i0 + r, m - 1) * (ulong)lda;
  ulong co[NARROW_N];  // columns past n likewise
#pragma unroll
  for (int j = 0; j < NARROW_N; ++j) co[j] = (ulong)min(j, n - 1) * (ulong)ldbt;
  VT acc[NARROW_R * NARROW_N];
#pragma unroll
  for (int q = 0; q < NARROW_R * NARROW_N; ++q) acc[q] = AXLE_SPLAT(VT, 0.0f);
  for (int p = kb; p < kv; p += VW) {
    VT bv[NARROW_N];
#pragma unroll
    for (int j = 0; j < NARROW_N; ++j) bv[j] = VLOADW(0, bb + co[j] + p);
#pragma unroll
    for (int r = 0; r < NARROW_R; ++r) {
      const VT av = VLOADW(0, ab + ro[r] + p);
#pragma unroll
      for (int j = 0; j < NARROW_N; ++j) acc[r * NARROW_N + j] = fma(av, bv[j], acc[r * NARROW_N + j]);
    }
  }
  AXLE_GLOBAL C_ELEM* cb = c + c_off + (ulong)b * c_stride;
  AXLE_GLOBAL float* wb = w + w_off + (ulong)bs * (ulong)m * (ulong)n;
  bias += bias_off;
  // Lane sums with static indices (acc stays in registers), then the k tail and the
  // store per element in a plain loop.
  float sums[NARROW_R * NARROW_N];
#pragma unroll
  for (int q = 0; q < NARROW_R * NARROW_N; ++q) {
    float lanes[VW];
    VSTOREW(acc[q], 0, lanes);
    float t = 0.0f;
#pragma unroll
    for (int l = 0; l < VW; ++l) t += lanes[l];
    sums[q] = t;
  }
  const int rows = min(NARROW_R, m - i0);
  for (int q = 0; q < rows * NARROW_N; ++q) {
    const int r = q / NARROW_N, j = q - r * NARROW_N;
    if (j >= n) continue;
    const int i = i0 + r;
    float sum = sums[q];
    for (int p = kv; p < ke; ++p) sum = fma(ab[ro[r] + p], bb[co[j] + p], sum);
    if (splits > 1)
      wb[(ulong)i * n + j] = sum;
    else
      axle_gemm_store(cb, trans_c ? (ulong)j * ldc + i : (ulong)i * ldc + j, sum, alpha, beta, bias, bias_kind, act,
                      i, j);
  }
}
#endif  // A_T == 0 (narrow)
#endif  // packed family

#if defined(BM)
// =================================================================================
// Local-memory tiled family (GPU; also the f64 path)
// =================================================================================
#ifndef BN
#define BN BM
#endif
#ifndef BK
#define BK 16
#endif
#ifndef TM
#define TM 8
#endif
#ifndef TN
#define TN 8
#endif
#ifndef TRANS_A
#define TRANS_A 0
#endif
#ifndef TRANS_B
#define TRANS_B 0
#endif
#define LX (BN / TN)
#define LY (BM / TM)
#define NT (LX * LY)
#define APAD 4

// Work-group (LX, LY) computes the BM x BN tile at group (x, y); dims (n, m, batch)
// in work-items, i.e. (ceil(n / BN) * LX, ceil(m / BM) * LY, batch). Work-item (tx, ty)
// owns rows ty + t * LY and columns tx + u * LX of the tile (conflict-free local reads,
// coalesced stores). The next BK slice is loaded into registers while the current one
// is multiplied (register double buffering).
AXLE_KERNEL AXLE_REQD_WG(LX, LY, 1) void axle_gemm_tiled(
    AXLE_GLOBAL const A_ELEM* AXLE_RESTRICT a, ulong a_off, ulong a_stride, int lda,
    AXLE_GLOBAL const B_ELEM* AXLE_RESTRICT bsrc, ulong b_off, ulong b_stride, int ldb,
    AXLE_GLOBAL C_ELEM* AXLE_RESTRICT c, ulong c_off, ulong c_stride, int ldc,
    AXLE_GLOBAL const real_t* AXLE_RESTRICT bias, ulong bias_off, int bias_kind, int act,
    int m, int n, int k, real_t alpha, real_t beta) {
  AXLE_LOCAL real_t as[BK * (BM + APAD)];
  AXLE_LOCAL real_t bs[BK * (BN + APAD)];
  const int tx = (int)AXLE_LOCAL_ID(0);
  const int ty = (int)AXLE_LOCAL_ID(1);
  const int tid = ty * LX + tx;
  const int bm0 = (int)AXLE_GROUP_ID(1) * BM;
  const int bn0 = (int)AXLE_GROUP_ID(0) * BN;
  const int bb = (int)AXLE_GROUP_ID(2);
  a += a_off + (ulong)bb * a_stride;
  bsrc += b_off + (ulong)bb * b_stride;
  c += c_off;
  bias += bias_off;

#define A_LOADS ((BM * BK + NT - 1) / NT)
#define B_LOADS ((BN * BK + NT - 1) / NT)
  real_t ra[A_LOADS];
  real_t rb[B_LOADS];
  real_t acc[TM][TN];
#pragma unroll
  for (int t = 0; t < TM; ++t)
#pragma unroll
    for (int u = 0; u < TN; ++u) acc[t][u] = (real_t)0;

  // Element e of the A slice: !TRANS_A reads along k (contiguous), TRANS_A along m.
#define FETCH(k0)                                                                        \
  _Pragma("unroll") for (int l = 0; l < A_LOADS; ++l) {                                  \
    const int e = tid + l * NT;                                                          \
    const int row = TRANS_A ? e % BM : e / BK;                                           \
    const int kk = TRANS_A ? e / BM : e % BK;                                            \
    const int gi = bm0 + row, gp = (k0) + kk;                                            \
    ra[l] = (e < BM * BK && gi < m && gp < k)                                            \
                ? LOAD_A(a, TRANS_A ? (ulong)gp * lda + gi : (ulong)gi * lda + gp)       \
                : (real_t)0;                                                             \
  }                                                                                      \
  _Pragma("unroll") for (int l = 0; l < B_LOADS; ++l) {                                  \
    const int e = tid + l * NT;                                                          \
    const int col = TRANS_B ? e / BK : e % BN;                                           \
    const int kk = TRANS_B ? e % BK : e / BN;                                            \
    const int gj = bn0 + col, gp = (k0) + kk;                                            \
    rb[l] = (e < BN * BK && gj < n && gp < k)                                            \
                ? LOAD_B(bsrc, TRANS_B ? (ulong)gj * ldb + gp : (ulong)gp * ldb + gj)    \
                : (real_t)0;                                                             \
  }

  FETCH(0)
  for (int k0 = 0; k0 < k; k0 += BK) {
#pragma unroll
    for (int l = 0; l < A_LOADS; ++l) {
      const int e = tid + l * NT;
      if (e < BM * BK) {
        const int row = TRANS_A ? e % BM : e / BK;
        const int kk = TRANS_A ? e / BM : e % BK;
        as[kk * (BM + APAD) + row] = ra[l];
      }
    }
#pragma unroll
    for (int l = 0; l < B_LOADS; ++l) {
      const int e = tid + l * NT;
      if (e < BN * BK) {
        const int col = TRANS_B ? e / BK : e % BN;
        const int kk = TRANS_B ? e % BK : e / BN;
        bs[kk * (BN + APAD) + col] = rb[l];
      }
    }
    AXLE_BARRIER();
    if (k0 + BK < k) {
      FETCH(k0 + BK)
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      real_t av[TM], bv[TN];
#pragma unroll
      for (int t = 0; t < TM; ++t) av[t] = as[kk * (BM + APAD) + ty + t * LY];
#pragma unroll
      for (int u = 0; u < TN; ++u) bv[u] = bs[kk * (BN + APAD) + tx + u * LX];
#pragma unroll
      for (int t = 0; t < TM; ++t)
#pragma unroll
        for (int u = 0; u < TN; ++u) acc[t][u] = fma(av[t], bv[u], acc[t][u]);
    }
    AXLE_BARRIER();
  }
#undef FETCH

  AXLE_GLOBAL C_ELEM* cb = c + (ulong)bb * c_stride;
#pragma unroll
  for (int t = 0; t < TM; ++t) {
    const int i = bm0 + ty + t * LY;
    if (i < m) {
#pragma unroll
      for (int u = 0; u < TN; ++u) {
        const int j = bn0 + tx + u * LX;
        if (j < n) axle_gemm_store(cb, (ulong)i * ldc + j, acc[t][u], alpha, beta, bias, bias_kind, act, i, j);
      }
    }
  }
}
#endif  // tiled family
