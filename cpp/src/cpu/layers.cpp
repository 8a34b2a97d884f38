// Every layer's forward and backward on oneDNN primitives, and the network that chains them.
//
// Primitives are created once per (layer, batch size). Convolutions pick their own memory
// formats (format_tag::any, usually channel-blocked); layers that do not care (BN, eltwise,
// dropout) keep whatever format they are given, so activations stay blocked between
// convolutions and reorders happen only where a layer needs another layout: the network's
// plain NCHW edges, reshape/flatten, and weights (kept in PyTorch layout in the flat
// parameter buffer, reordered into the primitive's layout once per parameter update).
#include <omp.h>

#include <cstring>
#include <optional>

#include "core/rng.hpp"
#include "cpu/cpu_backend.hpp"

namespace dcgan::cpu {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using md_t = memory::desc;

md_t plain_md(int64_t batch, const Shape& s) {
  if (s.size() == 1) return md_t({batch, s[0]}, dt::f32, tag::nc);
  return md_t({batch, s[0], s[1], s[2]}, dt::f32, tag::nchw);
}

int64_t phys_floats(const memory& m) {
  return static_cast<int64_t>(m.get_desc().get_size() / sizeof(float));
}

// A reorder between two memories, created once.
struct Reorder {
  dnnl::reorder prim;
  memory src, dst;
  void run(dnnl::stream& s) { prim.execute(s, src, dst); }
};

// `have` itself if it already has desc `want`, else a new memory of `want`; in that case
// `*conv` receives the reorder have->new (to_want) or new->have (!to_want).
memory adapt(Ctx& c, const memory& have, const md_t& want, std::optional<Reorder>* conv,
             bool to_want) {
  if (have.get_desc() == want) return have;
  memory m(want, c.eng);
  if (to_want)
    *conv = Reorder{dnnl::reorder(have, m), have, m};
  else
    *conv = Reorder{dnnl::reorder(m, have), m, have};
  return m;
}

class Layer {
 public:
  virtual ~Layer() = default;
  // Creates primitives and the output memories for input memories `in` / `d_in`.
  virtual void build(Ctx& c, const memory& in, const memory& d_in) = 0;
  virtual void forward(bool training, uint64_t ctr) = 0;
  virtual void backward(bool need_d_in, int slot) = 0;
  virtual bool has_params() const { return false; }
  memory out, d_out;

 protected:
  memory in_, d_in_;
};

// ---------------------------------------------------------------------------------------------
// Dense, Conv2d and ConvTranspose2d: src x weights (+ bias) -> dst, with backward data and
// backward weights. They differ only in how their primitive descriptors are made.
class WeightedLayer : public Layer {
 public:
  WeightedLayer(Ctx& c, const ResolvedLayer& L, ParamStore& ps, int64_t batch)
      : c_(c), L_(L), ps_(ps), batch_(batch) {}
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
    if (s.kind == LayerKind::Dense) {
      w_dims = {s.out, L_.in[0]};
      w_canon = md_t(w_dims, dt::f32, tag::oi);
      any_src = plain_md(batch_, L_.in);
      any_dst = plain_md(batch_, L_.out);
    } else {
      const int64_t ic = L_.in[0], oc = s.out;
      w_dims = {oc, ic, s.kernel, s.kernel};
      // PyTorch layouts: Conv2d (out, in, k, k); ConvTranspose2d (in, out, k, k).
      w_canon = md_t(w_dims, dt::f32, s.kind == LayerKind::Conv2d ? tag::oihw : tag::iohw);
      any_src = md_t({batch_, ic, L_.in[1], L_.in[2]}, dt::f32, tag::any);
      any_dst = md_t({batch_, oc, L_.out[1], L_.out[2]}, dt::f32, tag::any);
    }
    any_w = md_t(w_dims, dt::f32, tag::any);
    const md_t b_md = has_bias ? md_t({s.out}, dt::f32, tag::a) : md_t();
    const memory::dims strides = {s.stride, s.stride};
    const memory::dims pl = {L_.pad_h.lo, L_.pad_w.lo}, pr = {L_.pad_h.hi, L_.pad_w.hi};

