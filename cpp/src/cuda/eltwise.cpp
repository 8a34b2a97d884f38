// ReLU, LeakyReLU, tanh and sigmoid on the CUDA backend (activations.cuh): the gradient comes
// from the output, as on the CPU backend.
#include "cuda/layer.hpp"
#include "cuda/ops.hpp"

namespace dcgan::cuda {

namespace {

class EltwiseLayer : public Layer {
 public:
  EltwiseLayer(Ctx& c, const ResolvedLayer& L, int64_t batch)
      : c_(c), L_(L), n_(batch * numel(L.in)) {}
  void build(float* in, float* d_in) override {
    in_ = in, d_in_ = d_in;
    alloc_outputs(n_);
  }
  void forward(bool, Counter) override {
    activation_forward(c_.stream, L_.spec.kind, in_, out, n_, L_.spec.slope);
  }
  void backward(bool need_d_in, int) override {
    if (need_d_in)
      activation_backward(c_.stream, L_.spec.kind, out, d_out, d_in_, n_, L_.spec.slope);
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  int64_t n_;
};

}  // namespace

std::unique_ptr<Layer> make_eltwise_layer(Ctx& c, const ResolvedLayer& L, int64_t batch) {
  return std::make_unique<EltwiseLayer>(c, L, batch);
}

}  // namespace dcgan::cuda
