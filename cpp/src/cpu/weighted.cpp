// Dense, Conv2d and ConvTranspose2d on oneDNN: forward, backward-data, backward-weights.
#include <cstring>
#include <unordered_map>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// Dense, Conv2d and ConvTranspose2d: src x weights (+ bias) -> dst, with backward data and
// backward weights. They differ only in how their primitive descriptors are made.
//
// With `act` (the activation layer that follows, fused by the network), the forward applies it
// as a post-op on the accumulator (one pass over the output instead of two) and the backward
// first turns the gradient of the activation's output into that of the layer's output, in
// place, from the output itself (the *_use_dst_for_bwd algorithms), as the eltwise layer did.
class WeightedLayer : public Layer {
 public:
  WeightedLayer(Ctx& c, const ResolvedLayer& L, HostParams& ps, int64_t batch,
                const ResolvedLayer* act, bool channels_last)
      : c_(c), L_(L), ps_(ps), batch_(batch), act_(act), channels_last_(channels_last) {}
  bool has_params() const override { return true; }

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    in_ = in;
    d_in_ = d_in;
    const LayerSpec& s = L_.spec;
    const bool has_bias = s.bias;
    const ParamSpec& wp = L_.params[0];
    md_t w_canon;
    memory::dims w_dims;
    md_t any_src, any_dst, any_w;
    const dt act = c.act;  // f32, or bf16 in bf16 training
    if (s.kind == LayerKind::Dense) {
      w_dims = {s.out, L_.in[0]};
      w_canon = md_t(w_dims, dt::f32, tag::oi);
      any_src = plain_md(batch_, L_.in, act);
      any_dst = plain_md(batch_, L_.out, act);
    } else {
      const int64_t ic = L_.in[0], oc = s.out;
      w_dims = {oc, ic, s.kernel, s.kernel};
      // PyTorch layouts: Conv2d (out, in, k, k); ConvTranspose2d (in, out, k, k).
      w_canon = md_t(w_dims, dt::f32, s.kind == LayerKind::Conv2d ? tag::oihw : tag::iohw);
      // Channels-last where the network chose it (net.cpp), else oneDNN's choice.
      const tag t = channels_last_ ? tag::nhwc : tag::any;
      any_src = md_t({batch_, ic, L_.in[1], L_.in[2]}, act, t);
      any_dst = md_t({batch_, oc, L_.out[1], L_.out[2]}, act, t);
    }
    // Weights as the forward and backward-data read them (bf16 copies of the f32 master
    // weights in bf16 training); their gradients are always f32.
    any_w = md_t(w_dims, act, tag::any);
    const md_t any_dw(w_dims, dt::f32, tag::any);
    const md_t b_md = has_bias ? md_t({s.out}, dt::f32, tag::a) : md_t();
    const memory::dims strides = {s.stride, s.stride};
    const memory::dims pl = {L_.pad_h.lo, L_.pad_w.lo}, pr = {L_.pad_h.hi, L_.pad_w.hi};

