// Inverted dropout with counter-based (Philox) masks, keyed by the element's logical NCHW index.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DCGAN_DROPOUT_SIMD 1
#endif

#include "core/elementwise.hpp"
#include "core/rng.hpp"
#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// ------------------------------------------------------------------------------ keep flags
// k[i] = dropout_kept of element i, with Philox blocks side by side in vector lanes (8 with
// AVX2, 16 with AVX-512): bit for bit Philox::block and dropout_kept. The 32x32 -> 64-bit
// products are vpmuludq on the even lanes and on the odd lanes shifted down, recombined with
// blends; the kept test is to_unit's exact float compare. Each lane's four flags are bytes
// 4l..4l+3 of one 32-bit word. Timings in bench/RESULTS.md (issue 13, fifth pass).
#ifdef DCGAN_DROPOUT_SIMD
// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_*(), which -Wall reports
// as used uninitialized once inlined here: a false positive, silenced for these functions only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// lo and hi halves of the 32x32-bit products x * m, lane by lane.
__attribute__((target("avx2"))) inline void mulhilo8(__m256i x, __m256i m, __m256i& lo,
                                                     __m256i& hi) {
  const __m256i pe = _mm256_mul_epu32(x, m);
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m);
  lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

// 1 where to_unit(w) >= p, else 0, lane by lane.
__attribute__((target("avx2"))) inline __m256i kept8(__m256i w, __m256 p) {
  const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w, 8)),
                                 _mm256_set1_ps(1.0f / 16777216.0f));
  return _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(u, p, _CMP_GE_OQ)),
                          _mm256_set1_epi32(1));
}

// The flags of blocks b .. b+7 (32 elements) into k[0..32). The caller guarantees that b's low
// word does not wrap within the 8 blocks.
__attribute__((target("avx2"))) void flags8(const Philox& rng, uint64_t b, float p, uint8_t* k) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i x0 =
      _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(b))), lane);
  __m256i x1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(b >> 32)));
  __m256i x2 = _mm256_set1_epi32(static_cast<int>(rng.c2));
  __m256i x3 = _mm256_set1_epi32(static_cast<int>(rng.c3));
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  uint32_t k0 = rng.key0, k1 = rng.key1;
  for (int r = 0; r < 10; ++r) {  // Philox::round
    __m256i lo0, hi0, lo1, hi1;
    mulhilo8(x0, m0, lo0, hi0);
    mulhilo8(x2, m1, lo1, hi1);
    x0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), _mm256_set1_epi32(static_cast<int>(k0)));
    x1 = lo1;
    x2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), _mm256_set1_epi32(static_cast<int>(k1)));
    x3 = lo0;
    Philox::bump_key(k0, k1);
  }
  const __m256 pv = _mm256_set1_ps(p);
  const __m256i v = _mm256_or_si256(
      _mm256_or_si256(kept8(x0, pv), _mm256_slli_epi32(kept8(x1, pv), 8)),
      _mm256_or_si256(_mm256_slli_epi32(kept8(x2, pv), 16), _mm256_slli_epi32(kept8(x3, pv), 24)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(k), v);
}

__attribute__((target("avx512f"))) inline void mulhilo16(__m512i x, __m512i m, __m512i& lo,
                                                         __m512i& hi) {
  const __m512i pe = _mm512_mul_epu32(x, m);
  const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), m);
  lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}

__attribute__((target("avx512f"))) inline __m512i kept16(__m512i w, __m512 p) {
  const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(w, 8)),
                                 _mm512_set1_ps(1.0f / 16777216.0f));
  return _mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(u, p, _CMP_GE_OQ), 1);
}

