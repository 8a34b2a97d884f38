// The few-channel side of a convolution as one matrix product and a gather, for the passes where
// oneDNN 3.2's kernels run at a few percent of peak: ConvTranspose2d's forward into 1-4 output
// channels (a generator's image layer) and Conv2d's backward-data into 1-4 input channels (the
// discriminator's gradient with respect to the image). mnist's two such passes took 9.5 ms of a
// 173 ms fp32 step on Zen 4 (bench/RESULTS.md, issue 13, fifth pass).
//
// Both scatter a tensor S (positions (n, p, q) of the small image, CS channels) into a tensor B
// (the big image, CB channels):
//   B[n, h, w, cb] = bias[cb] + sum over taps (kh, kw) and positions (p, q) with
//                    h = p*s - lo_h + kh, w = q*s - lo_w + kw of
//                    sum over cs of S[n, p, q, cs] * W'[cs, kh, kw, cb]
// ConvTranspose2d forward: S = x, B = y, W'[ic, kh, kw, oc] = W[ic, oc, kh, kw] (PyTorch's
// (in, out, k, k)), then the fused activation. Conv2d backward-data: S = dy, B = dx,
// W'[oc, kh, kw, ic] = W[oc, ic, kh, kw] (PyTorch's (out, in, k, k)), no bias.
//
// Step 1, oneDNN matmul: cols (rows x K*K*CB, f32) = S (rows x CS, NHWC) x W' (CS x K*K*CB).
// Step 2, here: each element of B sums its taps' entries of cols in a fixed order (kh, then kw,
// ascending), so the result does not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// DCGAN_CPU_THIN: "auto" (unset: every eligible pass) or "native" (oneDNN's own kernels),
// read when a network is compiled.
bool thin_enabled() { return auto_or_native("DCGAN_CPU_THIN"); }

constexpr int64_t kMaxThin = 4;  // CB: at most this many channels on the big image's side

class MatmulScatter : public ThinScatter {
 public:
  MatmulScatter(Ctx& c, const ResolvedLayer& L, int64_t batch, const memory& s,
                const memory& w_canon, const float* bias, const ResolvedLayer* act,
                const memory& b_out)
      : bias_(bias) {
    const LayerSpec& sp = L.spec;
    const bool conv = sp.kind == LayerKind::Conv2d;
    const dt a = c.act;
    k_ = sp.kernel, stride_ = sp.stride, lo_h_ = L.pad_h.lo, lo_w_ = L.pad_w.lo;
    const Shape& small = conv ? L.out : L.in;
    const Shape& big = conv ? L.in : L.out;
    n_ = batch, cs_ = small[0], p_ = small[1], q_ = small[2];
    cb_ = big[0], hb_ = big[1], wb_ = big[2];
    if (cb_ > kMaxThin) throw BackendError("thin scatter: too many channels on the image side");
    rows_ = n_ * p_ * q_, kkc_ = k_ * k_ * cb_;
    // S as an NHWC matrix (rows x CS).
    s_ = adapt(c, s, md_t({n_, cs_, p_, q_}, a, tag::nhwc), &s_reorder_, true);
    // W' (CS x K*K*CB), row-major, in the activations' type, as a view of the layer's
    // (out, in, k, k) weight dims.
    const int64_t ic = L.in[0], oc = sp.out;
    const memory::dims w_strides = conv ? memory::dims{k_ * k_ * ic, 1, k_ * ic, ic}
                                        : memory::dims{1, k_ * k_ * oc, k_ * oc, oc};
    w_ = memory(md_t({oc, ic, k_, k_}, a, w_strides), c.eng);
    w_reorder_ = make_reorder(c, w_canon, w_);
    // Images in chunks whose cols stay in cache (about 1 MB) until the gather reads them.
    const int64_t per_image = p_ * q_ * kkc_ * static_cast<int64_t>(sizeof(float));
    const int64_t chunks = std::max<int64_t>(1, (n_ * per_image + (1 << 20) - 1) >> 20);
    chunk_ = std::min(n_, (n_ + chunks - 1) / chunks);
    const md_t w_md({cs_, kkc_}, a, tag::ab);
    w_rows_ = memory(w_md, c.eng, w_.get_data_handle());
    cols_ = memory(md_t({chunk_ * p_ * q_, kkc_}, dt::f32, tag::ab), c.eng);
    const size_t esize = memory::data_type_size(a);
    for (int64_t n0 = 0; n0 < n_; n0 += chunk_) {
      const int64_t rows = (std::min(n_, n0 + chunk_) - n0) * p_ * q_;
      const md_t s_md({rows, cs_}, a, tag::ab), cols_md({rows, kkc_}, dt::f32, tag::ab);
      if (mm_.empty() || rows != chunk_ * p_ * q_)  // the full chunks' product, then the tail's
        mm_.push_back(Prim(c, dnnl::matmul::primitive_desc(c.eng, s_md, w_md, cols_md, c.attr())));
      auto* base = static_cast<char*>(s_.get_data_handle()) + n0 * p_ * q_ * cs_ * esize;
      s_chunks_.push_back(memory(s_md, c.eng, base));
      cols_chunks_.push_back(memory(cols_md, c.eng, cols_.get_data_handle()));
    }
    tap_table(hb_, p_, lo_h_, k_ * cb_, h_taps_, h_src_, h_off_);
    tap_table(wb_, q_, lo_w_, cb_, w_taps_, w_src_, w_off_);
    // B in f32 NHWC: b_out itself when it is that, else a buffer reordered into it.
    const md_t b32({n_, cb_, hb_, wb_}, dt::f32, tag::nhwc);
    b_ = adapt(c, b_out, b32, &b_reorder_, false);
    if (act) {
      act_ = fused_act_forward(c, act->spec, b32);
      has_act_ = true;
    }
  }

