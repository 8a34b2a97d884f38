// Inverted dropout on the CUDA backend (dropout.cuh): the mask of element i is the CPU
// backend's (core/elementwise.hpp's dropout_multiplier of the pass counter), read on the device.
#include "cuda/layer.hpp"
#include "cuda/ops.hpp"

namespace dcgan::cuda {

namespace {

class DropoutLayer : public Layer {
 public:
  DropoutLayer(Ctx& c, const ResolvedLayer& L, int64_t batch, uint64_t seed, uint64_t layer_index)
      : c_(c), L_(L), n_(batch * numel(L.in)), seed_(seed), layer_(layer_index) {}
  void build(float* in, float* d_in) override {
    in_ = in, d_in_ = d_in;
    alloc_outputs(n_);
    mask_ = DevMem(n_);
  }
  void forward(bool training, Counter ctr) override {
    active_ = training && L_.spec.p > 0.f;
    if (active_)
      dropout_forward(c_.stream, in_, out, mask_.get(), n_, seed_, ctr, layer_, L_.spec.p);
    else
      DCGAN_CUDA_OK(
          cudaMemcpyAsync(out, in_, n_ * sizeof(float), cudaMemcpyDeviceToDevice, c_.stream));
  }
  void backward(bool need_d_in, int) override {
    if (!need_d_in) return;
    if (active_)
      dropout_backward(c_.stream, d_out, mask_.get(), d_in_, n_);
    else
      DCGAN_CUDA_OK(
          cudaMemcpyAsync(d_in_, d_out, n_ * sizeof(float), cudaMemcpyDeviceToDevice, c_.stream));
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  int64_t n_;
  uint64_t seed_, layer_;
  DevMem mask_;
  bool active_ = false;
};

}  // namespace

std::unique_ptr<Layer> make_dropout_layer(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                          uint64_t seed, uint64_t layer_index) {
  return std::make_unique<DropoutLayer>(c, L, batch, seed, layer_index);
}

}  // namespace dcgan::cuda
