// Explicit registration of every compiled-in backend (no static self-registration).
#include "backend/backend.hpp"

namespace axle::detail {

#ifdef AXLE_HAVE_CUDA_BACKEND
std::unique_ptr<Backend> make_cuda_backend();
#endif
#ifdef AXLE_HAVE_OPENCL_BACKEND
std::unique_ptr<Backend> make_opencl_backend();
#endif

void register_backends(BackendRegistry& registry) {
#ifdef AXLE_HAVE_CUDA_BACKEND
  registry.add("cuda", &make_cuda_backend);
#endif
#ifdef AXLE_HAVE_OPENCL_BACKEND
  registry.add("opencl", &make_opencl_backend);
#endif
  (void)registry;
}

}  // namespace axle::detail
