// fma_peak: the device's float FMA throughput. Each work-item runs 8 independent
// chains of float16 FMAs (128 lanes in flight: enough to hide the FMA latency of a
// CPU core's vector units or of a GPU's pipes), then folds them into one store so
// that nothing is dead code. FLOPs: global size x iters x 8 x 16 x 2.
AXLE_KERNEL void fma_peak(AXLE_GLOBAL float* out, float a, float b, int iters) {
  const float seed = (float)AXLE_GLOBAL_ID(0) * 1.0e-7f;
  const float16 va = AXLE_SPLAT(float16, a);
  const float16 vb = AXLE_SPLAT(float16, b);
  float16 x0 = AXLE_SPLAT(float16, seed);
  float16 x1 = AXLE_SPLAT(float16, seed + 0.1f);
  float16 x2 = AXLE_SPLAT(float16, seed + 0.2f);
  float16 x3 = AXLE_SPLAT(float16, seed + 0.3f);
  float16 x4 = AXLE_SPLAT(float16, seed + 0.4f);
  float16 x5 = AXLE_SPLAT(float16, seed + 0.5f);
  float16 x6 = AXLE_SPLAT(float16, seed + 0.6f);
  float16 x7 = AXLE_SPLAT(float16, seed + 0.7f);
  for (int i = 0; i < iters; ++i) {
    x0 = fma(x0, va, vb);
    x1 = fma(x1, va, vb);
    x2 = fma(x2, va, vb);
    x3 = fma(x3, va, vb);
    x4 = fma(x4, va, vb);
    x5 = fma(x5, va, vb);
    x6 = fma(x6, va, vb);
    x7 = fma(x7, va, vb);
  }
  const float16 s = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
  out[AXLE_GLOBAL_ID(0)] = ((s.s0 + s.s1) + (s.s2 + s.s3)) + ((s.s4 + s.s5) + (s.s6 + s.s7)) +
                           ((s.s8 + s.s9) + (s.sa + s.sb)) + ((s.sc + s.sd) + (s.se + s.sf));
}
