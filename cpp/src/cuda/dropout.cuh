// defines: dropout_forward_kernel (draws the mask from the pass's Philox counter, the same mask
// as the CPU backend), dropout_backward_kernel.
#pragma once

#include "core/counter.hpp"
#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void dropout_forward_kernel(const float* x, float* y, float* mask, int64_t n,
                                       uint64_t seed, Counter counter, uint64_t layer, float p) {
  const Philox rng(seed, Stream::Dropout, counter.value());
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float k = dropout_multiplier(rng, layer, i, p);
    mask[i] = k;
    y[i] = x[i] * k;
  }
}

__global__ void dropout_backward_kernel(const float* dy, const float* mask, float* dx, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = dy[i] * mask[i];
}

}  // namespace dcgan::cuda
