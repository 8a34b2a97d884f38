// Dense layers on cuBLAS: y = x W^T + b with x (N, in) and W (out, in) row-major (PyTorch's
// layout), i.e. column-major W^T (in, out). Forward and backward-data are one SGEMM each,
// backward-weights one SGEMM into the gradient slot plus the bias's column sums (bias.cuh).
// TF32 only with Config.tf32 (the handle's math mode, set by the backend).
#include "cuda/layer.hpp"
#include "cuda/ops.hpp"

namespace dcgan::cuda {

namespace {

class DenseLayer : public Layer {
 public:
  DenseLayer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps, int64_t batch)
      : c_(c), L_(L), ps_(ps), N_(batch), in_f_(L.in[0]), out_f_(L.spec.out) {}
  bool has_params() const override { return true; }
  void build(float* in, float* d_in) override {
    in_ = in, d_in_ = d_in;
    alloc_outputs(N_ * out_f_);
  }

  void forward(bool, Counter) override {
    const float one = 1.f, zero = 0.f;
    // Column-major: y^T (out x N) = W (out x in) * x^T (in x N), where W is stored as the
    // column-major (in x out) matrix W^T, hence OP_T; x is the column-major (in x N) x^T.
    DCGAN_CUBLAS(cublasSgemm(c_.blas, CUBLAS_OP_T, CUBLAS_OP_N, ii(out_f_), ii(N_), ii(in_f_), &one,
                             w(), ii(in_f_), in_, ii(in_f_), &zero, out, ii(out_f_)));
    if (L_.spec.bias) add_bias(c_.stream, out, b(), N_, out_f_, 1);
  }

  void backward(bool need_d_in, int slot) override {
    const float one = 1.f, zero = 0.f;
    if (need_d_in)  // dx^T (in x N) = W^T (in x out) * dy^T (out x N)
      DCGAN_CUBLAS(cublasSgemm(c_.blas, CUBLAS_OP_N, CUBLAS_OP_N, ii(in_f_), ii(N_), ii(out_f_),
                               &one, w(), ii(in_f_), d_out, ii(out_f_), &zero, d_in_, ii(in_f_)));
    if (slot >= 0) {
      float* g = ps_.grad(slot);
      // dW^T (in x out) = x^T (in x N) * dy (N x out); overwrites the slot.
      DCGAN_CUBLAS(cublasSgemm(c_.blas, CUBLAS_OP_N, CUBLAS_OP_T, ii(in_f_), ii(out_f_), ii(N_),
                               &one, in_, ii(in_f_), d_out, ii(out_f_), &zero,
                               g + L_.params[0].offset, ii(in_f_)));
      if (L_.spec.bias) bias_grad(c_.stream, d_out, g + L_.params[1].offset, N_, out_f_, 1);
    }
  }

 private:
  static int ii(int64_t v) {
    if (v > 0x7fffffff) throw InvalidArgument("dense layer dimension too large for cuBLAS");
    return static_cast<int>(v);
  }
  const float* w() { return ps_.params() + L_.params[0].offset; }
  const float* b() { return ps_.params() + L_.params[1].offset; }
  Ctx& c_;
  const ResolvedLayer& L_;
  DeviceParams& ps_;
  int64_t N_, in_f_, out_f_;
};

}  // namespace

std::unique_ptr<Layer> make_dense_layer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps,
                                        int64_t batch) {
  return std::make_unique<DenseLayer>(c, L, ps, batch);
}

}  // namespace dcgan::cuda
