/* Axle portable-kernel prelude: CUDA (NVRTC).
 * Prepended by the CUDA backend to every Portable source so that the OpenCL C subset
 * of the Axle dialect compiles as CUDA C++. Twin of axle_opencl.h: every AXLE_ macro
 * there has a definition here, and the OpenCL C built-ins portable kernels use (ids
 * aside) are provided below as device functions.
 *
 * Dialect rules that the CUDA side imposes:
 *  - AXLE_LOCAL declares local arrays (inside kernels); every *pointer* to local memory
 *    (kernel parameter, helper-function parameter, variable) is AXLE_LOCAL_PTR(T).
 *  - float2/float4 components are .x .y .z .w; float8/float16 components are .s0 .. .sf.
 *  - Vectors are made with AXLE_SPLAT / AXLE_VLOAD, not OpenCL's (float4)(a, b, c, d).
 *  - Scalar OpenCL built-ins mapped here: as_float/as_uint/as_int, mad, clamp, mul24,
 *    mad24, native_* math, and the 32-bit atomic_* functions; CUDA's own float math
 *    overloads (sqrt, exp, fmax, rsqrt, ...) cover the rest.
 * Compiled with -default-device, so unannotated functions and program-scope
 * AXLE_CONSTANT data are device entities.
 */
#ifndef AXLE_CUDA_PRELUDE_H
#define AXLE_CUDA_PRELUDE_H
#define AXLE_CUDA 1
#define AXLE_BACKEND_CUDA 1

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long long ulong;
typedef unsigned long long axle_size_t;

extern __shared__ __align__(16) unsigned char axle_dynamic_local[];

/* A pointer to local (shared) memory. As a kernel parameter the host passes a byte
 * offset into dynamic shared memory (8 bytes); elsewhere it is made from any pointer into
 * shared memory (a static AXLE_LOCAL array, another local pointer plus an offset). It
 * behaves as a T*: indexing, arithmetic, comparison and conversion to T*. */
template <typename T>
struct axle_local_ptr {
  long long off;
  axle_local_ptr() = default;
  __device__ __forceinline__ axle_local_ptr(T* p)
      : off(reinterpret_cast<const unsigned char*>(p) - axle_dynamic_local) {}
  __device__ __forceinline__ T* get() const { return reinterpret_cast<T*>(axle_dynamic_local + off); }
  __device__ __forceinline__ operator T*() const { return get(); }
  template <typename I>
  __device__ __forceinline__ T& operator[](I i) const { return get()[i]; }
  __device__ __forceinline__ T& operator*() const { return *get(); }
  __device__ __forceinline__ T* operator->() const { return get(); }
};

#define AXLE_KERNEL extern "C" __global__
#define AXLE_GLOBAL
#define AXLE_LOCAL __shared__
#define AXLE_CONSTANT const
#define AXLE_LOCAL_PTR(T) axle_local_ptr<T>
#define AXLE_RESTRICT __restrict__
#define AXLE_FUNC __device__ __forceinline__
#define AXLE_REQD_WG(x, y, z) __launch_bounds__((x) * (y) * (z))

__device__ __forceinline__ axle_size_t axle_dim3_get(const dim3& v, int d) { return d == 0 ? v.x : (d == 1 ? v.y : v.z); }
__device__ __forceinline__ axle_size_t axle_dim3_get(const uint3& v, int d) { return d == 0 ? v.x : (d == 1 ? v.y : v.z); }

#define AXLE_LOCAL_ID(d) axle_dim3_get(threadIdx, (d))
#define AXLE_GROUP_ID(d) axle_dim3_get(blockIdx, (d))
#define AXLE_LOCAL_SIZE(d) axle_dim3_get(blockDim, (d))
#define AXLE_NUM_GROUPS(d) axle_dim3_get(gridDim, (d))
#define AXLE_GLOBAL_ID(d) (AXLE_GROUP_ID(d) * AXLE_LOCAL_SIZE(d) + AXLE_LOCAL_ID(d))
#define AXLE_GLOBAL_SIZE(d) (AXLE_NUM_GROUPS(d) * AXLE_LOCAL_SIZE(d))

#define AXLE_BARRIER() __syncthreads()
#define AXLE_BARRIER_GLOBAL() (__threadfence(), __syncthreads())

