// Reshape and Flatten on the CUDA backend: activations are plain row-major arrays, so both are
// views (the output aliases the input, the gradient passes through untouched).
#include "cuda/layer.hpp"

namespace dcgan::cuda {

namespace {

class ReshapeLayer : public Layer {
 public:
  void build(float* in, float* d_in) override {
    in_ = in, d_in_ = d_in;
    out = in, d_out = d_in;
  }
  void forward(bool, Counter) override {}
  void backward(bool, int) override {}
};

}  // namespace

std::unique_ptr<Layer> make_reshape_layer(Ctx&, const ResolvedLayer&, int64_t) {
  return std::make_unique<ReshapeLayer>();
}

}  // namespace dcgan::cuda