    using namespace dnnl;
    const auto P = prop_kind::forward_training;
    primitive_attr attr = c.attr();
    if (act_) {
      post_ops po;
      const FusedEltwise e = fused_eltwise(act_->spec);
      po.append_eltwise(e.forward, e.alpha, 0.f);
      attr.set_post_ops(po);
    }
    // Winograd convolutions (winograd.cpp: stride-2 layers through their phase images, 'same'
    // stride-1 layers) on NHWC activations: forward and backward-data, and backward-weights
    // unless DCGAN_CPU_BWDW names another path. oneDNN's forward and backward-data primitives
    // are still created (their memory descs shape the layer's buffers) but never run.
    const bool wino = use_winograd(c, L_);
    wino_w_ = wino && use_winograd_weights(c.act == dt::bf16, L_);
    if (wino) {
      any_src = md_t({batch_, L_.in[0], L_.in[1], L_.in[2]}, act, tag::nhwc);
      any_dst = md_t({batch_, s.out, L_.out[1], L_.out[2]}, act, tag::nhwc);
    }
    // Backward-weights as matrix products where those are faster (gemm_weights.cpp): then
    // oneDNN's backward-weights primitive is never created.
    const bool gemm = use_gemm_weights(c, L_);
    // A ConvTranspose2d's forward or a Conv2d's backward-data into a few channels as a matrix
    // product (thin_conv.cpp); such a ConvTranspose2d's output is then NHWC.
    const bool thin = use_thin_scatter(L_);
    if (thin && s.kind == LayerKind::ConvTranspose2d)
      any_dst = md_t({batch_, s.out, L_.out[1], L_.out[2]}, act, tag::nhwc);
    switch (s.kind) {
      case LayerKind::Dense: {
        inner_product_forward::primitive_desc f(c.eng, P, any_src, any_w, b_md, any_dst, attr);
        inner_product_backward_data::primitive_desc bd(c.eng, any_src, any_w, any_dst, f, c.attr());
        set_pds(c, f, bd);
        set_bw_pd(c, inner_product_backward_weights::primitive_desc(c.eng, any_src, any_dw, b_md,
                                                                    any_dst, f, c.attr()));
        break;
      }
      case LayerKind::Conv2d: {
        const auto A = algorithm::convolution_direct;
        convolution_forward::primitive_desc f(c.eng, P, A, any_src, any_w, b_md, any_dst, strides,
                                              pl, pr, attr);
        convolution_backward_data::primitive_desc bd(c.eng, A, any_src, any_w, any_dst, strides, pl,
                                                     pr, f, c.attr());
        set_pds(c, f, bd);
        if (!gemm && !wino_w_)
          set_bw_pd(c, convolution_backward_weights::primitive_desc(
                           c.eng, A, any_src, any_dw, b_md, any_dst, strides, pl, pr, f, c.attr()));
        break;
      }
      default: {
        const auto A = algorithm::deconvolution_direct;
        deconvolution_forward::primitive_desc f(c.eng, P, A, any_src, any_w, b_md, any_dst, strides,
                                                pl, pr, attr);
        deconvolution_backward_data::primitive_desc bd(c.eng, A, any_src, any_w, any_dst, strides,
                                                       pl, pr, f, c.attr());
        set_pds(c, f, bd);
        if (!gemm && !wino_w_)
          set_bw_pd(c, deconvolution_backward_weights::primitive_desc(
                           c.eng, A, any_src, any_dw, b_md, any_dst, strides, pl, pr, f, c.attr()));
        break;
      }
    }

