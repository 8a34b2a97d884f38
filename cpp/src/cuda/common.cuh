// defines: CUDA_CHECK (a CUDA error becomes a BackendError naming the call), grid sizing, and the
// block-wide double sum the reductions use.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/spec.hpp"

namespace dcgan::cuda {

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw BackendError(std::string("CUDA error: ") + cudaGetErrorString(e) + " in " + what + " (" +
                       file + ":" + std::to_string(line) + ")");
}
#define CUDA_CHECK(call) ::dcgan::cuda::check((call), #call, __FILE__, __LINE__)

constexpr int kBlock = 256;

inline int grid_for(int64_t n, int64_t max_blocks = 65535) {
  const int64_t b = (n + kBlock - 1) / kBlock;
  return static_cast<int>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

// Sum of one double per thread over a block of kBlock threads; the result is valid in thread 0.
__device__ inline double block_sum(double v) {
  __shared__ double s[kBlock];
  s[threadIdx.x] = v;
  __syncthreads();
  for (int w = kBlock / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  const double r = s[0];
  __syncthreads();
  return r;
}

}  // namespace dcgan::cuda
