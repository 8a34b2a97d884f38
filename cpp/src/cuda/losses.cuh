// defines: d_loss_kernel, g_loss_kernel, softmax_xent_kernel. One block: each thread takes logits i, i + kBlock, ...,
// computes the loss term of core/elementwise.hpp in double, writes its gradient scaled by 1/n,
// and the block's sums give the mean loss and the mean D output, written straight into the
// step's statistics slots in device memory (nothing returns to the host).
#pragma once

#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void d_loss_kernel(LossKind kind, bool real, const float* logits, int n, float target,
                              float* d_logits, float* loss_out, float* mean_out) {
  const double inv_n = 1.0 / n;
  double loss = 0, out = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const LossTerm t = d_loss_term(kind, real, logits[i], target);
    loss += t.loss, out += t.out;
    d_logits[i] = static_cast<float>(t.grad * inv_n);
  }
  loss = block_sum(loss);
  out = block_sum(out);
  if (threadIdx.x == 0)
    *loss_out = static_cast<float>(loss * inv_n), *mean_out = static_cast<float>(out * inv_n);
}

__global__ void g_loss_kernel(LossKind kind, const float* logits, int n, float* d_logits,
                              float* loss_out, float* mean_out) {
  const double inv_n = 1.0 / n;
  double loss = 0, out = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const LossTerm t = g_loss_term(kind, logits[i]);
    loss += t.loss, out += t.out;
    d_logits[i] = static_cast<float>(t.grad * inv_n);
  }
  loss = block_sum(loss);
  out = block_sum(out);
  if (threadIdx.x == 0)
    *loss_out = static_cast<float>(loss * inv_n), *mean_out = static_cast<float>(out * inv_n);
}

// One block over n rows of k logits: each thread takes rows i, i + kBlock, ...; the block's sums
// give the mean loss and the fraction of rows classified correctly.
__global__ void softmax_xent_kernel(const float* logits, const float* labels, int n, int k,
                                    float* d_logits, float* loss_out, float* correct_out) {
  const double inv_n = 1.0 / n;
  double loss = 0, correct = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const XentTerm t = softmax_xent_row(logits + static_cast<int64_t>(i) * k, k,
                                        static_cast<int64_t>(labels[i]),
                                        d_logits + static_cast<int64_t>(i) * k, inv_n);
    loss += t.loss, correct += t.correct ? 1.0 : 0.0;
  }
  loss = block_sum(loss);
  correct = block_sum(correct);
  if (threadIdx.x == 0)
    *loss_out = static_cast<float>(loss * inv_n), *correct_out = static_cast<float>(correct * inv_n);
}

}  // namespace dcgan::cuda