  void run(dnnl::stream& s, uint64_t weights_version) override {
    if (weights_version != w_version_) {
      w_reorder_.run(s);
      w_version_ = weights_version;
    }
    if (s_reorder_) s_reorder_->run(s);
    for (size_t i = 0; i < s_chunks_.size(); ++i) {
      const Prim& mm = i + 1 == s_chunks_.size() ? mm_.back() : mm_.front();
      mm.run(s, {{DNNL_ARG_SRC, s_chunks_[i]},
                 {DNNL_ARG_WEIGHTS, w_rows_},
                 {DNNL_ARG_DST, cols_chunks_[i]}});
      s.wait();
      const int64_t n0 = static_cast<int64_t>(i) * chunk_;
      gather(n0, std::min(n_, n0 + chunk_));
    }
    if (has_act_) act_.run(s, {{DNNL_ARG_SRC, b_}, {DNNL_ARG_DST, b_}});
    if (b_reorder_) b_reorder_->run(s);
    s.wait();
  }

 private:
  // B from cols: a row (n, h) of B per task; each element starts from the bias and adds its
  // taps in (kh, kw) order, from the tables of the taps that reach each row and column.
  // Images [n0, n1), whose cols are in cols_.
  void gather(int64_t n0, int64_t n1) {
    const auto* cols = static_cast<const float*>(cols_.get_data_handle());
    auto* b = static_cast<float*>(b_.get_data_handle());
    const int64_t Q = q_, CB = cb_, KKC = kkc_, W = wb_;
#pragma omp parallel for schedule(static)
    for (int64_t r = n0 * hb_; r < n1 * hb_; ++r) {
      const int64_t n = r / hb_ - n0, h = r % hb_;
      for (int64_t w = 0; w < W; ++w) {
        float acc[kMaxThin];
        for (int64_t cb = 0; cb < CB; ++cb) acc[cb] = bias_ ? bias_[cb] : 0.f;
        for (int64_t i = h_taps_[h]; i < h_taps_[h + 1]; ++i) {
          // (offset of kh's entries within a position's row, source row p)
          const float* row = cols + (n * p_ + h_src_[i]) * Q * KKC + h_off_[i];
          for (int64_t j = w_taps_[w]; j < w_taps_[w + 1]; ++j) {
            const float* t = row + w_src_[j] * KKC + w_off_[j];
            for (int64_t cb = 0; cb < CB; ++cb) acc[cb] += t[cb];
          }
        }
        float* o = b + (r * W + w) * CB;
        for (int64_t cb = 0; cb < CB; ++cb) o[cb] = acc[cb];
      }
    }
  }

  // For each output coordinate x in [0, size) of one axis, the taps k (ascending) and source
  // positions p with x = p*stride - lo + k, 0 <= p < positions: entries [taps[x], taps[x+1]) of
  // src (p) and off (k * unit).
  void tap_table(int64_t size, int64_t positions, int64_t lo, int64_t unit,
                 std::vector<int64_t>& taps, std::vector<int64_t>& src,
                 std::vector<int64_t>& off) const {
    taps.assign(1, 0);
    for (int64_t x = 0; x < size; ++x) {
      for (int64_t k = 0; k < k_; ++k) {
        const int64_t t = x + lo - k;
        if (t < 0 || t % stride_ != 0 || t / stride_ >= positions) continue;
        src.push_back(t / stride_);
        off.push_back(k * unit);
      }
      taps.push_back(static_cast<int64_t>(src.size()));
    }
  }

  const float* bias_;
  int64_t k_ = 1, stride_ = 1, lo_h_ = 0, lo_w_ = 0;
  int64_t n_ = 0, cs_ = 0, p_ = 0, q_ = 0, cb_ = 0, hb_ = 0, wb_ = 0, rows_ = 0, kkc_ = 0;
  int64_t chunk_ = 1;  // images per matrix product
  memory s_, w_, cols_, w_rows_, b_;
  std::vector<memory> s_chunks_, cols_chunks_;  // per chunk: its rows of S, and cols
  std::optional<Reorder> s_reorder_, b_reorder_;
  Reorder w_reorder_;
  std::vector<Prim> mm_;  // the full chunks' product, and the last chunk's if it is shorter
  Prim act_;
  bool has_act_ = false;
  uint64_t w_version_ = ~0ull;
  std::vector<int64_t> h_taps_, h_src_, h_off_, w_taps_, w_src_, w_off_;
};

}  // namespace

bool use_thin_scatter(const ResolvedLayer& L) {
  const LayerSpec& s = L.spec;
  if (s.kind != LayerKind::Conv2d && s.kind != LayerKind::ConvTranspose2d) return false;
  if (!thin_enabled()) return false;
  const bool conv = s.kind == LayerKind::Conv2d;
  const int64_t cb = conv ? L.in[0] : s.out, cs = conv ? s.out : L.in[0];
  return cb <= kMaxThin && cs >= 16;
}

std::unique_ptr<ThinScatter> make_thin_scatter(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                               const memory& s, const memory& w_canon,
                                               const float* bias, const ResolvedLayer* act,
                                               const memory& b_out) {
  return std::make_unique<MatmulScatter>(c, L, batch, s, w_canon, bias, act, b_out);
}

}  // namespace dcgan::cpu
