// defines: bn_stats_kernel (one block per channel: batch mean, biased variance, 1/sqrt(var+eps),
// running statistics), bn_forward_kernel, bn_infer_kernel (running statistics),
// bn_backward_reduce_kernel (d gamma, d beta and the means the input gradient needs),
// bn_backward_kernel, bn_accumulate_kernel (precise statistics). Layout (N, C, S) with S = H*W (1 for features); sums in double.
#pragma once

#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void bn_stats_kernel(const float* x, int64_t N, int64_t C, int64_t S, float eps,
                                float momentum, float* mean, float* var, float* inv_std,
                                float* running_mean, float* running_var) {
  const int64_t c = blockIdx.x, m = N * S;
  double s = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) s += x[(j / S) * C * S + c * S + j % S];
  const double mu = block_sum(s) / m;
  double q = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const double d = x[(j / S) * C * S + c * S + j % S] - mu;
    q += d * d;
  }
  const double va = block_sum(q) / m;
  if (threadIdx.x == 0) {
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(va);
    inv_std[c] = static_cast<float>(1.0 / sqrt(va + eps));
    bn_running_update(running_mean[c], running_var[c], mean[c], var[c], momentum, m);
  }
}

__global__ void bn_forward_kernel(const float* x, float* y, int64_t n, int64_t C, int64_t S,
                                  const float* mean, const float* inv_std, const float* gamma,
                                  const float* beta) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / S) % C;
    y[i] = bn_normalize(x[i], mean[c], inv_std[c], gamma[c], beta[c]);
  }
}

__global__ void bn_infer_kernel(const float* x, float* y, int64_t n, int64_t C, int64_t S,
                                const float* running_mean, const float* running_var, float eps,
                                const float* gamma, const float* beta) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / S) % C;
    // 1 / sqrtf, correctly rounded, as on the CPU backend (rsqrtf is approximate).
    const float inv_std = 1.f / sqrtf(running_var[c] + eps);
    y[i] = bn_normalize(x[i], running_mean[c], inv_std, gamma[c], beta[c]);
  }
}

// Per channel: d beta = sum dy, d gamma = sum dy * xhat (into the gradient slot, or nowhere when
// null), and their means over the channel's m elements for bn_backward_kernel.
__global__ void bn_backward_reduce_kernel(const float* x, const float* dy, int64_t N, int64_t C,
                                          int64_t S, const float* mean, const float* inv_std,
                                          float* d_gamma, float* d_beta, float* mean_dy,
                                          float* mean_dy_xhat) {
  const int64_t c = blockIdx.x, m = N * S;
  double sd = 0, sdx = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t i = (j / S) * C * S + c * S + j % S;
    const double xhat = (static_cast<double>(x[i]) - mean[c]) * inv_std[c];
    sd += dy[i];
    sdx += dy[i] * xhat;
  }
  sd = block_sum(sd);
  sdx = block_sum(sdx);
  if (threadIdx.x == 0) {
    if (d_gamma) d_gamma[c] = static_cast<float>(sdx);
    if (d_beta) d_beta[c] = static_cast<float>(sd);
    mean_dy[c] = static_cast<float>(sd / m);
    mean_dy_xhat[c] = static_cast<float>(sdx / m);
  }
}

__global__ void bn_backward_kernel(const float* x, const float* dy, float* dx, int64_t n, int64_t C,
                                   int64_t S, const float* mean, const float* inv_std,
                                   const float* gamma, const float* mean_dy,
                                   const float* mean_dy_xhat) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / S) % C;
    const float xhat = (x[i] - mean[c]) * inv_std[c];
    dx[i] = bn_input_grad(dy[i], xhat, gamma[c], inv_std[c], mean_dy[c], mean_dy_xhat[c]);
  }
}

// One thread per channel: the batch's statistics into the precise-statistics sums.
__global__ void bn_accumulate_kernel(const float* mean, const float* var, int64_t C,
                                     float* sum_mean, float* sum_var, float* sum_mean_sq) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c < C) bn_accumulate(sum_mean[c], sum_var[c], sum_mean_sq[c], mean[c], var[c]);
}

}  // namespace dcgan::cuda
