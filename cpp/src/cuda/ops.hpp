// The CUDA backend's own kernels, as host functions that enqueue them on a stream (one .cuh per
// op family beside this file; elementwise.cu instantiates them). Pointers are device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/batch_source.hpp"
#include "core/counter.hpp"
#include "core/elementwise.hpp"

namespace dcgan::cuda {

void d_loss(cudaStream_t s, LossKind kind, bool real, const float* logits, int64_t n, float target,
            float* d_logits, float* loss_out, float* mean_out);
void g_loss(cudaStream_t s, LossKind kind, const float* logits, int64_t n, float* d_logits,
            float* loss_out, float* mean_out);
// Bias corrections from the step count t, read on the device.
void adam(cudaStream_t s, float* p, float* m, float* v, int64_t n, const float* g0, const float* g1,
          float lr, float beta1, float beta2, float eps, Counter t);
void fill_noise(cudaStream_t s, float* dst, int64_t n, NoiseKind kind, uint64_t seed,
                uint32_t stream, Counter counter, int64_t first = 0);
// `src`: count images in fmt's dtype and layout, back to back, in device memory.
void convert_batch(cudaStream_t s, float* dst, const void* src, int64_t count,
                   const ImageFormat& fmt);
void activation_forward(cudaStream_t s, LayerKind kind, const float* x, float* y, int64_t n,
                        float slope);
void activation_backward(cudaStream_t s, LayerKind kind, const float* y, const float* dy, float* dx,
                         int64_t n, float slope);
void dropout_forward(cudaStream_t s, const float* x, float* y, float* mask, int64_t n,
                     uint64_t seed, Counter counter, uint64_t layer, float p);
void dropout_backward(cudaStream_t s, const float* dy, const float* mask, float* dx, int64_t n);

// BatchNorm over (N, C, S). Training: statistics into mean/var/inv_std (C each) and the running
// statistics updated; inference: the running statistics.
void bn_forward_training(cudaStream_t s, const float* x, float* y, int64_t N, int64_t C, int64_t S,
                         float eps, float momentum, const float* gamma, const float* beta,
                         float* mean, float* var, float* inv_std, float* running_mean,
                         float* running_var);
void bn_forward_inference(cudaStream_t s, const float* x, float* y, int64_t N, int64_t C, int64_t S,
                          float eps, const float* gamma, const float* beta,
                          const float* running_mean, const float* running_var);
// Adds C channels' batch mean and variance into the precise-statistics sums (bn_accumulate).
void bn_accumulate_stats(cudaStream_t s, const float* mean, const float* var, int64_t C,
                         float* sum_mean, float* sum_var, float* sum_mean_sq);
// Softmax cross-entropy over n rows of k logits (softmax_xent_row): gradient, mean loss and the
// fraction classified correctly.
void softmax_xent(cudaStream_t s, const float* logits, const float* labels, int64_t n, int64_t k,
                  float* d_logits, float* loss_out, float* correct_out);
// `scratch`: 2 C floats. d_gamma / d_beta may be null (no weight gradients wanted).
void bn_backward(cudaStream_t s, const float* x, const float* dy, float* dx, int64_t N, int64_t C,
                 int64_t S, const float* gamma, const float* mean, const float* inv_std,
                 float* d_gamma, float* d_beta, float* scratch);

// *count = the number of NaN or infinite values among p[0, n) (zeroed first; atomics on an
// integer: exact whatever the order).
void count_non_finite(cudaStream_t s, const float* p, int64_t n, unsigned long long* count);

// Bias over (N, C, S): y[n, c, s] += b[c]; db[c] = sum over n, s of dy[n, c, s] (one block per
// channel, summed in double: deterministic).
void add_bias(cudaStream_t s, float* y, const float* b, int64_t N, int64_t C, int64_t S);
void bias_grad(cudaStream_t s, const float* dy, float* db, int64_t N, int64_t C, int64_t S);

// Explicit padding for convolutions whose padding is asymmetric (TensorFlow's "same" with an
// odd total, PyTorch's output_padding), which cuDNN's descriptors cannot express: pad copies
// (N, C, H, W) into the middle of (N, C, H + lo_h + hi_h, W + lo_w + hi_w) with a zero border;
// crop takes that middle back out.
void pad2d(cudaStream_t s, const float* x, float* xp, int64_t N, int64_t C, int64_t H, int64_t W,
           int64_t lo_h, int64_t hi_h, int64_t lo_w, int64_t hi_w);
void crop2d(cudaStream_t s, const float* xp, float* x, int64_t N, int64_t C, int64_t H, int64_t W,
            int64_t lo_h, int64_t hi_h, int64_t lo_w, int64_t hi_w);

}  // namespace dcgan::cuda
