// Shared helpers of the CUDA GEMM kernels (gemm_mma.cu, gemm_wgmma.cu,
// gemm_wgmma_ws.cu, sgemm_simt.cu): the tile order and the epilogue. Each kernel file includes it inside its own
// namespace after defining u16/u32/i64; the kernel library passes it as a
// BuildOptions header. Codes: c_type 0 f32, 1 f16, 2 bf16; act 0 none, 1 ReLU,
// 2 GELU (erf), 3 GELU (tanh); bias_kind 0 none, 1 per row, 2 per column.
// Grouped rasterisation for L2 reuse: tile r of a tiles_m x tiles_n grid, taken
// group_m tile rows at a time (column by column within a group).
__device__ __forceinline__ void grouped_tile(int r, int tiles_m, int tiles_n, int group_m, int& tm, int& tn) {
  const int per_group = group_m * tiles_n;
  const int first_m = (r / per_group) * group_m;
  const int gsize = min(tiles_m - first_m, group_m);
  tm = first_m + (r % per_group) % gsize;
  tn = (r % per_group) / gsize;
}

__device__ __forceinline__ float half_to_float(u16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;\n" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ u16 float_to_half(float f) {
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(h) : "f"(f));
  return h;
}
__device__ __forceinline__ float bf16_to_float(u16 b) { return __uint_as_float(((u32)b) << 16); }
__device__ __forceinline__ u16 float_to_bf16(float f) {
  u16 h;
  asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(h) : "f"(f));
  return h;
}
__device__ __forceinline__ float load_c(const void* c, i64 idx, int c_type) {
  if (c_type == 0) return static_cast<const float*>(c)[idx];
  const u16 h = static_cast<const u16*>(c)[idx];
  return c_type == 1 ? half_to_float(h) : bf16_to_float(h);
}
__device__ __forceinline__ void store_c(void* c, i64 idx, int c_type, float v) {
  if (c_type == 0)
    static_cast<float*>(c)[idx] = v;
  else
    static_cast<u16*>(c)[idx] = c_type == 1 ? float_to_half(v) : float_to_bf16(v);
}
__device__ __forceinline__ float activate(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
  if (act == 2) return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
  if (act == 3) {
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return 0.5f * v * (1.f + tanhf(u));
  }
  return v;
}
// Out of line: keeps the fully unrolled epilogue small, so the accumulators stay in
// registers (an inlined body this size makes the compiler index them through memory).
__device__ __noinline__ void epilogue_one(void* c, const float* __restrict__ bias, int M, int N, i64 ldc, int row,
                                             int col, float acc, float alpha, float beta, int c_type, int bias_kind,
                                             int act) {
  if (row >= M || col >= N) return;
  const i64 idx = (i64)row * ldc + col;
  float v = alpha * acc;
  if (beta != 0.f) v += beta * load_c(c, idx, c_type);
  if (bias_kind == 1) v += bias[row];
  else if (bias_kind == 2) v += bias[col];
  store_c(c, idx, c_type, activate(v, act));
}
