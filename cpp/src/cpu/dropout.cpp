// Inverted dropout with counter-based (Philox) masks.
#include <omp.h>

#include <cstring>
#include <vector>

#include "core/elementwise.hpp"
#include "core/rng.hpp"
#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// Inverted dropout: keep with probability 1-p and scale by 1/(1-p). The mask of element i is a
// function of (seed, pass counter, layer, i), so it is the same for any thread count.
class DropoutLayer : public Layer {
 public:
  DropoutLayer(Ctx& c, const ResolvedLayer& L, uint64_t seed, uint64_t layer_index)
      : c_(c), L_(L), seed_(seed), layer_(layer_index) {}

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    in_ = in;
    d_in_ = d_in;
    out = memory(in.get_desc(), c.eng);
    d_out = memory(in.get_desc(), c.eng);
    n_ = phys_floats(in);
    mask_.assign(n_, 0.f);
  }

  void forward(bool training, Counter ctr) override {
    const float* x = static_cast<const float*>(in_.get_data_handle());
    float* y = static_cast<float*>(out.get_data_handle());
    const float p = L_.spec.p;
    active_ = training && p > 0.f;
    if (!active_) {
      std::memcpy(y, x, n_ * sizeof(float));
      return;
    }
    const Philox rng(seed_, Stream::Dropout, ctr.value());
    float* mk = mask_.data();
    // dropout_multiplier (core/elementwise.hpp), one Philox block per 4 elements.
    const float scale = dropout_scale(p);
#pragma omp parallel for schedule(static) if (n_ > (1 << 15))
    for (int64_t b = 0; b < (n_ + 3) / 4; ++b) {
      uint32_t w[4];
      rng.block(dropout_block(layer_, 4 * b), w);
      for (int k = 0; k < 4 && 4 * b + k < n_; ++k) {
        const int64_t i = 4 * b + k;
        mk[i] = dropout_keep(w[k], p, scale);
        y[i] = x[i] * mk[i];
      }
    }
  }

  void backward(bool, int) override {
    const float* dy = static_cast<const float*>(d_out.get_data_handle());
    float* dx = static_cast<float*>(d_in_.get_data_handle());
    if (!active_) {
      std::memcpy(dx, dy, n_ * sizeof(float));
      return;
    }
    const float* mk = mask_.data();
#pragma omp parallel for simd schedule(static) if (n_ > (1 << 15))
    for (int64_t i = 0; i < n_; ++i) dx[i] = dy[i] * mk[i];
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  uint64_t seed_, layer_;
  int64_t n_ = 0;
  bool active_ = false;
  std::vector<float> mask_;
};

}  // namespace

std::unique_ptr<Layer> make_dropout_layer(Ctx& c, const ResolvedLayer& L, uint64_t seed,
                                          uint64_t layer_index) {
  return std::make_unique<DropoutLayer>(c, L, seed, layer_index);
}

}  // namespace dcgan::cpu