// flags8 for blocks b .. b+15 (64 elements).
__attribute__((target("avx512f"))) void flags16(const Philox& rng, uint64_t b, float p,
                                                uint8_t* k) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i x0 =
      _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(b))), lane);
  __m512i x1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(b >> 32)));
  __m512i x2 = _mm512_set1_epi32(static_cast<int>(rng.c2));
  __m512i x3 = _mm512_set1_epi32(static_cast<int>(rng.c3));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  uint32_t k0 = rng.key0, k1 = rng.key1;
  for (int r = 0; r < 10; ++r) {
    __m512i lo0, hi0, lo1, hi1;
    mulhilo16(x0, m0, lo0, hi0);
    mulhilo16(x2, m1, lo1, hi1);
    x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32(static_cast<int>(k0)));
    x1 = lo1;
    x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32(static_cast<int>(k1)));
    x3 = lo0;
    Philox::bump_key(k0, k1);
  }
  const __m512 pv = _mm512_set1_ps(p);
  const __m512i v =
      _mm512_or_si512(_mm512_or_si512(kept16(x0, pv), _mm512_slli_epi32(kept16(x1, pv), 8)),
                      _mm512_or_si512(_mm512_slli_epi32(kept16(x2, pv), 16),
                                      _mm512_slli_epi32(kept16(x3, pv), 24)));
  _mm512_storeu_si512(k, v);
}
#pragma GCC diagnostic pop
#endif

// Blocks per vector call: from the ISA oneDNN dispatches to, so that ONEDNN_MAX_CPU_ISA holds
// this loop to the primitives' ISA (and the tests run each path on one machine).
int flag_lanes() {
#ifdef DCGAN_DROPOUT_SIMD
  const std::string isa = isa_name(dnnl::get_effective_cpu_isa());
  if (isa.rfind("avx512", 0) == 0) return 16;
  if (isa.rfind("avx2", 0) == 0) return 8;
#endif
  return 1;
}

// The scalar flags of blocks [b0, b1) (elements 4 b0 .. min(4 b1, n)) of a layer.
void flags_scalar(const Philox& rng, uint64_t first, int64_t b0, int64_t b1, int64_t n, float p,
                  uint8_t* k) {
  for (int64_t b = b0; b < b1; ++b) {
    uint32_t w[4];
    rng.block(first + static_cast<uint64_t>(b), w);
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) k[4 * b + j] = dropout_kept(w[j], p);
  }
}

// k[i] = the keep flag of element i (dropout_kept) for i < n, in parallel tasks of 1,024 blocks
// (4,096 elements).
void dropout_flags(const Philox& rng, uint64_t layer, int64_t n, float p, uint8_t* k) {
  static const int lanes = flag_lanes();
  const uint64_t first = dropout_block(layer, 0);  // element 4b is in block first + b
  const int64_t blocks = (n + 3) / 4, per = 1024;
#pragma omp parallel for schedule(static) if (blocks > 8 * per)
  for (int64_t t = 0; t < (blocks + per - 1) / per; ++t) {
    const int64_t b1 = std::min(blocks, (t + 1) * per);
    int64_t b = t * per;
#ifdef DCGAN_DROPOUT_SIMD
    // Whole vectors of complete blocks whose counter's low word does not wrap inside them.
    for (; lanes > 1 && b + lanes <= b1 && 4 * (b + lanes) <= n; b += lanes) {
      const uint64_t c = first + static_cast<uint64_t>(b);
      if (static_cast<uint32_t>(c) > 0xFFFFFFFFu - static_cast<uint32_t>(lanes - 1)) break;
      if (lanes == 16)
        flags16(rng, c, p, k + 4 * b);
      else
        flags8(rng, c, p, k + 4 * b);
    }
#endif
    flags_scalar(rng, first, b, b1, n, p, k);
  }
}

// How the activations are stored, which decides how the logical (N, C, H, W) flags reach
// their physical places.
enum class Order {
  Plain,         // logical order (nchw, nc): the flags are generated in place
  ChannelsLast,  // nhwc: one (C, H*W) -> (H*W, C) transpose per image
  Table,         // anything else (oneDNN's channel blocks): a physical -> logical table
};

