// ReLU, LeakyReLU, tanh and sigmoid on oneDNN, in place where the layer below allows.
#include <cstring>

#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

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
    const FusedEltwise e = fused_eltwise(L_.spec);
    const algorithm alg = e.backward;
    const float alpha = e.alpha;
    eltwise_forward::primitive_desc f(c.eng, prop_kind::forward_training, alg, md, md, alpha, 0.f,
                                      c.attr());
    eltwise_backward::primitive_desc b(c.eng, alg, md, md, md, alpha, 0.f, f, c.attr());
    fwd_ = Prim(c, f);
    bwd_ = Prim(c, b);
    out = in_place_ ? in : memory(md, c.eng);
    d_out = in_place_ ? d_in : memory(md, c.eng);
  }
  void forward(bool, Counter) override {
    fwd_.run(c_.strm, {{DNNL_ARG_SRC, in_}, {DNNL_ARG_DST, out}});
  }
  void backward(bool, int) override {
    bwd_.run(c_.strm,
             {{DNNL_ARG_DST, out}, {DNNL_ARG_DIFF_DST, d_out}, {DNNL_ARG_DIFF_SRC, d_in_}});
  }

 private:
  Ctx& c_;
  const ResolvedLayer& L_;
  bool in_place_;
  Prim fwd_, bwd_;
};

}  // namespace

FusedEltwise fused_eltwise(const LayerSpec& act) {
  using dnnl::algorithm;
  switch (act.kind) {
    case LayerKind::ReLU:
      return {algorithm::eltwise_relu, algorithm::eltwise_relu_use_dst_for_bwd, 0.f};
    case LayerKind::LeakyReLU:
      return {algorithm::eltwise_relu, algorithm::eltwise_relu_use_dst_for_bwd, act.slope};
    case LayerKind::Tanh:
      return {algorithm::eltwise_tanh, algorithm::eltwise_tanh_use_dst_for_bwd, 0.f};
    case LayerKind::Sigmoid:
      return {algorithm::eltwise_logistic, algorithm::eltwise_logistic_use_dst_for_bwd, 0.f};
    default:
      throw BackendError("not an activation layer");
  }
}

Prim fused_act_forward(Ctx& c, const LayerSpec& act, const md_t& d) {
  const FusedEltwise e = fused_eltwise(act);
  return Prim(c, dnnl::eltwise_forward::primitive_desc(c.eng, dnnl::prop_kind::forward_training,
                                                       e.forward, d, d, e.alpha, 0.f, c.attr()));
}

std::unique_ptr<Layer> make_eltwise_layer(Ctx& c, const ResolvedLayer& L, bool in_place) {
  return std::make_unique<EltwiseLayer>(c, L, in_place);
}

}  // namespace dcgan::cpu
