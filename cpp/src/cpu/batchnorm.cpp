// BatchNorm on oneDNN: batch statistics in training, running statistics in inference.
#include <cstring>

#include "core/elementwise.hpp"
#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// BatchNorm over channels (4-D) or features (2-D): batch statistics in training (running
// statistics updated PyTorch-style, unbiased variance), running statistics in inference.
class BatchNormLayer : public Layer {
 public:
  BatchNormLayer(Ctx& c, const ResolvedLayer& L, HostParams& ps, int64_t batch)
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
    for (int slot = 0; slot < ps_.grad_slots; ++slot) {
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

  void forward(bool training, Counter) override {
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

  void accumulate_stats(float* sums, float* mean_sq) override {
    const float* mu = static_cast<const float*>(mean_.get_data_handle());
    const float* va = static_cast<const float*>(var_.get_data_handle());
    float* s = sums + L_.state_offset;
    for (int64_t i = 0; i < C_; ++i)
      bn_accumulate(s[i], s[C_ + i], mean_sq[L_.state_offset + i], mu[i], va[i]);
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
  HostParams& ps_;
  int64_t batch_, C_ = 0, per_channel_ = 1;
  dnnl::primitive fwd_train_, fwd_infer_, bwd_;
  memory scale_, shift_, mean_, var_, run_mean_, run_var_, dscale_[2], dshift_[2], dscale_tmp_,
      dshift_tmp_;
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                            int64_t batch) {
  return std::make_unique<BatchNormLayer>(c, L, ps, batch);
}

}  // namespace dcgan::cpu