    using namespace dnnl;
    const auto P = prop_kind::forward_training;
    switch (s.kind) {
      case LayerKind::Dense: {
        inner_product_forward::primitive_desc f(c.eng, P, any_src, any_w, b_md, any_dst);
        inner_product_backward_data::primitive_desc bd(c.eng, any_src, any_w, any_dst, f);
        inner_product_backward_weights::primitive_desc bw(c.eng, any_src, any_w, b_md, any_dst, f);
        fwd_ = inner_product_forward(f), bwd_d_ = inner_product_backward_data(bd);
        bwd_w_ = inner_product_backward_weights(bw);
        set_mds(f, bd, bw);
        break;
      }
      case LayerKind::Conv2d: {
        const auto A = algorithm::convolution_direct;
        convolution_forward::primitive_desc f(c.eng, P, A, any_src, any_w, b_md, any_dst, strides,
                                              pl, pr);
        convolution_backward_data::primitive_desc bd(c.eng, A, any_src, any_w, any_dst, strides, pl,
                                                     pr, f);
        convolution_backward_weights::primitive_desc bw(c.eng, A, any_src, any_w, b_md, any_dst,
                                                        strides, pl, pr, f);
        fwd_ = convolution_forward(f), bwd_d_ = convolution_backward_data(bd);
        bwd_w_ = convolution_backward_weights(bw);
        set_mds(f, bd, bw);
        break;
      }
      default: {
        const auto A = algorithm::deconvolution_direct;
        deconvolution_forward::primitive_desc f(c.eng, P, A, any_src, any_w, b_md, any_dst, strides,
                                                pl, pr);
        deconvolution_backward_data::primitive_desc bd(c.eng, A, any_src, any_w, any_dst, strides,
                                                       pl, pr, f);
        deconvolution_backward_weights::primitive_desc bw(c.eng, A, any_src, any_w, b_md, any_dst,
                                                          strides, pl, pr, f);
        fwd_ = deconvolution_forward(f), bwd_d_ = deconvolution_backward_data(bd);
        bwd_w_ = deconvolution_backward_weights(bw);
        set_mds(f, bd, bw);
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
    // Backward-data operands.
    dd_bd_ = adapt(c, d_out, bd_dst_md_, &dd_bd_reorder_, true);
    w_bd_ = bd_w_md_ == fwd_w_md_ ? w_fwd_ : adapt(c, w_canon_, bd_w_md_, &w_bd_reorder_, true);
    ds_ = adapt(c, d_in_, bd_src_md_, &ds_reorder_, false);
    // Backward-weights operands.
    src_bw_ = adapt(c, src_, bw_src_md_, &src_bw_reorder_, true);
    dd_bw_ = bw_dst_md_ == bd_dst_md_ ? dd_bd_ : adapt(c, d_out, bw_dst_md_, &dd_bw_reorder_, true);
    for (int slot = 0; slot < 2; ++slot) {
      dw_canon_[slot] = memory(w_canon, c.eng, ps_.grad(slot) + wp.offset);
      dw_[slot] = adapt(c, dw_canon_[slot], bw_w_md_, &dw_reorder_[slot], false);
      if (has_bias) db_[slot] = memory(b_md, c.eng, ps_.grad(slot) + L_.params[1].offset);
    }
    if (has_bias) db_scratch_ = memory(b_md, c.eng);
  }

  void forward(bool training, uint64_t) override {
    auto& s = c_.strm;
    if (src_reorder_) src_reorder_->run(s);
    if (w_version_ != ps_.version) {
      if (w_fwd_reorder_) w_fwd_reorder_->run(s);
      w_version_ = ps_.version;
    }
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, w_fwd_}, {DNNL_ARG_DST, out}};
    if (L_.spec.bias) args[DNNL_ARG_BIAS] = b_;
    fwd_.execute(s, args);
  }