    // Forward operands.
    src_ = adapt(c, in_, fwd_src_md_, &src_reorder_, true);
    w_canon_ = memory(w_canon, c.eng, ps_.params() + wp.offset);
    w_fwd_ = adapt(c, w_canon_, fwd_w_md_, &w_fwd_reorder_, true);
    if (has_bias) b_ = memory(b_md, c.eng, ps_.params() + L_.params[1].offset);
    out = memory(fwd_dst_md_, c.eng);
    d_out = memory(fwd_dst_md_, c.eng);
    if (act_) {
      const FusedEltwise e = fused_eltwise(act_->spec);
      eltwise_forward::primitive_desc hint(c.eng, P, e.backward, fwd_dst_md_, fwd_dst_md_, e.alpha,
                                           0.f);
      act_bwd_ =
          Prim(c, eltwise_backward::primitive_desc(c.eng, e.backward, fwd_dst_md_, fwd_dst_md_,
                                                   fwd_dst_md_, e.alpha, 0.f, hint, c.attr()));
    }
    if (thin && s.kind == LayerKind::ConvTranspose2d)
      thin_fwd_ = make_thin_scatter(
          c, L_, batch_, src_, w_canon_,
          has_bias ? static_cast<const float*>(b_.get_data_handle()) : nullptr, act_, out);
    if (thin && s.kind == LayerKind::Conv2d)
      thin_bd_ = make_thin_scatter(c, L_, batch_, d_out, w_canon_, nullptr, nullptr, d_in_);
    // Backward-data operands.
    dd_bd_ = adapt(c, d_out, bd_dst_md_, &dd_bd_reorder_, true);
    w_bd_ = bd_w_md_ == fwd_w_md_ ? w_fwd_ : adapt(c, w_canon_, bd_w_md_, &w_bd_reorder_, true);
    ds_ = adapt(c, d_in_, bd_src_md_, &ds_reorder_, false);
    if (wino) {
      wino_ = make_winograd(c, L_, batch_, src_, out, d_out, ds_, w_canon_,
                            has_bias ? static_cast<const float*>(b_.get_data_handle()) : nullptr,
                            act_, ps_.grad_slots == 1);
    }
    if (wino_w_) {
      for (int slot = 0; slot < ps_.grad_slots; ++slot)
        dw_canon_[slot] = memory(w_canon, c.eng, ps_.grad(slot) + wp.offset);
      return;
    }
    // Backward-weights.
    if (gemm) {
      gemm_w_ = make_gemm_weights(c, L_, batch_, src_, d_out);
      for (int slot = 0; slot < ps_.grad_slots; ++slot)
        dw_canon_[slot] = memory(w_canon, c.eng, ps_.grad(slot) + wp.offset);
      return;
    }
    bwd_w_ = Prim(c, bw_pd_);
    // Backward-weights operands.
    src_bw_ = adapt(c, src_, bw_src_md_, &src_bw_reorder_, true);
    dd_bw_ = bw_dst_md_ == bd_dst_md_ ? dd_bd_ : adapt(c, d_out, bw_dst_md_, &dd_bw_reorder_, true);
    // Weight gradients in the primitive's layout, when it is not PyTorch's, go through one
    // buffer shared by both slots and are reordered into the slot's canonical array.
    for (int slot = 0; slot < ps_.grad_slots; ++slot) {
      dw_canon_[slot] = memory(w_canon, c.eng, ps_.grad(slot) + wp.offset);
      if (slot == 0) {
        dw_ = adapt(c, dw_canon_[0], bw_w_md_, &dw_reorder_[0], false);
      } else if (dw_reorder_[0]) {
        dw_reorder_[slot] = make_reorder(c, dw_, dw_canon_[slot]);
      }
      if (has_bias) db_[slot] = memory(b_md, c.eng, ps_.grad(slot) + L_.params[1].offset);
    }
    if (has_bias) db_scratch_ = memory(b_md, c.eng);
  }

  void forward(bool training, Counter) override {
    auto& s = c_.strm;
    if (src_reorder_) src_reorder_->run(s);
    if (wino_) {
      wino_->forward(s, ps_.version());
      return;
    }
    refresh_w_fwd(s);
    if (thin_fwd_) {
      thin_fwd_->run(s, ps_.version());
      return;
    }
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, w_fwd_}, {DNNL_ARG_DST, out}};
    if (L_.spec.bias) args[DNNL_ARG_BIAS] = b_;
    fwd_.run(s, args);
  }

  void backward(bool need_d_in, int slot) override {
    auto& s = c_.strm;
    if (act_)  // d_out: from the activation's output gradient to this layer's, in place
      act_bwd_.run(s,
                   {{DNNL_ARG_DST, out}, {DNNL_ARG_DIFF_DST, d_out}, {DNNL_ARG_DIFF_SRC, d_out}});
    if (dd_bd_reorder_) dd_bd_reorder_->run(s);
    if (wino_) {
      const bool w = slot >= 0 && wino_w_;
      if (need_d_in || w)
        wino_->backward(s, ps_.version(), need_d_in, w ? &dw_canon_[slot] : nullptr,
                        w && L_.spec.bias ? ps_.grad(slot) + L_.params[1].offset : nullptr);
      if (need_d_in && ds_reorder_) ds_reorder_->run(s);
      if (wino_w_) return;
    } else if (need_d_in && thin_bd_) {
      thin_bd_->run(s, ps_.version());
    } else if (need_d_in) {
      if (w_bd_reorder_ && w_bd_version_ != ps_.version()) {
        w_bd_reorder_->run(s);
        w_bd_version_ = ps_.version();
      } else if (!w_bd_reorder_) {
        refresh_w_fwd(s);  // backward-data reads the forward's weights
      }
      bwd_d_.run(
          s, {{DNNL_ARG_DIFF_DST, dd_bd_}, {DNNL_ARG_WEIGHTS, w_bd_}, {DNNL_ARG_DIFF_SRC, ds_}});
      if (ds_reorder_) ds_reorder_->run(s);
    }
    if (slot >= 0 && gemm_w_) {
      gemm_w_->run(s, dw_canon_[slot],
                   L_.spec.bias ? ps_.grad(slot) + L_.params[1].offset : nullptr);
    } else if (slot >= 0) {
      if (src_bw_reorder_) src_bw_reorder_->run(s);
      if (dd_bw_reorder_) dd_bw_reorder_->run(s);
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, src_bw_},
          {DNNL_ARG_DIFF_DST, dd_bw_},
          {DNNL_ARG_DIFF_WEIGHTS, dw_reorder_[0] ? dw_ : dw_canon_[slot]}};
      if (L_.spec.bias) args[DNNL_ARG_DIFF_BIAS] = db_[slot];
      bwd_w_.run(s, args);
      if (dw_reorder_[slot]) dw_reorder_[slot]->run(s);
    }
  }

 private:
  // The forward primitive's weights, re-laid-out from the canonical ones once per update.
  void refresh_w_fwd(dnnl::stream& s) {
    if (w_version_ == ps_.version()) return;
    if (w_fwd_reorder_) w_fwd_reorder_->run(s);
    w_version_ = ps_.version();
  }

  template <class F, class BD>
  void set_pds(Ctx& c, const F& f, const BD& bd) {
    fwd_ = Prim(c, f), bwd_d_ = Prim(c, bd);
    fwd_src_md_ = f.src_desc(), fwd_w_md_ = f.weights_desc(), fwd_dst_md_ = f.dst_desc();
    bd_src_md_ = bd.diff_src_desc(), bd_w_md_ = bd.weights_desc(), bd_dst_md_ = bd.diff_dst_desc();
  }
  template <class BW>
  void set_bw_pd(Ctx&, const BW& bw) {
    bw_pd_ = bw;  // (its primitive and scratchpad are made in build(), after the operands)
    bw_src_md_ = bw.src_desc(), bw_w_md_ = bw.diff_weights_desc(), bw_dst_md_ = bw.diff_dst_desc();
  }

  Ctx& c_;
  const ResolvedLayer& L_;
  HostParams& ps_;
  int64_t batch_;
  const ResolvedLayer* act_;             // a fused activation, or nullptr
  bool channels_last_;                   // conv activations in NHWC rather than oneDNN's choice
  std::unique_ptr<GemmWeights> gemm_w_;  // backward-weights as matrix products, or nullptr
  // A ConvTranspose2d's forward, or a Conv2d's backward-data, as a matrix product, or nullptr.
  std::unique_ptr<ThinScatter> thin_fwd_, thin_bd_;
  std::unique_ptr<WinoConv> wino_;  // forward and backward-data as Winograd convolutions, or null
  bool wino_w_ = false;             // and backward-weights
  Prim fwd_, bwd_d_, bwd_w_, act_bwd_;
  dnnl::primitive_desc bw_pd_;
  md_t fwd_src_md_, fwd_w_md_, fwd_dst_md_, bd_src_md_, bd_w_md_, bd_dst_md_, bw_src_md_, bw_w_md_,
      bw_dst_md_;
  memory src_, w_canon_, w_fwd_, b_, dd_bd_, w_bd_, ds_, src_bw_, dd_bw_, db_scratch_;
  memory dw_canon_[2], dw_, db_[2];
  std::optional<Reorder> src_reorder_, w_fwd_reorder_, dd_bd_reorder_, w_bd_reorder_, ds_reorder_,
      src_bw_reorder_, dd_bw_reorder_, dw_reorder_[2];
  uint64_t w_version_ = ~0ull, w_bd_version_ = ~0ull;
};

}  // namespace

std::unique_ptr<Layer> make_weighted_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                           int64_t batch, const ResolvedLayer* act,
                                           bool channels_last) {
  return std::make_unique<WeightedLayer>(c, L, ps, batch, act, channels_last);
}

}  // namespace dcgan::cpu
