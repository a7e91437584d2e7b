/* Axle portable-kernel prelude: OpenCL C.
 * Prepended by the OpenCL backend to every Portable source. Each AXLE_ macro here has
 * a CUDA twin in axle_cuda.h; kernels that use only these (plus OpenCL C built-in
 * scalar math and the vector helpers listed in README "Kernel dialect") run on both.
 */
#define AXLE_OPENCL 1
#define AXLE_BACKEND_OPENCL 1

#define AXLE_KERNEL __kernel
#define AXLE_GLOBAL __global
#define AXLE_LOCAL __local
#define AXLE_CONSTANT __constant
#define AXLE_LOCAL_PTR(T) __local T*
#define AXLE_RESTRICT restrict
#define AXLE_FUNC inline __attribute__((always_inline))
#define AXLE_REQD_WG(x, y, z) __attribute__((reqd_work_group_size(x, y, z)))

#define AXLE_GLOBAL_ID(d) get_global_id(d)
#define AXLE_LOCAL_ID(d) get_local_id(d)
#define AXLE_GROUP_ID(d) get_group_id(d)
#define AXLE_LOCAL_SIZE(d) get_local_size(d)
#define AXLE_GLOBAL_SIZE(d) get_global_size(d)
#define AXLE_NUM_GROUPS(d) get_num_groups(d)

#define AXLE_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define AXLE_BARRIER_GLOBAL() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)

/* Vectors: OpenCL's own floatN with operators; these helpers are the portable spelling. */
#define AXLE_SPLAT(type, x) ((type)(x))
#define AXLE_VLOAD(n, i, p) vload##n(i, p)
#define AXLE_VSTORE(n, v, i, p) vstore##n(v, i, p)

/* half storage (arithmetic in float; no cl_khr_fp16 needed). */
#define AXLE_HALF half
#define AXLE_LOAD_HALF(i, p) vload_half(i, p)
#define AXLE_STORE_HALF(v, i, p) vstore_half_rte(v, i, p)

/* bfloat16 storage as ushort. */
AXLE_FUNC float axle_bf16_to_float(ushort b) { return as_float(((uint)b) << 16); }
AXLE_FUNC ushort axle_float_to_bf16(float f) {
  uint u = as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (ushort)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (ushort)(u >> 16);
}
