// defines: noise_kernel, the latent batch from the same Philox stream and counter as the CPU
// backend (normal by Box-Muller, or uniform on (-1, 1)).
#pragma once

#include "core/counter.hpp"
#include "core/rng.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void noise_kernel(float* dst, int64_t n, bool normal, uint64_t seed, uint32_t stream,
                             Counter counter, int64_t first) {
  const Philox rng(seed, static_cast<Stream>(stream), counter.value());
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t k = static_cast<uint64_t>(first + i);
    dst[i] = normal ? rng.normal(k) : 2.f * rng.uniform(k) - 1.f;
  }
}

}  // namespace dcgan::cuda