/* OpenCL C built-ins used by portable kernels. */
__device__ __forceinline__ float as_float(uint u) { return __uint_as_float(u); }
__device__ __forceinline__ uint as_uint(float f) { return __float_as_uint(f); }
__device__ __forceinline__ float mad(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ float clamp(float x, float lo, float hi) { return fminf(fmaxf(x, lo), hi); }
__device__ __forceinline__ int as_int(float f) { return __float_as_int(f); }
__device__ __forceinline__ int clamp(int x, int lo, int hi) { return min(max(x, lo), hi); }
__device__ __forceinline__ uint clamp(uint x, uint lo, uint hi) { return min(max(x, lo), hi); }
__device__ __forceinline__ int mul24(int a, int b) { return __mul24(a, b); }
__device__ __forceinline__ uint mul24(uint a, uint b) { return __umul24(a, b); }
__device__ __forceinline__ int mad24(int a, int b, int c) { return __mul24(a, b) + c; }
__device__ __forceinline__ uint mad24(uint a, uint b, uint c) { return __umul24(a, b) + c; }
__device__ __forceinline__ float native_exp(float x) { return __expf(x); }
__device__ __forceinline__ float native_exp2(float x) { return exp2f(x); }
__device__ __forceinline__ float native_exp10(float x) { return __exp10f(x); }
__device__ __forceinline__ float native_log(float x) { return __logf(x); }
__device__ __forceinline__ float native_log2(float x) { return __log2f(x); }
__device__ __forceinline__ float native_log10(float x) { return __log10f(x); }
__device__ __forceinline__ float native_sin(float x) { return __sinf(x); }
__device__ __forceinline__ float native_cos(float x) { return __cosf(x); }
__device__ __forceinline__ float native_tan(float x) { return __tanf(x); }
__device__ __forceinline__ float native_powr(float x, float y) { return __powf(x, y); }
__device__ __forceinline__ float native_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ float native_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ float native_recip(float x) { return __frcp_rn(x); }
__device__ __forceinline__ float native_divide(float a, float b) { return __fdividef(a, b); }

/* OpenCL 1.2 32-bit atomics (global or local pointers); each returns the old value. */
#define AXLE_CUDA_ATOMIC2(NAME, FN)                                                              \
  __device__ __forceinline__ int NAME(volatile int* p, int v) { return FN(const_cast<int*>(p), v); } \
  __device__ __forceinline__ uint NAME(volatile uint* p, uint v) { return FN(const_cast<uint*>(p), v); }
AXLE_CUDA_ATOMIC2(atomic_add, atomicAdd)
AXLE_CUDA_ATOMIC2(atomic_sub, atomicSub)
AXLE_CUDA_ATOMIC2(atomic_xchg, atomicExch)
AXLE_CUDA_ATOMIC2(atomic_min, atomicMin)
AXLE_CUDA_ATOMIC2(atomic_max, atomicMax)
AXLE_CUDA_ATOMIC2(atomic_and, atomicAnd)
AXLE_CUDA_ATOMIC2(atomic_or, atomicOr)
AXLE_CUDA_ATOMIC2(atomic_xor, atomicXor)
#undef AXLE_CUDA_ATOMIC2
__device__ __forceinline__ float atomic_xchg(volatile float* p, float v) { return atomicExch(const_cast<float*>(p), v); }
__device__ __forceinline__ int atomic_inc(volatile int* p) { return atomicAdd(const_cast<int*>(p), 1); }
__device__ __forceinline__ uint atomic_inc(volatile uint* p) { return atomicAdd(const_cast<uint*>(p), 1u); }
__device__ __forceinline__ int atomic_dec(volatile int* p) { return atomicSub(const_cast<int*>(p), 1); }
__device__ __forceinline__ uint atomic_dec(volatile uint* p) { return atomicSub(const_cast<uint*>(p), 1u); }
__device__ __forceinline__ int atomic_cmpxchg(volatile int* p, int cmp, int v) {
  return atomicCAS(const_cast<int*>(p), cmp, v);
}
__device__ __forceinline__ uint atomic_cmpxchg(volatile uint* p, uint cmp, uint v) {
  return atomicCAS(const_cast<uint*>(p), cmp, v);
}

/* Vectors: float2/float4 are CUDA's own (.x .y .z .w); float8/float16 are defined here
 * with components .s0 .. .sf. Element-wise + - * / and fma on all of them. */
struct __align__(32) float8 { float s0, s1, s2, s3, s4, s5, s6, s7; };
struct __align__(64) float16 { float s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, sa, sb, sc, sd, se, sf; };

template <typename V> struct axle_vec_traits;
template <> struct axle_vec_traits<float2> { static constexpr int n = 2; };
template <> struct axle_vec_traits<float4> { static constexpr int n = 4; };
template <> struct axle_vec_traits<float8> { static constexpr int n = 8; };
template <> struct axle_vec_traits<float16> { static constexpr int n = 16; };

template <typename V> __device__ __forceinline__ float* axle_lanes(V& v) { return reinterpret_cast<float*>(&v); }
template <typename V> __device__ __forceinline__ const float* axle_lanes(const V& v) { return reinterpret_cast<const float*>(&v); }

#define AXLE_CUDA_VEC_BINOP(OP)                                                                     \
  template <typename V, int N = axle_vec_traits<V>::n>                                              \
  __device__ __forceinline__ V operator OP(const V& a, const V& b) {                                \
    V r; _Pragma("unroll") for (int i = 0; i < N; ++i) axle_lanes(r)[i] = axle_lanes(a)[i] OP axle_lanes(b)[i]; \
    return r;                                                                                       \
  }                                                                                                 \
  template <typename V, int N = axle_vec_traits<V>::n>                                              \
  __device__ __forceinline__ V operator OP(const V& a, float b) {                                   \
    V r; _Pragma("unroll") for (int i = 0; i < N; ++i) axle_lanes(r)[i] = axle_lanes(a)[i] OP b;    \
    return r;                                                                                       \
  }                                                                                                 \
  template <typename V, int N = axle_vec_traits<V>::n>                                              \
  __device__ __forceinline__ V operator OP(float a, const V& b) {                                   \
    V r; _Pragma("unroll") for (int i = 0; i < N; ++i) axle_lanes(r)[i] = a OP axle_lanes(b)[i];    \
    return r;                                                                                       \
  }                                                                                                 \
  template <typename V, int N = axle_vec_traits<V>::n>                                              \
  __device__ __forceinline__ V& operator OP##=(V& a, const V& b) { a = a OP b; return a; }         \
  template <typename V, int N = axle_vec_traits<V>::n>                                              \
  __device__ __forceinline__ V& operator OP##=(V& a, float b) { a = a OP b; return a; }
AXLE_CUDA_VEC_BINOP(+)
AXLE_CUDA_VEC_BINOP(-)
AXLE_CUDA_VEC_BINOP(*)
AXLE_CUDA_VEC_BINOP(/)
#undef AXLE_CUDA_VEC_BINOP

template <typename V, int N = axle_vec_traits<V>::n>
__device__ __forceinline__ V operator-(const V& a) {
  V r;
#pragma unroll
  for (int i = 0; i < N; ++i) axle_lanes(r)[i] = -axle_lanes(a)[i];
  return r;
}
template <typename V, int N = axle_vec_traits<V>::n>
__device__ __forceinline__ V fma(const V& a, const V& b, const V& c) {
  V r;
#pragma unroll
  for (int i = 0; i < N; ++i) axle_lanes(r)[i] = fmaf(axle_lanes(a)[i], axle_lanes(b)[i], axle_lanes(c)[i]);
  return r;
}
template <typename V, int N = axle_vec_traits<V>::n>
__device__ __forceinline__ V axle_splat(float x) {
  V r;
#pragma unroll
  for (int i = 0; i < N; ++i) axle_lanes(r)[i] = x;
  return r;
}
template <typename V, int N = axle_vec_traits<V>::n>
__device__ __forceinline__ V axle_vload(axle_size_t i, const float* p) {
  V r;
#pragma unroll
  for (int k = 0; k < N; ++k) axle_lanes(r)[k] = p[i * N + k];
  return r;
}
template <typename V, int N = axle_vec_traits<V>::n>
__device__ __forceinline__ void axle_vstore(const V& v, axle_size_t i, float* p) {
#pragma unroll
  for (int k = 0; k < N; ++k) p[i * N + k] = axle_lanes(v)[k];
}
__device__ __forceinline__ float2 vload2(axle_size_t i, const float* p) { return axle_vload<float2>(i, p); }
__device__ __forceinline__ float4 vload4(axle_size_t i, const float* p) { return axle_vload<float4>(i, p); }
__device__ __forceinline__ float8 vload8(axle_size_t i, const float* p) { return axle_vload<float8>(i, p); }
__device__ __forceinline__ float16 vload16(axle_size_t i, const float* p) { return axle_vload<float16>(i, p); }
__device__ __forceinline__ void vstore2(const float2& v, axle_size_t i, float* p) { axle_vstore(v, i, p); }
__device__ __forceinline__ void vstore4(const float4& v, axle_size_t i, float* p) { axle_vstore(v, i, p); }
__device__ __forceinline__ void vstore8(const float8& v, axle_size_t i, float* p) { axle_vstore(v, i, p); }
__device__ __forceinline__ void vstore16(const float16& v, axle_size_t i, float* p) { axle_vstore(v, i, p); }

#define AXLE_SPLAT(type, x) axle_splat<type>(x)
#define AXLE_VLOAD(n, i, p) vload##n(i, p)
#define AXLE_VSTORE(n, v, i, p) vstore##n(v, i, p)

/* half storage: raw 16-bit values, converted with the hardware instructions. */
typedef unsigned short axle_half_bits;
#define AXLE_HALF axle_half_bits
__device__ __forceinline__ float axle_load_half(axle_size_t i, const axle_half_bits* p) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
  return f;
}
__device__ __forceinline__ void axle_store_half(float v, axle_size_t i, axle_half_bits* p) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  p[i] = h;
}
#define AXLE_LOAD_HALF(i, p) axle_load_half(i, p)
#define AXLE_STORE_HALF(v, i, p) axle_store_half(v, i, p)

__device__ __forceinline__ float axle_bf16_to_float(ushort b) { return __uint_as_float(((uint)b) << 16); }
__device__ __forceinline__ ushort axle_float_to_bf16(float f) {
  uint u = __float_as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (ushort)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (ushort)(u >> 16);
}

#endif /* AXLE_CUDA_PRELUDE_H */