  void backward(bool need_d_in, int slot) override {
    auto& s = c_.strm;
    if (dd_bd_reorder_) dd_bd_reorder_->run(s);
    if (need_d_in) {
      if (w_bd_reorder_ && w_bd_version_ != ps_.version) {
        w_bd_reorder_->run(s);
        w_bd_version_ = ps_.version;
      }
      bwd_d_.execute(
          s, {{DNNL_ARG_DIFF_DST, dd_bd_}, {DNNL_ARG_WEIGHTS, w_bd_}, {DNNL_ARG_DIFF_SRC, ds_}});
      if (ds_reorder_) ds_reorder_->run(s);
    }
    if (slot >= 0) {
      if (src_bw_reorder_) src_bw_reorder_->run(s);
      if (dd_bw_reorder_) dd_bw_reorder_->run(s);
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, src_bw_}, {DNNL_ARG_DIFF_DST, dd_bw_}, {DNNL_ARG_DIFF_WEIGHTS, dw_[slot]}};
      if (L_.spec.bias) args[DNNL_ARG_DIFF_BIAS] = db_[slot];
      bwd_w_.execute(s, args);
      if (dw_reorder_[slot]) dw_reorder_[slot]->run(s);
    }
  }

 private:
  template <class F, class BD, class BW>
  void set_mds(const F& f, const BD& bd, const BW& bw) {
    fwd_src_md_ = f.src_desc(), fwd_w_md_ = f.weights_desc(), fwd_dst_md_ = f.dst_desc();
    bd_src_md_ = bd.diff_src_desc(), bd_w_md_ = bd.weights_desc(), bd_dst_md_ = bd.diff_dst_desc();
    bw_src_md_ = bw.src_desc(), bw_w_md_ = bw.diff_weights_desc(), bw_dst_md_ = bw.diff_dst_desc();
  }

  Ctx& c_;
  const ResolvedLayer& L_;
  ParamStore& ps_;
  int64_t batch_;
  dnnl::primitive fwd_, bwd_d_, bwd_w_;
  md_t fwd_src_md_, fwd_w_md_, fwd_dst_md_, bd_src_md_, bd_w_md_, bd_dst_md_, bw_src_md_, bw_w_md_,
      bw_dst_md_;
  memory src_, w_canon_, w_fwd_, b_, dd_bd_, w_bd_, ds_, src_bw_, dd_bw_, db_scratch_;
  memory dw_canon_[2], dw_[2], db_[2];
  std::optional<Reorder> src_reorder_, w_fwd_reorder_, dd_bd_reorder_, w_bd_reorder_, ds_reorder_,
      src_bw_reorder_, dd_bw_reorder_, dw_reorder_[2];
  uint64_t w_version_ = ~0ull, w_bd_version_ = ~0ull;
};

