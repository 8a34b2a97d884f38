// Backward-weights of Conv2d and ConvTranspose2d as matrix products on oneDNN matmul, one per
// kernel tap, for the layers where oneDNN's direct backward-weights kernel is slow: small
// images with many channels (oneDNN 3.2's kernel ran dcgan64 G's 1024->512 layer on 4x4 inputs
// at a third of its forward speed).
//
// Both layers' weight gradient pairs a "small" tensor S with positions (n, p, q) and channels
// CS and a "big" tensor B (channels CB): for kernel tap (kh, kw),
//   R[cs, kh, kw, cb] = sum over (n, p, q) of S[n, p, q, cs] * B[n, p*s - lo + kh, q*s - lo + kw,
//   cb]
// (B zero outside). Conv2d: S = dy, B = x, R = dW as (out, kh, kw, in). ConvTranspose2d: S = x,
// B = dy, R = dW as (in, kh, kw, out). Per tap: the rows of B each position reads are gathered
// into a (positions x CB) matrix, and R's tap slice = S^T (CS x positions) x that matrix (S^T
// reordered once from NHWC S). R is then reordered into PyTorch's layout.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// DCGAN_CPU_BWDW: "auto" (unset: the rule below), "gemm" (every eligible layer) or "native"
// (oneDNN's own kernel everywhere), read when a network is compiled.
std::string bwdw_setting() {
  return cpu_path_setting("DCGAN_CPU_BWDW", {"auto", "gemm", "native"});
}

// Where the matrix products beat oneDNN 3.2's direct kernels, measured layer by layer with
// bench/bench_bwd_weights.py at batch 64, 5-7 rounds (bench/RESULTS.md, issue 13). The
// precisions and ISAs differ: oneDNN's bf16 backward-weights kernels gain less over fp32 than
// its matrix product does, and its AVX2 fp32 kernels less than its AVX-512 ones.
// - bf16: at most 4x4 positions on the small side, or 8x8 with a stride of 2 (1.03-3.1x
//   faster); stride 1 and 16x16 stay native (0.7-0.9x).
// - fp32 on AVX-512: at most 2x2 positions (1.07x), or 4x4 with at least 512 channels on both
//   sides (dcgan64 G's 1024->512 layer: 2.3x); 4x4 with 256 channels and every 8x8 layer ran
//   at 0.94-0.98x, larger images and stride 1 at 0.66-0.86x.
// - fp32 on AVX2 (oneDNN limited to AVX2): at most 2x2 positions, or 8x8 with a stride of 2
//   (1.02-2.6x on 7 of the 8 such layers, 0.98x on the eighth); stride 1 at 7x7 and 8x8 stays
//   native (0.74-1.03x), and so do 16x16 layers (0.99-1.02x).
bool gemm_weights_rule(bool bf16, const ResolvedLayer& L) {
  const bool conv = L.spec.kind == LayerKind::Conv2d;
  const Shape& small = conv ? L.out : L.in;
  const int64_t positions = small[1] * small[2];
  const int64_t channels = std::min(L.in[0], L.spec.out);
  const bool stride2 = L.spec.stride >= 2;
  if (bf16) return positions <= 16 || (positions <= 64 && stride2);
  using I = dnnl::cpu_isa;
  const I isa = dnnl::get_effective_cpu_isa();
  if (isa == I::avx2 || isa == I::avx2_vnni || isa == I::avx2_vnni_2)
    return positions <= 4 || (positions <= 64 && stride2);
  return positions <= 4 || (positions <= 16 && channels >= 512);
}

