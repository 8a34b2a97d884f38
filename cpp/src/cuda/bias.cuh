// defines: add_bias_kernel (y += b per channel), bias_grad_kernel (db = the channel sums of dy,
// one block per channel, summed in double in a fixed order: deterministic, no atomics), and
// count_non_finite_kernel (the divergence check between chunks of steps).
#pragma once

#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void add_bias_kernel(float* y, const float* b, int64_t n, int64_t C, int64_t S) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += b[(i / S) % C];
}

__global__ void bias_grad_kernel(const float* dy, float* db, int64_t N, int64_t C, int64_t S) {
  const int64_t c = blockIdx.x, m = N * S;
  double sum = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t n = j / S, s = j % S;
    sum += dy[(n * C + c) * S + s];
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) db[c] = static_cast<float>(sum);
}

// One atomic add per block of the block's count of non-finite values.
__global__ void count_non_finite_kernel(const float* p, int64_t n, unsigned long long* count) {
  __shared__ unsigned int block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  unsigned int mine = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    mine += isfinite(p[i]) ? 0u : 1u;
  if (mine) atomicAdd(&block_count, mine);
  __syncthreads();
  if (threadIdx.x == 0 && block_count)
    atomicAdd(count, static_cast<unsigned long long>(block_count));
}

}  // namespace dcgan::cuda