// ---------------------------------------------------------------------------------------------
// BatchNorm over channels (4-D) or features (2-D): batch statistics in training (running
// statistics updated PyTorch-style, unbiased variance), running statistics in inference.
class BatchNormLayer : public Layer {
 public:
  BatchNormLayer(Ctx& c, const ResolvedLayer& L, ParamStore& ps, int64_t batch)
      : c_(c), L_(L), ps_(ps), batch_(batch) {}
  bool has_params() const override { return true; }

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    using namespace dnnl;
    in_ = in;
    d_in_ = d_in;
    const md_t md = in.get_desc();
    const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    const float eps = L_.spec.eps;
    batch_normalization_forward::primitive_desc ft(c.eng, prop_kind::forward_training, md, md, eps,
                                                   flags);
    batch_normalization_forward::primitive_desc fi(c.eng, prop_kind::forward_inference, md, md, eps,
                                                   flags | normalization_flags::use_global_stats);
    batch_normalization_backward::primitive_desc b(c.eng, prop_kind::backward, md, md, md, eps,
                                                   flags, ft);
    fwd_train_ = batch_normalization_forward(ft);
    fwd_infer_ = batch_normalization_forward(fi);
    bwd_ = batch_normalization_backward(b);
    C_ = L_.in[0];
    const md_t c_md({C_}, dt::f32, tag::a);
    scale_ = memory(c_md, c.eng, ps_.params() + L_.params[0].offset);
    shift_ = memory(c_md, c.eng, ps_.params() + L_.params[1].offset);
    mean_ = memory(c_md, c.eng);
    var_ = memory(c_md, c.eng);
    run_mean_ = memory(c_md, c.eng, ps_.state() + L_.state_offset);
    run_var_ = memory(c_md, c.eng, ps_.state() + L_.state_offset + C_);
    for (int slot = 0; slot < 2; ++slot) {
      dscale_[slot] = memory(c_md, c.eng, ps_.grad(slot) + L_.params[0].offset);
      dshift_[slot] = memory(c_md, c.eng, ps_.grad(slot) + L_.params[1].offset);
    }
    dscale_tmp_ = memory(c_md, c.eng);
    dshift_tmp_ = memory(c_md, c.eng);
    out = memory(md, c.eng);
    d_out = memory(md, c.eng);
    // Elements per channel, for the unbiased running variance.
    per_channel_ = batch_ * (L_.in.size() == 3 ? L_.in[1] * L_.in[2] : 1);
  }

  void forward(bool training, uint64_t) override {
    if (!training) {
      fwd_infer_.execute(c_.strm, {{DNNL_ARG_SRC, in_},
                                   {DNNL_ARG_MEAN, run_mean_},
                                   {DNNL_ARG_VARIANCE, run_var_},
                                   {DNNL_ARG_SCALE, scale_},
                                   {DNNL_ARG_SHIFT, shift_},
                                   {DNNL_ARG_DST, out}});
      return;
    }
    fwd_train_.execute(c_.strm, {{DNNL_ARG_SRC, in_},
                                 {DNNL_ARG_MEAN, mean_},
                                 {DNNL_ARG_VARIANCE, var_},
                                 {DNNL_ARG_SCALE, scale_},
                                 {DNNL_ARG_SHIFT, shift_},
                                 {DNNL_ARG_DST, out}});
    const float m = L_.spec.momentum;
    const float unbias =
        per_channel_ > 1 ? static_cast<float>(per_channel_) / (per_channel_ - 1) : 1.f;
    const float* mu = static_cast<const float*>(mean_.get_data_handle());
    const float* va = static_cast<const float*>(var_.get_data_handle());
    float* rm = static_cast<float*>(run_mean_.get_data_handle());
    float* rv = static_cast<float*>(run_var_.get_data_handle());
    for (int64_t i = 0; i < C_; ++i) {
      rm[i] = (1.f - m) * rm[i] + m * mu[i];
      rv[i] = (1.f - m) * rv[i] + m * va[i] * unbias;
    }
  }

  void backward(bool, int slot) override {
    bwd_.execute(c_.strm, {{DNNL_ARG_SRC, in_},
                           {DNNL_ARG_MEAN, mean_},
                           {DNNL_ARG_VARIANCE, var_},
                           {DNNL_ARG_DIFF_DST, d_out},
                           {DNNL_ARG_SCALE, scale_},
                           {DNNL_ARG_DIFF_SRC, d_in_},
                           {DNNL_ARG_DIFF_SCALE, slot >= 0 ? dscale_[slot] : dscale_tmp_},
                           {DNNL_ARG_DIFF_SHIFT, slot >= 0 ? dshift_[slot] : dshift_tmp_}});
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  ParamStore& ps_;
  int64_t batch_, C_ = 0, per_channel_ = 1;
  dnnl::primitive fwd_train_, fwd_infer_, bwd_;
  memory scale_, shift_, mean_, var_, run_mean_, run_var_, dscale_[2], dshift_[2], dscale_tmp_,
      dshift_tmp_;
};

