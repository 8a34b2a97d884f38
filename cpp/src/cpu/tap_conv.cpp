// Conv2d and ConvTranspose2d forward or backward-data in fp32 as one matrix product per kernel
// tap, for the layers whose small side is 4x4 with hundreds of channels (dcgan64's G3 1024->512
// and D's 256->512): there oneDNN 3.2's AVX2 kernels ran both of G3's passes at 100-135 GFLOP/s
// while a matrix product of that size runs at 160-180 on the same cores (bench/RESULTS.md,
// issue 13, eighth pass). Which passes: use_tap_conv at the end.
//
// Geometry as in gemm_weights.cpp: a small tensor S (positions (n, p, q), CS channels) and a big
// one B (CB channels); tap (kh, kw) joins S's (p, q) with B's (p*s - lo_h + kh, q*s - lo_w + kw).
// W_t (CS x CB) is tap t's slice of the weights: Conv2d W[cs = out][cb = in][kh][kw],
// ConvTranspose2d W[cs = in][cb = out][kh][kw].
//   scatter (ConvTranspose2d forward: S = x, B = y; Conv2d backward-data: S = dy, B = dx):
//     B = bias + the sum over taps t, in order, of S W_t added at the tap's positions of B;
//   gather (Conv2d forward: B = x, S = y; ConvTranspose2d backward-data: B = dy, S = dx):
//     S = bias + the sum over taps t, in order, of G_t W_t^T, G_t the rows of B the tap reads
//     (zero outside B).
// Each product is one oneDNN matmul over all the batch's positions (rows = n*p*q); the gather
// sums into S through the matmul's sum post-op, the scatter adds each tap's product into B in a
// loop that gives each row to one thread. So the results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// DCGAN_CPU_TAPS: "auto" (unset: the rule below), "all" (every eligible pass) or "native"
// (oneDNN's own kernels), read when a network is compiled.
std::string taps_setting() {
  const char* v = std::getenv("DCGAN_CPU_TAPS");
  const std::string s = v && *v ? v : "auto";
  if (s != "auto" && s != "all" && s != "native")
    throw InvalidArgument("DCGAN_CPU_TAPS: expected 'auto', 'all' or 'native', got '" + s + "'");
  return s;
}

class TapConv : public ThinScatter {
 public:
  TapConv(Ctx& c, const ResolvedLayer& L, int64_t batch, bool scatter, const memory& from,
          const memory& w_canon, const float* bias, const ResolvedLayer* act, const memory& to)
      : scatter_(scatter), bias_(bias) {
    const LayerSpec& sp = L.spec;
    const bool conv = sp.kind == LayerKind::Conv2d;
    k_ = sp.kernel, stride_ = sp.stride, lo_h_ = L.pad_h.lo, lo_w_ = L.pad_w.lo;
    const Shape& small = conv ? L.out : L.in;
    const Shape& big = conv ? L.in : L.out;
    n_ = batch, cs_ = small[0], p_ = small[1], q_ = small[2];
    cb_ = big[0], hb_ = big[1], wb_ = big[2];
    rows_ = n_ * p_ * q_;
    const md_t s_md({n_, cs_, p_, q_}, dt::f32, tag::nhwc),
        b_md({n_, cb_, hb_, wb_}, dt::f32, tag::nhwc);
    from_ = adapt(c, from, scatter ? s_md : b_md, &from_reorder_, true);
    to_ = adapt(c, to, scatter ? b_md : s_md, &to_reorder_, false);
    // The weights tap after tap, each a (CS x CB) matrix, as a view of the layer's
    // (out, in, k, k) dims; re-laid-out from PyTorch's layout when they change.
    const int64_t ic = L.in[0], oc = sp.out, cc = cs_ * cb_;
    const memory::dims w_strides =
        conv ? memory::dims{cb_, 1, k_ * cc, cc} : memory::dims{1, cb_, k_ * cc, cc};
    wt_ = memory(md_t({oc, ic, k_, k_}, dt::f32, w_strides), c.eng);
    w_reorder_ = make_reorder(c, w_canon, wt_);
    auto* wt = static_cast<float*>(wt_.get_data_handle());
    const md_t rows_cs({rows_, cs_}, dt::f32, tag::ab), rows_cb({rows_, cb_}, dt::f32, tag::ab);
    col_ = memory(rows_cb, c.eng);
    const int64_t taps = k_ * k_;
    using dnnl::matmul;
    if (scatter) {
      // col = S W_t, then added into B.
      const md_t w_md({cs_, cb_}, dt::f32, tag::ab);
      for (int64_t t = 0; t < taps; ++t) w_taps_.push_back(memory(w_md, c.eng, wt + t * cc));
      mm_ = Prim(c, matmul::primitive_desc(c.eng, rows_cs, w_md, rows_cb, c.attr()));
      s_rows_ = memory(rows_cs, c.eng, from_.get_data_handle());
    } else {
      // S = G_0 W_0^T (+ bias), then S += G_t W_t^T.
      const md_t w_md({cb_, cs_}, dt::f32, memory::dims{1, cb_});
      for (int64_t t = 0; t < taps; ++t) w_taps_.push_back(memory(w_md, c.eng, wt + t * cc));
      const md_t bias_md = bias ? md_t({1, cs_}, dt::f32, tag::ab) : md_t();
      mm_ = Prim(c, matmul::primitive_desc(c.eng, rows_cb, w_md, bias_md, rows_cs, c.attr()));
      dnnl::primitive_attr acc = c.attr();
      dnnl::post_ops po;
      po.append_sum(1.f);
      acc.set_post_ops(po);
      mm_acc_ = Prim(c, matmul::primitive_desc(c.eng, rows_cb, w_md, rows_cs, acc));
      s_rows_ = memory(rows_cs, c.eng, to_.get_data_handle());
      if (bias) bias_mem_ = memory(bias_md, c.eng, const_cast<float*>(bias));
    }
    if (act) {
      act_ = fused_act_forward(c, act->spec, to_.get_desc());
      has_act_ = true;
    }
  }