class TapGemmWeights : public GemmWeights {
 public:
  TapGemmWeights(Ctx& c, const ResolvedLayer& L, int64_t batch, const memory& src,
                 const memory& d_dst)
      : L_(L) {
    const LayerSpec& s = L.spec;
    const bool conv = s.kind == LayerKind::Conv2d;
    const dt act = c.act;
    esize_ = memory::data_type_size(act);
    k_ = s.kernel, stride_ = s.stride, lo_h_ = L.pad_h.lo, lo_w_ = L.pad_w.lo;
    const int64_t ic = L.in[0], oc = s.out;
    const memory::dims x_dims = {batch, ic, L.in[1], L.in[2]},
                       y_dims = {batch, oc, L.out[1], L.out[2]};
    x_ = adapt(c, src, md_t(x_dims, act, tag::nhwc), &x_reorder_, true);
    dy_ = adapt(c, d_dst, md_t(y_dims, act, tag::nhwc), &dy_reorder_, true);
    const memory::dims& s_dims = conv ? y_dims : x_dims;
    const memory::dims& b_dims = conv ? x_dims : y_dims;
    n_ = batch, cs_ = s_dims[1], p_ = s_dims[2], q_ = s_dims[3];
    cb_ = b_dims[1], hb_ = b_dims[2], wb_ = b_dims[3];
    rows_ = n_ * p_ * q_;
    small_ = conv ? &dy_ : &x_;
    big_ = conv ? &x_ : &dy_;
    bias_from_ = &dy_;  // the bias gradient sums dy over positions, in both layers
    col_ = memory(md_t({rows_, cb_}, act, tag::ab), c.eng);
    // R (f32): tap after tap, each a (CS x CB) matrix, as the layer's (out, in, k, k) dims.
    const int64_t kk = k_ * k_;
    const memory::dims w_dims = {oc, ic, k_, k_};
    const memory::dims r_strides = conv ? memory::dims{ic, 1, k_ * oc * ic, oc * ic}
                                        : memory::dims{1, oc, k_ * ic * oc, ic * oc};
    r_ = memory(md_t(w_dims, dt::f32, r_strides), c.eng);
    // S^T (CS x rows), contiguous: plain operands let oneDNN pick its brgemm matmul, which
    // packs through the scratchpad (its sgemm-based one allocates on every call).
    const md_t s_rows({rows_, cs_}, act, tag::ab), s_cols({rows_, cs_}, act, tag::ba);
    st_ = memory(s_cols, c.eng);
    transpose_ = make_reorder(c, memory(s_rows, c.eng, small_->get_data_handle()), st_);
    // One tap's product: S^T (CS x rows) x col (rows x CB) -> R's tap slice (CS x CB).
    const md_t a_md({cs_, rows_}, act, tag::ab);
    const md_t b_md({rows_, cb_}, act, tag::ab);
    const md_t c_md({cs_, cb_}, dt::f32, tag::ab);
    mm_ = Prim(c, dnnl::matmul::primitive_desc(c.eng, a_md, b_md, c_md, c.attr()));
    a_ = memory(a_md, c.eng, st_.get_data_handle());
    auto* r = static_cast<float*>(r_.get_data_handle());
    for (int64_t t = 0; t < kk; ++t) taps_.push_back(memory(c_md, c.eng, r + t * cs_ * cb_));
    w_canon_md_ = md_t(w_dims, dt::f32, conv ? tag::oihw : tag::iohw);
    to_canon_ = Prim(c, dnnl::reorder::primitive_desc(r_, memory(w_canon_md_, c.eng), c.attr()));
  }

  void run(dnnl::stream& s, const memory& dw_canon, float* db) override {
    if (x_reorder_) x_reorder_->run(s);
    if (dy_reorder_) dy_reorder_->run(s);
    transpose_.run(s);
    s.wait();
    for (int64_t kh = 0; kh < k_; ++kh)
      for (int64_t kw = 0; kw < k_; ++kw) {
        gather(kh, kw);
        mm_.run(s, {{DNNL_ARG_SRC, a_},
                    {DNNL_ARG_WEIGHTS, col_},
                    {DNNL_ARG_DST, taps_[static_cast<size_t>(kh * k_ + kw)]}});
      }
    to_canon_.run(s, {{DNNL_ARG_FROM, r_}, {DNNL_ARG_TO, dw_canon}});
    if (db) bias(db);
    s.wait();
  }

