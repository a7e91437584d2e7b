// Shared helpers of the CUDA convolution kernels (conv_mma.cu, conv_simt.cu): the
// fused epilogue of one output element,
//
//   y[idx] = act(alpha * acc + beta * y[idx] + bias[k] + z[idx])
//
// Include after gemm_epilogue.cuh (conversions, activate). Codes as there: y_type 0 f32,
// 1 f16, 2 bf16 (z has y's type); act 0 none, 1 ReLU, 2 GELU (erf). beta == 0 never
// reads y.
// Out of line, like epilogue_one: keeps the unrolled epilogue loops small so that the
// accumulators stay in registers.
__device__ __noinline__ void conv_epilogue_one(void* y, const void* z, const float* __restrict__ bias, i64 idx, int k,
                                               float acc, float alpha, float beta, int y_type, int has_bias, int has_z,
                                               int act) {
  float v = alpha * acc;
  if (beta != 0.f) v += beta * load_c(y, idx, y_type);
  if (has_bias) v += bias[k];
  if (has_z) v += load_c(z, idx, y_type);
  store_c(y, idx, y_type, activate(v, act));
}