// ---------------------------------------------------------------------------------------------
// ReLU / LeakyReLU / Tanh / Sigmoid. The *_use_dst_for_bwd algorithms need only the output,
// so the layer works in place (its output overwrites its input), except as a network's first
// layer, whose input the GAN step reads again.
class EltwiseLayer : public Layer {
 public:
  EltwiseLayer(Ctx& c, const ResolvedLayer& L, bool in_place) : c_(c), L_(L), in_place_(in_place) {}

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    using namespace dnnl;
    in_ = in;
    d_in_ = d_in;
    const md_t md = in.get_desc();
    algorithm alg = algorithm::eltwise_relu_use_dst_for_bwd;
    float alpha = 0.f;
    switch (L_.spec.kind) {
      case LayerKind::LeakyReLU:
        alpha = L_.spec.slope;
        break;
      case LayerKind::Tanh:
        alg = algorithm::eltwise_tanh_use_dst_for_bwd;
        break;
      case LayerKind::Sigmoid:
        alg = algorithm::eltwise_logistic_use_dst_for_bwd;
        break;
      default:
        break;
    }
    eltwise_forward::primitive_desc f(c.eng, prop_kind::forward_training, alg, md, md, alpha, 0.f);
    eltwise_backward::primitive_desc b(c.eng, alg, md, md, md, alpha, 0.f, f);
    fwd_ = eltwise_forward(f);
    bwd_ = eltwise_backward(b);
    out = in_place_ ? in : memory(md, c.eng);
    d_out = in_place_ ? d_in : memory(md, c.eng);
  }
  void forward(bool, uint64_t) override {
    fwd_.execute(c_.strm, {{DNNL_ARG_SRC, in_}, {DNNL_ARG_DST, out}});
  }
  void backward(bool, int) override {
    bwd_.execute(c_.strm,
                 {{DNNL_ARG_DST, out}, {DNNL_ARG_DIFF_DST, d_out}, {DNNL_ARG_DIFF_SRC, d_in_}});
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  bool in_place_;
  dnnl::primitive fwd_, bwd_;
};

