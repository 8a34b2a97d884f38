// BatchNorm on oneDNN: batch statistics in training, running statistics in inference, and
// synchronised statistics (over every rank's batch) in a data-parallel step.
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "core/comm.hpp"
#include "core/elementwise.hpp"
#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// BatchNorm over channels (4-D) or features (2-D): batch statistics in training (running
// statistics updated PyTorch-style, unbiased variance), running statistics in inference.
// With a fused ReLU (fuse_norm_relu) the forward writes max(BN(x), 0) and a workspace of which
// outputs were positive; the backward masks the incoming gradient with it.
class BatchNormLayer : public Layer {
 public:
  BatchNormLayer(Ctx& c, const ResolvedLayer& L, HostParams& ps, int64_t batch,
                 Communicator* const* comm, bool relu)
      : c_(c), L_(L), ps_(ps), batch_(batch), comm_(comm), relu_(relu) {}
  bool has_params() const override { return true; }

  void build(Ctx& c, const memory& in, const memory& d_in) override {
    using namespace dnnl;
    in_ = in;
    d_in_ = d_in;
    const md_t md = in.get_desc();
    const auto affine = normalization_flags::use_scale | normalization_flags::use_shift;
    const auto flags = relu_ ? affine | normalization_flags::fuse_norm_relu : affine;
    const float eps = L_.spec.eps;
    const primitive_attr attr = c.attr();
    batch_normalization_forward::primitive_desc ft(c.eng, prop_kind::forward_training, md, md, eps,
                                                   flags, attr);
    batch_normalization_forward::primitive_desc fi(c.eng, prop_kind::forward_inference, md, md, eps,
                                                   flags | normalization_flags::use_global_stats,
                                                   attr);
    batch_normalization_backward::primitive_desc b(c.eng, prop_kind::backward, md, md, md, eps,
                                                   flags, ft, attr);
    fwd_train_ = Prim(c, ft);
    fwd_infer_ = Prim(c, fi);
    bwd_ = Prim(c, b);
    // Synchronised BatchNorm: training forward and backward with given (global) statistics; the
    // backward's missing terms (the gradient through the statistics) are added as an affine
    // map of x, which is a BN inference forward, then a binary add.
    const auto global = flags | normalization_flags::use_global_stats;
    batch_normalization_forward::primitive_desc fg(c.eng, prop_kind::forward_training, md, md, eps,
                                                   global, attr);
    batch_normalization_backward::primitive_desc bg(c.eng, prop_kind::backward, md, md, md, eps,
                                                    global, fg, attr);
    fwd_global_ = Prim(c, fg);
    bwd_global_ = Prim(c, bg);
    // The correction's affine map, without the ReLU.
    fwd_affine_ = Prim(c, batch_normalization_forward::primitive_desc(
                              c.eng, prop_kind::forward_inference, md, md, eps,
                              affine | normalization_flags::use_global_stats, attr));
    if (relu_) ws_ = memory(ft.workspace_desc(), c.eng);
    add_ = Prim(c, dnnl::binary::primitive_desc(c.eng, dnnl::algorithm::binary_add, md, md,
                                                d_in.get_desc(), attr));
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
    corr_scale_ = memory(c_md, c.eng);
    corr_shift_ = memory(c_md, c.eng);
    out = memory(md, c.eng);
    d_out = memory(md, c.eng);
    // Elements per channel, for the unbiased running variance.
    per_channel_ = batch_ * (L_.in.size() == 3 ? L_.in[1] * L_.in[2] : 1);
  }

  void forward(bool training, Counter) override {
    if (!training) {
      synced_ = false;
      fwd_infer_.run(c_.strm, {{DNNL_ARG_SRC, in_},
                               {DNNL_ARG_MEAN, run_mean_},
                               {DNNL_ARG_VARIANCE, run_var_},
                               {DNNL_ARG_SCALE, scale_},
                               {DNNL_ARG_SHIFT, shift_},
                               {DNNL_ARG_DST, out}});
      return;
    }
    fwd_train_.run(c_.strm, with_ws({{DNNL_ARG_SRC, in_},
                                     {DNNL_ARG_MEAN, mean_},
                                     {DNNL_ARG_VARIANCE, var_},
                                     {DNNL_ARG_SCALE, scale_},
                                     {DNNL_ARG_SHIFT, shift_},
                                     {DNNL_ARG_DST, out}}));
    Communicator* comm = *comm_;
    const int world = comm ? comm->size() : 1;
    if (world > 1) {
      c_.strm.wait();
      global_stats(*comm);
      fwd_global_.run(c_.strm, with_ws({{DNNL_ARG_SRC, in_},
                                        {DNNL_ARG_MEAN, mean_},
                                        {DNNL_ARG_VARIANCE, var_},
                                        {DNNL_ARG_SCALE, scale_},
                                        {DNNL_ARG_SHIFT, shift_},
                                        {DNNL_ARG_DST, out}}));
    }
    synced_ = world > 1;
    const int64_t count = per_channel_ * world;
    const float m = L_.spec.momentum;
    const float unbias = count > 1 ? static_cast<float>(count) / (count - 1) : 1.f;
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
    if (synced_) return synced_backward(slot);
    bwd_.run(c_.strm, with_ws({{DNNL_ARG_SRC, in_},
                               {DNNL_ARG_MEAN, mean_},
                               {DNNL_ARG_VARIANCE, var_},
                               {DNNL_ARG_DIFF_DST, d_out},
                               {DNNL_ARG_SCALE, scale_},
                               {DNNL_ARG_DIFF_SRC, d_in_},
                               {DNNL_ARG_DIFF_SCALE, slot >= 0 ? dscale_[slot] : dscale_tmp_},
                               {DNNL_ARG_DIFF_SHIFT, slot >= 0 ? dshift_[slot] : dshift_tmp_}}));
  }