  void run(dnnl::stream& s, uint64_t weights_version) override {
    if (weights_version != w_version_) {
      w_reorder_.run(s);
      w_version_ = weights_version;
    }
    if (from_reorder_) from_reorder_->run(s);
    s.wait();
    if (scatter_) {
      fill_bias();
      for (int64_t kh = 0; kh < k_; ++kh)
        for (int64_t kw = 0; kw < k_; ++kw) {
          mm_.run(s, {{DNNL_ARG_SRC, s_rows_},
                      {DNNL_ARG_WEIGHTS, w_taps_[static_cast<size_t>(kh * k_ + kw)]},
                      {DNNL_ARG_DST, col_}});
          s.wait();
          add_tap(kh, kw);
        }
    } else {
      for (int64_t kh = 0; kh < k_; ++kh)
        for (int64_t kw = 0; kw < k_; ++kw) {
          gather_tap(kh, kw);
          std::unordered_map<int, memory> args{
              {DNNL_ARG_SRC, col_},
              {DNNL_ARG_WEIGHTS, w_taps_[static_cast<size_t>(kh * k_ + kw)]},
              {DNNL_ARG_DST, s_rows_}};
          const bool first = kh == 0 && kw == 0;
          if (first && bias_) args[DNNL_ARG_BIAS] = bias_mem_;
          (first ? mm_ : mm_acc_).run(s, args);
          s.wait();
        }
    }
    if (has_act_) act_.run(s, {{DNNL_ARG_SRC, to_}, {DNNL_ARG_DST, to_}});
    if (to_reorder_) to_reorder_->run(s);
    s.wait();
  }

 private:
  // B's position for S's position m = (n, p, q) at tap (kh, kw), or -1 outside B.
  int64_t big_row(int64_t m, int64_t kh, int64_t kw) const {
    const int64_t q = m % q_, p = (m / q_) % p_, n = m / (q_ * p_);
    const int64_t h = p * stride_ - lo_h_ + kh, w = q * stride_ - lo_w_ + kw;
    if (h < 0 || h >= hb_ || w < 0 || w >= wb_) return -1;
    return (n * hb_ + h) * wb_ + w;
  }