// ---------------------------------------------------------------------------------------------
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

  void forward(bool training, uint64_t ctr) override {
    const float* x = static_cast<const float*>(in_.get_data_handle());
    float* y = static_cast<float*>(out.get_data_handle());
    const float p = L_.spec.p;
    active_ = training && p > 0.f;
    if (!active_) {
      std::memcpy(y, x, n_ * sizeof(float));
      return;
    }
    const Philox rng(seed_, Stream::Dropout, ctr);
    const float scale = 1.f / (1.f - p);
    const uint64_t base = layer_ << 36;
    float* mk = mask_.data();
#pragma omp parallel for schedule(static) if (n_ > (1 << 15))
    for (int64_t b = 0; b < (n_ + 3) / 4; ++b) {
      uint32_t w[4];
      rng.block(base + static_cast<uint64_t>(b), w);
      for (int k = 0; k < 4 && 4 * b + k < n_; ++k) {
        const int64_t i = 4 * b + k;
        mk[i] = Philox::to_unit(w[k]) >= p ? scale : 0.f;
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

// ---------------------------------------------------------------------------------------------
// Reshape / Flatten: a free view when the input is plain row-major, else a reorder to plain.
class ReshapeLayer : public Layer {
 public:
  ReshapeLayer(Ctx& c, const ResolvedLayer& L, int64_t batch) : c_(c), L_(L), batch_(batch) {}

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    in_ = in;
    d_in_ = d_in;
    const md_t plain_in = plain_md(batch_, L_.in), plain_out = plain_md(batch_, L_.out);
    if (in.get_desc() == plain_in) {
      out = memory(plain_out, c.eng, in.get_data_handle());
      d_out = memory(plain_out, c.eng, d_in.get_data_handle());
    } else {
      memory tmp(plain_in, c.eng), dtmp(plain_in, c.eng);
      fwd_ = Reorder{dnnl::reorder(in, tmp), in, tmp};
      bwd_ = Reorder{dnnl::reorder(dtmp, d_in), dtmp, d_in};
      out = memory(plain_out, c.eng, tmp.get_data_handle());
      d_out = memory(plain_out, c.eng, dtmp.get_data_handle());
    }
  }
  void forward(bool, uint64_t) override {
    if (fwd_) fwd_->run(c_.strm);
  }
  void backward(bool, int) override {
    if (bwd_) bwd_->run(c_.strm);
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  int64_t batch_;
  std::optional<Reorder> fwd_, bwd_;
};

// In-place eltwise is safe after layers whose backward does not read their own output:
// convolutions, dense, BN and dropout. After another eltwise (which needs its output for its
// backward) or a reshape view (which may alias the network's input) it gets its own buffer.
bool needs_own_output(LayerKind prev) {
  switch (prev) {
    case LayerKind::Dense:
    case LayerKind::Conv2d:
    case LayerKind::ConvTranspose2d:
    case LayerKind::BatchNorm:
    case LayerKind::Dropout:
      return false;
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------------------------
class CpuNet : public NetExec {
 public:
  CpuNet(Ctx& c, const NetPlan& plan, ParamStore& ps, int64_t batch, uint64_t seed)
      : c_(c), plan_(plan), batch_(batch) {
    in_ = memory(plain_md(batch, plan.in), c.eng);
    d_in_ = memory(plain_md(batch, plan.in), c.eng);
    memory cur = in_, cur_d = d_in_;
    bool params_below = false;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const ResolvedLayer& L = plan.layers[i];
      std::unique_ptr<Layer> layer;
      switch (L.spec.kind) {
        case LayerKind::Dense:
        case LayerKind::Conv2d:
        case LayerKind::ConvTranspose2d:
          layer = std::make_unique<WeightedLayer>(c, L, ps, batch);
          break;
        case LayerKind::BatchNorm:
          layer = std::make_unique<BatchNormLayer>(c, L, ps, batch);
          break;
        case LayerKind::ReLU:
        case LayerKind::LeakyReLU:
        case LayerKind::Tanh:
        case LayerKind::Sigmoid:
          layer = std::make_unique<EltwiseLayer>(
              c, L, /*in_place=*/i > 0 && !needs_own_output(plan.layers[i - 1].spec.kind));
          break;
        case LayerKind::Dropout:
          layer = std::make_unique<DropoutLayer>(c, L, seed, i);
          break;
        case LayerKind::Reshape:
        case LayerKind::Flatten:
          layer = std::make_unique<ReshapeLayer>(c, L, batch);
          break;
      }
      layer->build(c, cur, cur_d);
      // Does anything below this layer need the gradient of its input?
      below_has_params_.push_back(params_below);
      params_below = params_below || layer->has_params();
      cur = layer->out;
      cur_d = layer->d_out;
      layers_.push_back(std::move(layer));
    }
    out_ = adapt(c, cur, plain_md(batch, plan.out), &out_reorder_, true);
    d_out_ = adapt(c, cur_d, plain_md(batch, plan.out), &d_out_reorder_, false);
  }

  int64_t batch() const override { return batch_; }
  float* input() override { return static_cast<float*>(in_.get_data_handle()); }
  const float* output() override { return static_cast<const float*>(out_.get_data_handle()); }
  float* d_output() override { return static_cast<float*>(d_out_.get_data_handle()); }
  const float* d_input() override { return static_cast<const float*>(d_in_.get_data_handle()); }

  void forward(bool training, uint64_t ctr) override {
    for (auto& l : layers_) l->forward(training, ctr);
    if (out_reorder_) out_reorder_->run(c_.strm);
    c_.strm.wait();
  }

  void backward(bool need_d_input, int slot) override {
    if (d_out_reorder_) d_out_reorder_->run(c_.strm);
    for (size_t i = layers_.size(); i-- > 0;)
      layers_[i]->backward(need_d_input || below_has_params_[i], slot);
    c_.strm.wait();
  }

 private:
  Ctx& c_;
  const NetPlan& plan_;
  int64_t batch_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> below_has_params_;
  memory in_, d_in_, out_, d_out_;
  std::optional<Reorder> out_reorder_, d_out_reorder_;
};

}  // namespace

std::unique_ptr<NetExec> compile_net(Ctx& ctx, const NetPlan& plan, ParamStore& params,
                                     int64_t batch, uint64_t seed) {
  return std::make_unique<CpuNet>(ctx, plan, params, batch, seed);
}

}  // namespace dcgan::cpu
