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
    const dt type = in.get_desc().get_data_type();
    if (type != dt::f32 && type != dt::bf16)
      throw BackendError("dropout: activations must be f32 or bf16");
    bf16_ = type == dt::bf16;
    n_ = phys_elems(in);
    mask_.assign(n_, 0.f);
    // A channel-blocked input (oneDNN's choice after a convolution) stores element i of the
    // logical (N, C, H, W) tensor elsewhere: masks are keyed by the logical index, so that they
    // are the same whatever layout oneDNN picks here and on every backend. The physical ->
    // logical table comes from reordering the logical indices themselves, one base-256 digit
    // per pass (exact in f32 and in bf16, whose 8-bit significand holds 0..256).
    const md_t plain = in.get_desc().get_ndims() == 4
                           ? md_t(in.get_desc().get_dims(), type, tag::nchw)
                           : md_t(in.get_desc().get_dims(), type, tag::nc);
    if (L_.spec.p > 0.f && in.get_desc() != plain) {
      const int64_t n_logical = static_cast<int64_t>(plain.get_size() / (bf16_ ? 2 : 4));
      memory digit_p(plain, c.eng), digit_b(in.get_desc(), c.eng);
      dnnl::reorder to_blocked(digit_p, digit_b);
      logical_.assign(static_cast<size_t>(n_), 0);
      for (int shift = 0; shift < 64 && (n_logical - 1) >> shift > 0; shift += 8) {
        for (int64_t i = 0; i < n_logical; ++i)
          put(digit_p, i, static_cast<float>((i >> shift) & 0xFF));
        to_blocked.execute(c.strm, digit_p, digit_b);
        c.strm.wait();
        for (int64_t i = 0; i < n_; ++i)
          logical_[i] += static_cast<int64_t>(get(digit_b, i)) << shift;
      }
      mask_logical_.assign(static_cast<size_t>(n_logical), 0.f);
    }
  }

  void forward(bool training, Counter ctr) override {
    const float p = L_.spec.p;
    active_ = training && p > 0.f;
    if (!active_) {
      std::memcpy(out.get_data_handle(), in_.get_data_handle(), in_.get_desc().get_size());
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
      for (int64_t i = 0; i < n_; ++i) mk[i] = ml[li[i]];
    } else {
#pragma omp parallel for schedule(static) if (n_ > (1 << 15))
      for (int64_t b = 0; b < (n_ + 3) / 4; ++b) {
        uint32_t w[4];
        rng.block(dropout_block(layer_, 4 * b), w);
        for (int k = 0; k < 4 && 4 * b + k < n_; ++k) mk[4 * b + k] = dropout_keep(w[k], p, scale);
      }
    }
    multiply(in_, out);
  }

  void backward(bool, int) override {
    if (!active_) {
      std::memcpy(d_in_.get_data_handle(), d_out.get_data_handle(), d_out.get_desc().get_size());
      return;
    }
    multiply(d_out, d_in_);
  }

 private:
  // dst = src * mask, element by element, in the activations' data type.
  void multiply(const memory& src, const memory& dst) const {
    const float* mk = mask_.data();
    const int64_t n = n_;
    if (bf16_) {
      const auto* x = static_cast<const uint16_t*>(src.get_data_handle());
      auto* y = static_cast<uint16_t*>(dst.get_data_handle());
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
      for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(bf16_to_f32(x[i]) * mk[i]);
      return;
    }
    const auto* x = static_cast<const float*>(src.get_data_handle());
    auto* y = static_cast<float*>(dst.get_data_handle());
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * mk[i];
  }
  void put(const memory& m, int64_t i, float v) const {
    if (bf16_)
      static_cast<uint16_t*>(m.get_data_handle())[i] = f32_to_bf16(v);
    else
      static_cast<float*>(m.get_data_handle())[i] = v;
  }
  float get(const memory& m, int64_t i) const {
    return bf16_ ? bf16_to_f32(static_cast<const uint16_t*>(m.get_data_handle())[i])
                 : static_cast<const float*>(m.get_data_handle())[i];
  }

  Ctx& c_;
  const ResolvedLayer& L_;
  uint64_t seed_, layer_;
  int64_t n_ = 0;
  bool active_ = false, bf16_ = false;
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
