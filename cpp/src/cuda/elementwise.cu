// The CUDA backend's own kernels, enqueued on the caller's stream; see ops.hpp. Compiled with
// --fmad=false so that the shared arithmetic of core/elementwise.hpp rounds as on the host.
#include "cuda/activations.cuh"
#include "cuda/adam.cuh"
#include "cuda/batch.cuh"
#include "cuda/batchnorm.cuh"
#include "cuda/bias.cuh"
#include "cuda/dropout.cuh"
#include "cuda/losses.cuh"
#include "cuda/noise.cuh"
#include "cuda/ops.hpp"
#include "cuda/pad.cuh"

namespace dcgan::cuda {

namespace {
void launched() { CUDA_CHECK(cudaGetLastError()); }
}  // namespace

void d_loss(cudaStream_t s, LossKind kind, bool real, const float* logits, int64_t n, float target,
            float* d_logits, float* loss_out, float* mean_out) {
  d_loss_kernel<<<1, kBlock, 0, s>>>(kind, real, logits, static_cast<int>(n), target, d_logits,
                                     loss_out, mean_out);
  launched();
}

void g_loss(cudaStream_t s, LossKind kind, const float* logits, int64_t n, float* d_logits,
            float* loss_out, float* mean_out) {
  g_loss_kernel<<<1, kBlock, 0, s>>>(kind, logits, static_cast<int>(n), d_logits, loss_out,
                                     mean_out);
  launched();
}

void adam(cudaStream_t s, float* p, float* m, float* v, int64_t n, const float* g0, const float* g1,
          float lr, float beta1, float beta2, float eps, Counter t) {
  if (n <= 0) return;
  adam_kernel<<<grid_for(n), kBlock, 0, s>>>(p, m, v, n, g0, g1, lr, beta1, beta2, eps, t);
  launched();
}

void fill_noise(cudaStream_t s, float* dst, int64_t n, NoiseKind kind, uint64_t seed,
                uint32_t stream, Counter counter, int64_t first) {
  if (n <= 0) return;
  noise_kernel<<<grid_for(n), kBlock, 0, s>>>(dst, n, kind == NoiseKind::Normal, seed, stream,
                                              counter, first);
  launched();
}

void convert_batch(cudaStream_t s, float* dst, const void* src, int64_t count,
                   const ImageFormat& fmt) {
  const int64_t n = count * fmt.numel();
  if (fmt.dtype == DType::U8)
    convert_batch_kernel<<<grid_for(n), kBlock, 0, s>>>(dst, static_cast<const uint8_t*>(src),
                                                        count, fmt);
  else
    convert_batch_kernel<<<grid_for(n), kBlock, 0, s>>>(dst, static_cast<const float*>(src), count,
                                                        fmt);
  launched();
}

void activation_forward(cudaStream_t s, LayerKind kind, const float* x, float* y, int64_t n,
                        float slope) {
  activation_forward_kernel<<<grid_for(n), kBlock, 0, s>>>(kind, x, y, n, slope);
  launched();
}

void activation_backward(cudaStream_t s, LayerKind kind, const float* y, const float* dy, float* dx,
                         int64_t n, float slope) {
  activation_backward_kernel<<<grid_for(n), kBlock, 0, s>>>(kind, y, dy, dx, n, slope);
  launched();
}

void dropout_forward(cudaStream_t s, const float* x, float* y, float* mask, int64_t n,
                     uint64_t seed, Counter counter, uint64_t layer, float p) {
  dropout_forward_kernel<<<grid_for(n), kBlock, 0, s>>>(x, y, mask, n, seed, counter, layer, p);
  launched();
}

void dropout_backward(cudaStream_t s, const float* dy, const float* mask, float* dx, int64_t n) {
  dropout_backward_kernel<<<grid_for(n), kBlock, 0, s>>>(dy, mask, dx, n);
  launched();
}

void bn_forward_training(cudaStream_t s, const float* x, float* y, int64_t N, int64_t C, int64_t S,
                         float eps, float momentum, const float* gamma, const float* beta,
                         float* mean, float* var, float* inv_std, float* running_mean,
                         float* running_var) {
  bn_stats_kernel<<<static_cast<unsigned>(C), kBlock, 0, s>>>(x, N, C, S, eps, momentum, mean, var,
                                                              inv_std, running_mean, running_var);
  launched();
  const int64_t n = N * C * S;
  bn_forward_kernel<<<grid_for(n), kBlock, 0, s>>>(x, y, n, C, S, mean, inv_std, gamma, beta);
  launched();
}

void bn_forward_inference(cudaStream_t s, const float* x, float* y, int64_t N, int64_t C, int64_t S,
                          float eps, const float* gamma, const float* beta,
                          const float* running_mean, const float* running_var) {
  const int64_t n = N * C * S;
  bn_infer_kernel<<<grid_for(n), kBlock, 0, s>>>(x, y, n, C, S, running_mean, running_var, eps,
                                                 gamma, beta);
  launched();
}

void bn_backward(cudaStream_t s, const float* x, const float* dy, float* dx, int64_t N, int64_t C,
                 int64_t S, const float* gamma, const float* mean, const float* inv_std,
                 float* d_gamma, float* d_beta, float* scratch) {
  float* mean_dy = scratch;
  float* mean_dy_xhat = scratch + C;
  bn_backward_reduce_kernel<<<static_cast<unsigned>(C), kBlock, 0, s>>>(
      x, dy, N, C, S, mean, inv_std, d_gamma, d_beta, mean_dy, mean_dy_xhat);
  launched();
  const int64_t n = N * C * S;
  bn_backward_kernel<<<grid_for(n), kBlock, 0, s>>>(x, dy, dx, n, C, S, mean, inv_std, gamma,
                                                    mean_dy, mean_dy_xhat);
  launched();
}

void bn_accumulate_stats(cudaStream_t s, const float* mean, const float* var, int64_t C,
                         float* sum_mean, float* sum_var, float* sum_mean_sq) {
  const unsigned blocks = static_cast<unsigned>((C + kBlock - 1) / kBlock);
  bn_accumulate_kernel<<<blocks, kBlock, 0, s>>>(mean, var, C, sum_mean, sum_var, sum_mean_sq);
  launched();
}

void softmax_xent(cudaStream_t s, const float* logits, const float* labels, int64_t n, int64_t k,
                  float* d_logits, float* loss_out, float* correct_out) {
  softmax_xent_kernel<<<1, kBlock, 0, s>>>(logits, labels, static_cast<int>(n), static_cast<int>(k),
                                           d_logits, loss_out, correct_out);
  launched();
}

void add_bias(cudaStream_t s, float* y, const float* b, int64_t N, int64_t C, int64_t S) {
  const int64_t n = N * C * S;
  add_bias_kernel<<<grid_for(n), kBlock, 0, s>>>(y, b, n, C, S);
  launched();
}

void bias_grad(cudaStream_t s, const float* dy, float* db, int64_t N, int64_t C, int64_t S) {
  bias_grad_kernel<<<static_cast<unsigned>(C), kBlock, 0, s>>>(dy, db, N, C, S);
  launched();
}

void pad2d(cudaStream_t s, const float* x, float* xp, int64_t N, int64_t C, int64_t H, int64_t W,
           int64_t lo_h, int64_t hi_h, int64_t lo_w, int64_t hi_w) {
  const PadGeometry g{H, W, lo_h, hi_h, lo_w, hi_w};
  const int64_t n = N * C * g.Hp() * g.Wp();
  pad2d_kernel<<<grid_for(n), kBlock, 0, s>>>(x, xp, n, g);
  launched();
}

void crop2d(cudaStream_t s, const float* xp, float* x, int64_t N, int64_t C, int64_t H, int64_t W,
            int64_t lo_h, int64_t hi_h, int64_t lo_w, int64_t hi_w) {
  const PadGeometry g{H, W, lo_h, hi_h, lo_w, hi_w};
  const int64_t n = N * C * H * W;
  crop2d_kernel<<<grid_for(n), kBlock, 0, s>>>(xp, x, n, g);
  launched();
}

void count_non_finite(cudaStream_t s, const float* p, int64_t n, unsigned long long* count) {
  CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof *count, s));
  count_non_finite_kernel<<<grid_for(n, 4096), kBlock, 0, s>>>(p, n, count);
  launched();
}

}  // namespace dcgan::cuda
