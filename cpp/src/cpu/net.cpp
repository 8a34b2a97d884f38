// A network on the CPU backend: the layers of a NetPlan chained through oneDNN memories, each
// built by its family's factory (the family comes from the layer-kind table).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/comm.hpp"
#include "core/layer_kinds.hpp"
#include "cpu/layer.hpp"

namespace dcgan::cpu {

namespace {

// In-place eltwise is safe after layers whose backward does not read their own output
// (convolutions, dense, BN, dropout). After an eltwise (which needs its output for its
// backward) or a reshape view (which may alias the network's input) it gets its own buffer.
bool may_overwrite_output_of(LayerKind prev) {
  const LayerKindInfo& info = layer_kind(prev);
  return !info.backward_reads_output && info.family != LayerFamily::Reshape;
}

// Which layer pairs the network fuses: DCGAN_CPU_FUSE unset or "all" fuses both kinds, "none"
// neither, or a comma list of "act" (an activation after a dense/conv/conv-transpose layer, as
// its post-op) and "bn_relu" (a ReLU after a BatchNorm, oneDNN's fuse_norm_relu). Read when a
// network is compiled; for measuring each fusion alone (bench/bench_train.py --fuse).
struct Fusions {
  bool act = true, bn_relu = true;
};
Fusions fusions_from_env() {
  const char* v = std::getenv("DCGAN_CPU_FUSE");
  if (!v || !*v || std::strcmp(v, "all") == 0) return {};
  Fusions f{false, false};
  const std::string s(v);
  size_t at = 0;
  while (at <= s.size()) {
    const size_t end = std::min(s.find(',', at), s.size());
    const std::string item = s.substr(at, end - at);
    if (item == "act")
      f.act = true;
    else if (item == "bn_relu")
      f.bn_relu = true;
    else if (item != "none")
      throw InvalidArgument(
          "DCGAN_CPU_FUSE: expected 'all', 'none' or a comma list of 'act' and "
          "'bn_relu', got '" +
          s + "'");
    at = end + 1;
  }
  return f;
}

// The activation layout of a network's convolutions, from DCGAN_CPU_ACT_FORMAT (read when
// the network is compiled): "any" (oneDNN's choice, usually channel-blocked), "nhwc"
// (channels last everywhere: oneDNN's brgemm kernels run every pass and no reorder sits
// between a blocked forward and a channels-last backward), or "auto" (unset): channels last
// unless the network has a stride-2 layer with 512 or more channels. Measured in
// bench/RESULTS.md (issue 13): in fp32 channels last ran mnist's and cifar10's whole step
// 1.04-1.11x and 0.98-1.05x faster (their stride-1 conv-transposes and the reorders gained
// most) but dcgan64's primitives 7% slower (its 512- and 1024-channel stride-2 layers); in
// bf16 the whole step was within noise either way (0.998-1.023).
bool channels_last(const NetPlan& plan) {
  const char* v = std::getenv("DCGAN_CPU_ACT_FORMAT");
  const std::string s = v && *v ? v : "auto";
  if (s == "any") return false;
  if (s == "nhwc") return true;
  if (s != "auto")
    throw InvalidArgument("DCGAN_CPU_ACT_FORMAT: expected 'auto', 'any' or 'nhwc', got '" + s +
                          "'");
  for (const ResolvedLayer& L : plan.layers) {
    const bool conv = L.spec.kind == LayerKind::Conv2d || L.spec.kind == LayerKind::ConvTranspose2d;
    if (conv && L.spec.stride >= 2 && std::max(L.in[0], L.spec.out) >= 512) return false;
  }
  return true;
}

bool is_activation(LayerKind k) { return layer_kind(k).family == LayerFamily::Eltwise; }

class CpuNet : public NetExec {
 public:
  CpuNet(Ctx& c, const NetPlan& plan, HostParams& ps, int64_t batch, uint64_t seed)
      : c_(c), plan_(plan), batch_(batch) {
    in_ = memory(plain_md(batch, plan.in), c.eng);
    d_in_ = memory(plain_md(batch, plan.in), c.eng);
    memory cur = in_, cur_d = d_in_;
    bool params_below = false;
    const Fusions fuse = fusions_from_env();
    const bool nhwc = channels_last(plan);
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const ResolvedLayer& L = plan.layers[i];
      const ResolvedLayer* next = i + 1 < plan.layers.size() ? &plan.layers[i + 1] : nullptr;
      std::unique_ptr<Layer> layer;
      switch (layer_kind(L.spec.kind).family) {
        case LayerFamily::Weighted: {
          const bool fused = fuse.act && next && is_activation(next->spec.kind);
          layer = make_weighted_layer(c, L, ps, batch, fused ? next : nullptr, nhwc);
          i += fused;  // the activation runs inside this layer
          break;
        }
        case LayerFamily::BatchNorm: {
          const bool fused = fuse.bn_relu && next && next->spec.kind == LayerKind::ReLU;
          layer = make_batchnorm_layer(c, L, ps, batch, &batch_comm_, fused ? next : nullptr);
          i += fused;
          break;
        }
        case LayerFamily::Eltwise:
          layer = make_eltwise_layer(
              c, L, /*in_place=*/i > 0 && may_overwrite_output_of(plan.layers[i - 1].spec.kind));
          break;
        case LayerFamily::Dropout:
          layer = make_dropout_layer(c, L, seed, i);
          break;
        case LayerFamily::Reshape:
          layer = make_reshape_layer(c, L, batch);
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

  void forward(bool training, Counter ctr) override {
    for (auto& l : layers_) l->forward(training, ctr);
    if (out_reorder_) out_reorder_->run(c_.strm);
    c_.strm.wait();
  }

  void set_batch_comm(Communicator* comm) override { batch_comm_ = comm; }

  void accumulate_bn_stats(float* sums, float* mean_sq) override {
    for (auto& l : layers_) l->accumulate_stats(sums, mean_sq);
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
  Communicator* batch_comm_ = nullptr;  // before layers_: BN layers hold its address
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> below_has_params_;
  memory in_, d_in_, out_, d_out_;
  std::optional<Reorder> out_reorder_, d_out_reorder_;
};

}  // namespace

std::unique_ptr<NetExec> compile_net(Ctx& ctx, const NetPlan& plan, ParamStore& params,
                                     int64_t batch, uint64_t seed) {
  return std::make_unique<CpuNet>(ctx, plan, static_cast<HostParams&>(params), batch, seed);
}

}  // namespace dcgan::cpu