  // B = the bias (or zero) everywhere.
  void fill_bias() {
    auto* b = static_cast<float*>(to_.get_data_handle());
    const int64_t positions = n_ * hb_ * wb_, CB = cb_;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < positions; ++r) {
      float* o = b + r * CB;
      if (bias_) {
        std::memcpy(o, bias_, static_cast<size_t>(CB) * sizeof(float));
      } else {
        std::fill_n(o, CB, 0.f);
      }
    }
  }

  // B[tap's position of m] += col[m]: one tap maps distinct m to distinct positions.
  void add_tap(int64_t kh, int64_t kw) {
    const auto* col = static_cast<const float*>(col_.get_data_handle());
    auto* b = static_cast<float*>(to_.get_data_handle());
    const int64_t CB = cb_;
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < rows_; ++m) {
      const int64_t r = big_row(m, kh, kw);
      if (r < 0) continue;
      float* o = b + r * CB;
      const float* src = col + m * CB;
#pragma omp simd
      for (int64_t c = 0; c < CB; ++c) o[c] += src[c];
    }
  }

  // col[m] = B[tap's position of m], zero outside B.
  void gather_tap(int64_t kh, int64_t kw) {
    const auto* b = static_cast<const float*>(from_.get_data_handle());
    auto* col = static_cast<float*>(col_.get_data_handle());
    const size_t row = static_cast<size_t>(cb_) * sizeof(float);
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < rows_; ++m) {
      const int64_t r = big_row(m, kh, kw);
      if (r < 0)
        std::memset(col + m * cb_, 0, row);
      else
        std::memcpy(col + m * cb_, b + r * cb_, row);
    }
  }

  bool scatter_;
  const float* bias_;
  int64_t k_ = 1, stride_ = 1, lo_h_ = 0, lo_w_ = 0;
  int64_t n_ = 0, cs_ = 0, p_ = 0, q_ = 0, cb_ = 0, hb_ = 0, wb_ = 0, rows_ = 0;
  memory from_, to_, wt_, col_, s_rows_, bias_mem_;
  std::vector<memory> w_taps_;
  std::optional<Reorder> from_reorder_, to_reorder_;
  Reorder w_reorder_;
  Prim mm_, mm_acc_, act_;
  bool has_act_ = false;
  uint64_t w_version_ = ~0ull;
};

}  // namespace

bool use_tap_conv(bool bf16, const ResolvedLayer& L, bool /*forward*/) {
  const LayerSpec& s = L.spec;
  if (s.kind != LayerKind::Conv2d && s.kind != LayerKind::ConvTranspose2d) return false;
  const std::string mode = taps_setting();
  if (bf16 || mode == "native" || use_winograd(bf16, L)) return false;
  const bool conv = s.kind == LayerKind::Conv2d;
  const Shape& small = conv ? L.out : L.in;
  const int64_t cs = conv ? s.out : L.in[0], cb = conv ? L.in[0] : s.out;
  // A 4x4 small side at stride 2, hundreds of channels on both sides.
  if (s.stride != 2 || small[1] * small[2] > 16 || std::min(cs, cb) < 256) return false;
  if (mode == "all") return true;
  // Measured with bench/bench_tap_conv.py (batch 64, 2 threads, Zen 4; native / taps):
  // - G3 (1024 -> 512): forward (a scatter) 1.22x on AVX-512, 1.35x on AVX2; backward-data (a
  //   gather) 0.81x on AVX-512 (oneDNN's forward-direction kernel is fast there), 1.29x on AVX2.
  // - D's 256 -> 512: 0.68x / 1.02x (forward / backward-data) on AVX-512, 0.98x / 1.07x on AVX2.
  // Whole dcgan64 steps, taps against native in one process (10 alternating rounds): 1.048x on
  // AVX2 with both of G3's passes; 0.993x on AVX-512 with its forward alone (the reorders to and
  // from NHWC and the adds eat the product's gain). So: AVX2, at least 512 channels on both
  // sides, both passes.
  if (std::min(cs, cb) < 512) return false;
  using I = dnnl::cpu_isa;
  const I isa = dnnl::get_effective_cpu_isa();
  return isa == I::avx2 || isa == I::avx2_vnni || isa == I::avx2_vnni_2;
}

bool use_tap_conv(const Ctx& c, const ResolvedLayer& L, bool forward) {
  return use_tap_conv(c.act == dt::bf16, L, forward);
}

std::unique_ptr<ThinScatter> make_tap_conv(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                           bool forward, const memory& from, const memory& w_canon,
                                           const float* bias, const ResolvedLayer* act,
                                           const memory& to) {
  const bool conv = L.spec.kind == LayerKind::Conv2d;
  return std::make_unique<TapConv>(c, L, batch, forward != conv, from, w_canon, bias, act, to);
}

}  // namespace dcgan::cpu
