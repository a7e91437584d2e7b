// fma_peak: the device's float FMA throughput. Each work-item runs CHAINS independent
// chains of floatVW FMAs, then folds them into one store so that nothing is dead code.
// VW is the device's preferred float vector width (8 on AVX2, 16 on AVX-512) and
// CHAINS = 12: on a CPU core the chains and the two constants stay in its vector
// registers (14 of AVX2's 16), and 12 in flight cover the FMA latency of two pipes
// (4-5 cycles each). Wider vectors than the registers (float16 on AVX2) would spill and
// halve the rate. FLOPs: global size x iters x CHAINS x VW x 2.
#ifndef VW
#define VW 16
#endif
#define CHAINS 12
#define FP_CAT_(a, b) a##b
#define FP_CAT(a, b) FP_CAT_(a, b)
#define VT FP_CAT(float, VW)

AXLE_KERNEL void fma_peak(AXLE_GLOBAL float* out, float a, float b, int iters) {
  const float seed = (float)AXLE_GLOBAL_ID(0) * 1.0e-7f;
  const VT va = AXLE_SPLAT(VT, a);
  const VT vb = AXLE_SPLAT(VT, b);
  VT x[CHAINS];
#pragma unroll
  for (int j = 0; j < CHAINS; ++j) x[j] = AXLE_SPLAT(VT, seed + 0.1f * (float)j);
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int j = 0; j < CHAINS; ++j) x[j] = fma(x[j], va, vb);
  }
#pragma unroll
  for (int j = 1; j < CHAINS; ++j) x[0] += x[j];
  float lanes[VW];
  FP_CAT(vstore, VW)(x[0], 0, lanes);
  float s = 0.0f;
  for (int l = 0; l < VW; ++l) s += lanes[l];
  out[AXLE_GLOBAL_ID(0)] = s;
}
