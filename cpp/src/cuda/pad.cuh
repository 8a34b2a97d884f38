// defines: pad2d_kernel (planes into the middle of zero-bordered ones), crop2d_kernel (the middle
// back out), on core/elementwise.hpp's pad_source / crop_source: the explicit padding of
// convolutions whose padding cuDNN cannot express.
#pragma once

#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

// n = planes * Hp * Wp outputs.
__global__ void pad2d_kernel(const float* x, float* xp, int64_t n, PadGeometry g) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t s = pad_source(o, g);
    xp[o] = s >= 0 ? x[s] : 0.f;
  }
}

// n = planes * H * W outputs.
__global__ void crop2d_kernel(const float* xp, float* x, int64_t n, PadGeometry g) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[o] = xp[crop_source(o, g)];
}

}  // namespace dcgan::cuda
