// Kernels of the soak run (bench/soak.cpp). SOAK_VARIANT is defined per build (a small
// set of values: the soak builds the same few programs over and over).
#ifndef SOAK_VARIANT
#define SOAK_VARIANT 0
#endif

// y[i] = a * x[i] + b * y[i] + SOAK_VARIANT for i < n.
AXLE_KERNEL void soak_axpby(AXLE_GLOBAL const float* x, AXLE_GLOBAL float* y, float a, float b, int n) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i < n) y[i] = a * x[i] + b * y[i] + (float)SOAK_VARIANT;
}

// out[i] = in[i] * 3 + 1 for i < n (integers: exact).
AXLE_KERNEL void soak_scale(AXLE_GLOBAL const int* in, AXLE_GLOBAL int* out, int n) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i < n) out[i] = in[i] * 3 + 1;
}
