// defines: activation_forward_kernel, activation_backward_kernel (ReLU, LeakyReLU, tanh,
// sigmoid; the gradient from the output, so a layer may run in place).
#pragma once

#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void activation_forward_kernel(LayerKind kind, const float* x, float* y, int64_t n,
                                          float slope) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = activation(kind, x[i], slope);
}

__global__ void activation_backward_kernel(LayerKind kind, const float* y, const float* dy,
                                           float* dx, int64_t n, float slope) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = activation_grad_from_output(kind, y[i], dy[i], slope);
}

}  // namespace dcgan::cuda
