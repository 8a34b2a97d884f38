// Inverted dropout with counter-based (Philox) masks, keyed by the element's logical NCHW index.
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
    // A channel-blocked input (oneDNN's choice after a convolution) stores element i of the
    // logical (N, C, H, W) tensor elsewhere: masks are keyed by the logical index, so that they
    // are the same whatever layout oneDNN picks here and on every backend. The physical ->
    // logical table comes from reordering the logical indices themselves (as two float halves
    // of 20 bits, exact in float32).
    const md_t plain = in.get_desc().get_ndims() == 4
                           ? md_t(in.get_desc().get_dims(), dt::f32, tag::nchw)
                           : md_t(in.get_desc().get_dims(), dt::f32, tag::nc);
    if (L_.spec.p > 0.f && in.get_desc() != plain) {
      const int64_t n_logical = static_cast<int64_t>(plain.get_size() / sizeof(float));
      memory lo_p(plain, c.eng), hi_p(plain, c.eng), lo_b(in.get_desc(), c.eng),
          hi_b(in.get_desc(), c.eng);
      auto* lo = static_cast<float*>(lo_p.get_data_handle());
      auto* hi = static_cast<float*>(hi_p.get_data_handle());
      for (int64_t i = 0; i < n_logical; ++i)
        lo[i] = static_cast<float>(i & 0xFFFFF), hi[i] = static_cast<float>(i >> 20);
      dnnl::reorder(lo_p, lo_b).execute(c.strm, lo_p, lo_b);
      dnnl::reorder(hi_p, hi_b).execute(c.strm, hi_p, hi_b);
      c.strm.wait();
      const auto* lb = static_cast<const float*>(lo_b.get_data_handle());
      const auto* hb = static_cast<const float*>(hi_b.get_data_handle());
      logical_.resize(n_);
      mask_logical_.assign(static_cast<size_t>(n_logical), 0.f);
      for (int64_t i = 0; i < n_; ++i)
        logical_[i] = (static_cast<int64_t>(hb[i]) << 20) + static_cast<int64_t>(lb[i]);
    }
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
    if (!logical_.empty()) {
      // The masks in logical order (one Philox block per 4 elements, as below), then each
      // physical element takes its logical element's.
      float* ml = mask_logical_.data();
      const int64_t nl = static_cast<int64_t>(mask_logical_.size());
#pragma omp parallel for schedule(static) if (nl > (1 << 15))
      for (int64_t b = 0; b < (nl + 3) / 4; ++b) {
        uint32_t w[4];
        rng.block(dropout_block(layer_, 4 * b), w);
        for (int k = 0; k < 4 && 4 * b + k < nl; ++k) ml[4 * b + k] = dropout_keep(w[k], p, scale);
      }
      const int64_t* li = logical_.data();
#pragma omp parallel for simd schedule(static) if (n_ > (1 << 15))
      for (int64_t i = 0; i < n_; ++i) {
        mk[i] = ml[li[i]];
        y[i] = x[i] * mk[i];
      }
      return;
    }
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
  std::vector<int64_t> logical_;     // physical -> logical index, for blocked layouts
  std::vector<float> mask_logical_;  // the pass's masks in logical order
};

}  // namespace

std::unique_ptr<Layer> make_dropout_layer(Ctx& c, const ResolvedLayer& L, uint64_t seed,
                                          uint64_t layer_index) {
  return std::make_unique<DropoutLayer>(c, L, seed, layer_index);
}

}  // namespace dcgan::cpu
