// y[i] = a * x[i] + y[i], with a work-group partial sum of y into sums[group]
// through local memory. Run it with: custom_kernel samples/kernels/saxpy.cl
AXLE_KERNEL void saxpy(float a, AXLE_GLOBAL const float* x, AXLE_GLOBAL float* y, uint n,
                       AXLE_GLOBAL float* sums, AXLE_LOCAL_PTR(float) scratch) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  const uint l = (uint)AXLE_LOCAL_ID(0);
  float v = 0.0f;
  if (i < n) {
    v = fma(a, x[i], y[i]);
    y[i] = v;
  }
  scratch[l] = v;
  AXLE_BARRIER();
  for (uint s = (uint)AXLE_LOCAL_SIZE(0) / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] += scratch[l + s];
    AXLE_BARRIER();
  }
  if (l == 0) sums[AXLE_GROUP_ID(0)] = scratch[0];
}
