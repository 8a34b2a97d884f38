// Inverted dropout with counter-based (Philox) masks, keyed by the element's logical NCHW index.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/elementwise.hpp"
#include "core/rng.hpp"
#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// The masks of chunks of 16 Philox blocks (64 elements) from block b0: the 16 blocks side by
// side, so that with AVX-512 the compiler turns each round into vector multiplies. Bit for bit
// dropout_block/dropout_keep (the same integer words; word >> 8 converts to float exactly).
// On one thread, a 1M-element mask took 1.84 ms instead of 3.1 ms (bench/RESULTS.md, issue 13);
// with only AVX2, GCC's version of this loop was slower than one block at a time (4.0 ms), so
// other CPUs keep the scalar loop.
constexpr int kLanes = 16;
__attribute__((always_inline)) inline void masks_body(const Philox& rng, uint64_t layer, int64_t b0,
                                                      int64_t chunks, float p, float scale,
                                                      float* m) {
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const uint64_t first = dropout_block(layer, 4 * (b0 + ch * kLanes));
    uint32_t c0[kLanes], c1[kLanes], x2[kLanes], x3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t b = first + static_cast<uint64_t>(l);
      c0[l] = static_cast<uint32_t>(b), c1[l] = static_cast<uint32_t>(b >> 32);
      x2[l] = rng.c2, x3[l] = rng.c3;
    }
    uint32_t k0 = rng.key0, k1 = rng.key1;
    for (int r = 0; r < 10; ++r) {  // Philox::block's rounds, each across the 16 lanes
      for (int l = 0; l < kLanes; ++l) Philox::round(c0[l], c1[l], x2[l], x3[l], k0, k1);
      Philox::bump_key(k0, k1);
    }
    float* out = m + 4 * (b0 + ch * kLanes);
    for (int l = 0; l < kLanes; ++l) {
      out[4 * l + 0] = dropout_keep(c0[l], p, scale);
      out[4 * l + 1] = dropout_keep(c1[l], p, scale);
      out[4 * l + 2] = dropout_keep(x2[l], p, scale);
      out[4 * l + 3] = dropout_keep(x3[l], p, scale);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DCGAN_DROPOUT_AVX512 1
__attribute__((target("avx512f,avx512dq,avx512vl"))) void masks_avx512(const Philox& rng,
                                                                       uint64_t layer, int64_t b0,
                                                                       int64_t chunks, float p,
                                                                       float scale, float* m) {
  masks_body(rng, layer, b0, chunks, p, scale, m);
}
bool have_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}
#endif

// m[i] = the multiplier of element i (dropout_multiplier) for i < n, in parallel.
void dropout_masks(const Philox& rng, uint64_t layer, int64_t n, float p, float* m) {
  const float scale = dropout_scale(p);
  const int64_t blocks = (n + 3) / 4;
  int64_t done = 0;  // blocks written by the vector path
#ifdef DCGAN_DROPOUT_AVX512
  static const bool wide = have_avx512();
  if (wide) {
    const int64_t chunks = blocks / kLanes, per = 64;  // 64 chunks (4,096 elements) per task
#pragma omp parallel for schedule(static) if (chunks > 8 * per)
    for (int64_t t = 0; t < (chunks + per - 1) / per; ++t)
      masks_avx512(rng, layer, t * per * kLanes, std::min(per, chunks - t * per), p, scale, m);
    done = chunks * kLanes;
  }
#endif
  const int64_t rest = blocks - done;
#pragma omp parallel for schedule(static) if (rest > (1 << 13))
  for (int64_t b = done; b < blocks; ++b) {
    uint32_t w[4];
    rng.block(dropout_block(layer, 4 * b), w);
    for (int k = 0; k < 4 && 4 * b + k < n; ++k) m[4 * b + k] = dropout_keep(w[k], p, scale);
  }
}

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
    if (!logical_.empty()) {
      // The masks in logical order, then each physical element takes its logical element's.
      float* ml = mask_logical_.data();
      dropout_masks(rng, layer_, static_cast<int64_t>(mask_logical_.size()), p, ml);
      const int64_t* li = logical_.data();
#pragma omp parallel for simd schedule(static) if (n_ > (1 << 15))
      for (int64_t i = 0; i < n_; ++i) mk[i] = ml[li[i]];
    } else {
      dropout_masks(rng, layer_, n_, p, mk);
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
