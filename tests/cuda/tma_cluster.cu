// axle-arch: sm_90
// Test kernels for tensor maps (TMA) and thread-block clusters, run by
// tests/cuda_backend_test.cpp on devices of compute capability 9.0 and newer, and
// compiled for sm_90 by tests/nvrtc_compile_test.cpp on any machine.
//
// tma_tile_copy: each block copies one box of a 2-D f32 tensor into shared memory with
//   cp.async.bulk.tensor (completion counted on an mbarrier), then writes the box's
//   in-bounds elements to `out` (dense, width x height) and counts the box's elements
//   outside the tensor that are not zero (TMA must fill them with zeros). With
//   `swizzle128` the box was stored with the 128-byte swizzle: 16-byte chunk c of row r
//   lands at chunk c ^ (r % 8); the kernel undoes it.
// cluster_exchange / cluster_exchange_2x1: every block publishes a value in its shared
//   memory, the cluster synchronises, and thread 0 reads the value of the block of the
//   next rank in its cluster through distributed shared memory (mapa). Writes that value
//   and its own rank. cluster_exchange takes its cluster shape at launch; the _2x1 one
//   is compiled with __cluster_dims__(2, 1, 1).

struct __align__(64) TensorMapParam {
  unsigned long long opaque[16];
};

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

extern "C" __global__ void tma_tile_copy(const __grid_constant__ TensorMapParam map, float* out, unsigned width,
                                         unsigned height, unsigned box_w, unsigned box_h, int swizzle128,
                                         unsigned* oob_nonzero) {
  extern __shared__ unsigned char smem_raw[];
  // The 128-byte swizzle pattern repeats every 1024 bytes of shared address: align to it.
  const unsigned raw = smem_addr(smem_raw);
  const unsigned pad = (1024u - (raw & 1023u)) & 1023u;
  float* tile = reinterpret_cast<float*>(smem_raw + pad);
  unsigned long long* bar = reinterpret_cast<unsigned long long*>(smem_raw + pad + box_w * box_h * 4u);
  const unsigned tile_addr = raw + pad;
  const unsigned bar_addr = smem_addr(bar);
  const int x0 = static_cast<int>(blockIdx.x * box_w), y0 = static_cast<int>(blockIdx.y * box_h);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar_addr) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar_addr), "r"(box_w * box_h * 4u)
                 : "memory");
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
            tile_addr),
        "l"(reinterpret_cast<unsigned long long>(&map)), "r"(x0), "r"(y0), "r"(bar_addr)
        : "memory");
  }
  unsigned done = 0;
  while (!done) {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar_addr)
        : "memory");
  }
  for (unsigned i = threadIdx.x; i < box_w * box_h; i += blockDim.x) {
    const unsigned tx = i % box_w, ty = i / box_w;
    unsigned phys = i;
    if (swizzle128) {
      const unsigned chunk = tx / 4u, within = tx % 4u;
      phys = ty * box_w + ((chunk ^ (ty & 7u)) * 4u) + within;
    }
    const float v = tile[phys];
    const unsigned gx = static_cast<unsigned>(x0) + tx, gy = static_cast<unsigned>(y0) + ty;
    if (gx < width && gy < height)
      out[static_cast<unsigned long long>(gy) * width + gx] = v;
    else if (v != 0.0f)
      atomicAdd(oob_nonzero, 1u);
  }
}

__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

__device__ __forceinline__ void exchange(int* value_out, unsigned* rank_out) {
  __shared__ int mine;
  if (threadIdx.x == 0) mine = static_cast<int>(blockIdx.x * 1000u + blockIdx.y);
  cluster_sync_all();
  const unsigned linear = blockIdx.y * gridDim.x + blockIdx.x;
  if (threadIdx.x == 0) {
    unsigned rank, n, remote;
    int v;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
    const unsigned peer = (rank + 1u) % n;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(&mine)), "r"(peer));
    asm volatile("ld.shared::cluster.u32 %0, [%1];" : "=r"(v) : "r"(remote) : "memory");
    value_out[linear] = v;
    rank_out[linear] = rank;
  }
  // Keep this block's shared memory alive until every peer has read it.
  cluster_sync_all();
}

extern "C" __global__ void cluster_exchange(int* value_out, unsigned* rank_out) { exchange(value_out, rank_out); }

extern "C" __global__ void __cluster_dims__(2, 1, 1) cluster_exchange_2x1(int* value_out, unsigned* rank_out) {
  exchange(value_out, rank_out);
}