 private:
  // The arguments plus the ReLU mask, when the ReLU is fused.
  std::unordered_map<int, memory> with_ws(std::unordered_map<int, memory> args) const {
    if (relu_) args[DNNL_ARG_WORKSPACE] = ws_;
    return args;
  }

  // mean_ / var_ from this rank's batch moments to those of the union of all ranks' batches
  // (equal sizes): mean of means; mean of variances plus the variance of the means (biased).
  void global_stats(Communicator& comm) {
    const int world = comm.size();
    float* mu = static_cast<float*>(mean_.get_data_handle());
    float* va = static_cast<float*>(var_.get_data_handle());
    local_.resize(2 * C_);
    gathered_.resize(2 * C_ * world);
    std::memcpy(local_.data(), mu, C_ * sizeof(float));
    std::memcpy(local_.data() + C_, va, C_ * sizeof(float));
    comm.all_gather(local_.data(), gathered_.data(), 2 * C_);
    for (int64_t i = 0; i < C_; ++i) {
      double m = 0, v = 0;
      for (int r = 0; r < world; ++r)
        m += gathered_[r * 2 * C_ + i], v += gathered_[r * 2 * C_ + C_ + i];
      m /= world;
      for (int r = 0; r < world; ++r) {
        const double d = gathered_[r * 2 * C_ + i] - m;
        v += d * d;
      }
      mu[i] = static_cast<float>(m);
      va[i] = static_cast<float>(v / world);
    }
  }

  // dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat)), the means over all ranks'
  // elements: oneDNN's backward with given statistics gives gamma / sigma * dy and this rank's
  // sums of dy and dy * xhat; their mean over ranks S1, S2 gives the rest, an affine map of
  // xhat per channel: -k * (S1 + S2 * xhat), k = gamma / (sigma * M), M this rank's elements
  // per channel.
  void synced_backward(int slot) {
    memory dscale = slot >= 0 ? dscale_[slot] : dscale_tmp_;
    memory dshift = slot >= 0 ? dshift_[slot] : dshift_tmp_;
    bwd_global_.run(c_.strm, with_ws({{DNNL_ARG_SRC, in_},
                                      {DNNL_ARG_MEAN, mean_},
                                      {DNNL_ARG_VARIANCE, var_},
                                      {DNNL_ARG_DIFF_DST, d_out},
                                      {DNNL_ARG_SCALE, scale_},
                                      {DNNL_ARG_DIFF_SRC, d_in_},
                                      {DNNL_ARG_DIFF_SCALE, dscale},
                                      {DNNL_ARG_DIFF_SHIFT, dshift}}));
    c_.strm.wait();
    local_.resize(2 * C_);
    std::memcpy(local_.data(), dshift.get_data_handle(), C_ * sizeof(float));
    std::memcpy(local_.data() + C_, dscale.get_data_handle(), C_ * sizeof(float));
    (*comm_)->all_reduce_mean(local_.data(), 2 * C_);
    const float* gamma = static_cast<const float*>(scale_.get_data_handle());
    const float* va = static_cast<const float*>(var_.get_data_handle());
    float* cs = static_cast<float*>(corr_scale_.get_data_handle());
    float* ch = static_cast<float*>(corr_shift_.get_data_handle());
    const float eps = L_.spec.eps;
    for (int64_t i = 0; i < C_; ++i) {
      const double k =
          static_cast<double>(gamma[i]) /
          (std::sqrt(static_cast<double>(va[i]) + eps) * static_cast<double>(per_channel_));
      cs[i] = static_cast<float>(-k * local_[C_ + i]);
      ch[i] = static_cast<float>(-k * local_[i]);
    }
    if (!corr_) corr_ = memory(in_.get_desc(), c_.eng);
    fwd_affine_.run(c_.strm, {{DNNL_ARG_SRC, in_},
                              {DNNL_ARG_MEAN, mean_},
                              {DNNL_ARG_VARIANCE, var_},
                              {DNNL_ARG_SCALE, corr_scale_},
                              {DNNL_ARG_SHIFT, corr_shift_},
                              {DNNL_ARG_DST, corr_}});
    add_.run(c_.strm, {{DNNL_ARG_SRC_0, d_in_}, {DNNL_ARG_SRC_1, corr_}, {DNNL_ARG_DST, d_in_}});
  }

  Ctx& c_;
  const ResolvedLayer& L_;
  HostParams& ps_;
  int64_t batch_, C_ = 0, per_channel_ = 1;
  Communicator* const* comm_;  // the network's batch communicator (nullptr: this rank's batch)
  bool relu_;                  // a ReLU fused after the normalisation
  bool synced_ = false;        // the last training forward used global statistics
  Prim fwd_train_, fwd_infer_, bwd_, fwd_global_, bwd_global_, add_, fwd_affine_;
  memory ws_, scale_, shift_, mean_, var_, run_mean_, run_var_, dscale_[2], dshift_[2], dscale_tmp_,
      dshift_tmp_, corr_scale_, corr_shift_, corr_;
  std::vector<float> local_, gathered_;
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                            int64_t batch, Communicator* const* comm,
                                            const ResolvedLayer* relu) {
  return std::make_unique<BatchNormLayer>(c, L, ps, batch, comm, relu != nullptr);
}

}  // namespace dcgan::cpu