 private:
  // col[(n, p, q), :] = B[n, p*s - lo_h + kh, q*s - lo_w + kw, :], zero outside B.
  void gather(int64_t kh, int64_t kw) {
    const auto* b = static_cast<const char*>(big_->get_data_handle());
    auto* col = static_cast<char*>(col_.get_data_handle());
    const size_t row = static_cast<size_t>(cb_) * esize_;
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < rows_; ++m) {
      const int64_t q = m % q_, p = (m / q_) % p_, n = m / (q_ * p_);
      const int64_t h = p * stride_ - lo_h_ + kh, w = q * stride_ - lo_w_ + kw;
      char* dst = col + static_cast<size_t>(m) * row;
      if (h >= 0 && h < hb_ && w >= 0 && w < wb_)
        std::memcpy(dst, b + static_cast<size_t>((n * hb_ + h) * wb_ + w) * row, row);
      else
        std::memset(dst, 0, row);
    }
  }

  // db[c] = sum over every position of dy[., c], in a fixed order (16 blocks of positions,
  // then the blocks in turn): the same result for any thread count.
  void bias(float* db) {
    const md_t d = bias_from_->get_desc();
    const int64_t ch = d.get_dims()[1];
    const int64_t rows = d.get_dims()[0] * d.get_dims()[2] * d.get_dims()[3];
    constexpr int64_t kBlocks = 16;
    partial_.assign(static_cast<size_t>(kBlocks * ch), 0.0);
    const bool bf16 = esize_ == 2;
    const void* base = bias_from_->get_data_handle();
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < kBlocks; ++blk) {
      double* acc = partial_.data() + blk * ch;
      for (int64_t m = rows * blk / kBlocks; m < rows * (blk + 1) / kBlocks; ++m)
        for (int64_t c = 0; c < ch; ++c)
          acc[c] += bf16 ? bf16_to_f32(static_cast<const uint16_t*>(base)[m * ch + c])
                         : static_cast<const float*>(base)[m * ch + c];
    }
    for (int64_t c = 0; c < ch; ++c) {
      double t = 0;
      for (int64_t blk = 0; blk < kBlocks; ++blk) t += partial_[blk * ch + c];
      db[c] = static_cast<float>(t);
    }
  }

  const ResolvedLayer& L_;
  size_t esize_ = 4;
  int64_t k_ = 1, stride_ = 1, lo_h_ = 0, lo_w_ = 0;
  int64_t n_ = 0, cs_ = 0, p_ = 0, q_ = 0, cb_ = 0, hb_ = 0, wb_ = 0, rows_ = 0;
  memory x_, dy_, col_, r_, a_, st_;
  Reorder transpose_;
  const memory *small_ = nullptr, *big_ = nullptr, *bias_from_ = nullptr;
  std::optional<Reorder> x_reorder_, dy_reorder_;
  std::vector<memory> taps_;
  md_t w_canon_md_;
  Prim mm_, to_canon_;
  std::vector<double> partial_;
};

}  // namespace

bool use_gemm_weights(bool bf16, const ResolvedLayer& L) {
  const LayerSpec& s = L.spec;
  if (s.kind != LayerKind::Conv2d && s.kind != LayerKind::ConvTranspose2d) return false;
  const std::string mode = bwdw_setting();
  if (mode == "native") return false;
  if (mode == "auto" && use_winograd(bf16, L)) return false;  // the Winograd layer's own
  const bool conv = s.kind == LayerKind::Conv2d;
  const int64_t ic = L.in[0], oc = s.out;
  const int64_t cs = conv ? oc : ic, cb = conv ? ic : oc;
  // Both matrix sides need enough channels for a matrix product to beat the direct kernel.
  if (cs < 16 || cb < 16) return false;
  return mode == "gemm" || gemm_weights_rule(bf16, L);
}

bool use_winograd_weights(bool bf16, const ResolvedLayer& L) {
  return bwdw_setting() == "auto" && use_winograd(bf16, L);
}

bool use_gemm_weights(const Ctx& c, const ResolvedLayer& L) {
  return use_gemm_weights(c.act == dt::bf16, L);
}

std::unique_ptr<GemmWeights> make_gemm_weights(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                               const memory& src, const memory& d_dst) {
  return std::make_unique<TapGemmWeights>(c, L, batch, src, d_dst);
}

}  // namespace dcgan::cpu