// Inverted dropout: keep with probability 1-p and scale by 1/(1-p). The mask of element i is a
// function of (seed, pass counter, layer, i), so it is the same for any thread count. It is kept
// as one byte per element (kept or not) in the activations' physical order and applied as
// x * (kept ? 1/(1-p) : 0): the same bits as multiplying by dropout_multiplier, a quarter of
// the memory traffic of a float mask.
class DropoutLayer : public Layer {
 public:
  DropoutLayer(const ResolvedLayer& L, uint64_t seed, uint64_t layer_index)
      : L_(L), seed_(seed), layer_(layer_index) {}

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
    flags_.assign(static_cast<size_t>(n_), 0);
    const memory::dims dims = in.get_desc().get_dims();
    const bool four = dims.size() == 4;
    const md_t plain = four ? md_t(dims, type, tag::nchw) : md_t(dims, type, tag::nc);
    order_ = Order::Plain;
    logical_.clear();
    flags_logical_.clear();
    if (L_.spec.p <= 0.f || in.get_desc() == plain) return;
    const int64_t n_logical = static_cast<int64_t>(plain.get_size() / (bf16_ ? 2 : 4));
    flags_logical_.assign(static_cast<size_t>(n_logical), 0);
    if (four && in.get_desc() == md_t(dims, type, tag::nhwc)) {
      order_ = Order::ChannelsLast;
      images_ = dims[0], channels_ = dims[1], positions_ = dims[2] * dims[3];
      return;
    }
    // A channel-blocked input (oneDNN's choice after a convolution) stores element i of the
    // logical tensor elsewhere, possibly beside padding. The physical -> logical table comes
    // from reordering the logical indices themselves, one base-256 digit per pass (exact in f32
    // and in bf16, whose 8-bit significand holds 0..256).
    order_ = Order::Table;
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
  }

  void forward(bool training, Counter ctr) override {
    const float p = L_.spec.p;
    active_ = training && p > 0.f;
    if (!active_) {
      std::memcpy(out.get_data_handle(), in_.get_data_handle(), in_.get_desc().get_size());
      return;
    }
    scale_ = dropout_scale(p);
    const Philox rng(seed_, Stream::Dropout, ctr.value());
    uint8_t* k = flags_.data();
    if (order_ == Order::Plain) {
      dropout_flags(rng, layer_, n_, p, k);
    } else {
      // The flags in logical order, then each physical element takes its logical element's.
      uint8_t* kl = flags_logical_.data();
      dropout_flags(rng, layer_, static_cast<int64_t>(flags_logical_.size()), p, kl);
      if (order_ == Order::ChannelsLast) {
        const int64_t C = channels_, S = positions_;
#pragma omp parallel for schedule(static) if (n_ > (1 << 15))
        for (int64_t img = 0; img < images_; ++img) {
          const uint8_t* src = kl + img * C * S;
          uint8_t* dst = k + img * C * S;
          for (int64_t s = 0; s < S; ++s)
            for (int64_t ch = 0; ch < C; ++ch) dst[s * C + ch] = src[ch * S + s];
        }
      } else {
        const int64_t* li = logical_.data();
#pragma omp parallel for simd schedule(static) if (n_ > (1 << 15))
        for (int64_t i = 0; i < n_; ++i) k[i] = kl[li[i]];
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
  // dst = src * (kept ? scale : 0), element by element, in the activations' data type.
  void multiply(const memory& src, const memory& dst) const {
    const uint8_t* k = flags_.data();
    const int64_t n = n_;
    const float scale = scale_;
    if (bf16_) {
      const auto* x = static_cast<const uint16_t*>(src.get_data_handle());
      auto* y = static_cast<uint16_t*>(dst.get_data_handle());
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
      for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(bf16_to_f32(x[i]) * (k[i] ? scale : 0.f));
      return;
    }
    const auto* x = static_cast<const float*>(src.get_data_handle());
    auto* y = static_cast<float*>(dst.get_data_handle());
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * (k[i] ? scale : 0.f);
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

  const ResolvedLayer& L_;
  uint64_t seed_, layer_;
  int64_t n_ = 0;
  int64_t images_ = 0, channels_ = 0, positions_ = 0;  // Order::ChannelsLast
  bool active_ = false, bf16_ = false;
  float scale_ = 1.f;
  Order order_ = Order::Plain;
  std::vector<uint8_t> flags_;          // physical order: 1 = kept
  std::vector<int64_t> logical_;        // physical -> logical index, for Order::Table
  std::vector<uint8_t> flags_logical_;  // the pass's flags in logical order (not Order::Plain)
};

}  // namespace

std::unique_ptr<Layer> make_dropout_layer(Ctx&, const ResolvedLayer& L, uint64_t seed,
                                          uint64_t layer_index) {
  return std::make_unique<DropoutLayer>(L, seed, layer_index);
}

}  // namespace dcgan::cpu
