// BatchNorm on the CUDA backend (batchnorm.cuh): batch statistics and PyTorch's running update
// in training, the running statistics in inference; over channels of (N, C, H, W) or features
// of (N, F).
#include "cuda/layer.hpp"
#include "cuda/ops.hpp"

namespace dcgan::cuda {

namespace {

class BatchNormLayer : public Layer {
 public:
  BatchNormLayer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps, int64_t batch)
      : c_(c), L_(L), ps_(ps), N_(batch), C_(L.in[0]), S_(numel(L.in) / L.in[0]) {}
  bool has_params() const override { return true; }
  void build(float* in, float* d_in) override {
    in_ = in, d_in_ = d_in;
    alloc_outputs(N_ * C_ * S_);
    stats_ = DevMem(5 * C_);  // mean, var, inv_std, 2 C of backward scratch
  }
  void forward(bool training, Counter) override {
    const float* gamma = ps_.params() + L_.params[0].offset;
    const float* beta = ps_.params() + L_.params[1].offset;
    float* run_mean = ps_.state() + L_.state_offset;
    float* run_var = run_mean + C_;
    if (training)
      bn_forward_training(c_.stream, in_, out, N_, C_, S_, L_.spec.eps, L_.spec.momentum, gamma,
                          beta, mean(), var(), inv_std(), run_mean, run_var);
    else
      bn_forward_inference(c_.stream, in_, out, N_, C_, S_, L_.spec.eps, gamma, beta, run_mean,
                           run_var);
  }
  void accumulate_stats(float* sums, float* mean_sq) override {
    bn_accumulate_stats(c_.stream, mean(), var(), C_, sums + L_.state_offset,
                        sums + L_.state_offset + C_, mean_sq + L_.state_offset);
  }
  void backward(bool need_d_in, int slot) override {
    if (!need_d_in && slot < 0) return;
    const float* gamma = ps_.params() + L_.params[0].offset;
    float* dg = slot >= 0 ? ps_.grad(slot) + L_.params[0].offset : nullptr;
    float* db = slot >= 0 ? ps_.grad(slot) + L_.params[1].offset : nullptr;
    bn_backward(c_.stream, in_, d_out, d_in_, N_, C_, S_, gamma, mean(), inv_std(), dg, db,
                stats_.get() + 3 * C_);
  }

 private:
  float* mean() { return stats_.get(); }
  float* var() { return stats_.get() + C_; }
  float* inv_std() { return stats_.get() + 2 * C_; }
  Ctx& c_;
  const ResolvedLayer& L_;
  DeviceParams& ps_;
  int64_t N_, C_, S_;
  DevMem stats_;
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm_layer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps,
                                            int64_t batch) {
  return std::make_unique<BatchNormLayer>(c, L, ps, batch);
}

}  // namespace dcgan::cuda
