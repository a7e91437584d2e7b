// c[i] = a[i] + b[i] for i < n. Axle portable dialect: runs on OpenCL and CUDA.
AXLE_KERNEL void vadd(AXLE_GLOBAL const float* AXLE_RESTRICT a, AXLE_GLOBAL const float* AXLE_RESTRICT b,
                      AXLE_GLOBAL float* AXLE_RESTRICT c, uint n) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i < n) c[i] = a[i] + b[i];
}
