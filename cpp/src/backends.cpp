// The backends compiled into this library, registered once on first use of the registry.
#include "core/registry.hpp"
#include "cpu/cpu_backend.hpp"
#ifdef DCGAN_WITH_CUDA
#include "cuda/cuda_backend.hpp"
#endif

namespace dcgan {

void register_builtin_backends() {
  cpu::register_cpu_backend();
#ifdef DCGAN_WITH_CUDA
  cuda::register_cuda_backend();
#endif
}

}  // namespace dcgan
