// The CPU backend's layers: the base class every layer family implements, and the small
// oneDNN helpers they share. One file per family: weighted.cpp (dense, conv, conv-transpose),
// batchnorm.cpp, eltwise.cpp, dropout.cpp, reshape.cpp; net.cpp chains them into a network.
//
// Primitives are created once per (layer, batch size). Convolutions pick their own memory
// formats (format_tag::any, usually channel-blocked); layers that do not care (BN, eltwise,
// dropout) keep whatever format they are given, so activations stay blocked between
// convolutions and reorders happen only where a layer needs another layout: the network's
// plain NCHW edges, reshape/flatten, and weights (kept in PyTorch layout in the flat
// parameter buffer, reordered into the primitive's layout once per parameter update).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/comm.hpp"
#include "cpu/cpu_backend.hpp"

namespace dcgan::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using md_t = memory::desc;

inline md_t plain_md(int64_t batch, const Shape& s, dt type = dt::f32) {
  if (s.size() == 1) return md_t({batch, s[0]}, type, tag::nc);
  return md_t({batch, s[0], s[1], s[2]}, type, tag::nchw);
}

// Elements (not bytes) of a memory, whatever its data type.
inline int64_t phys_elems(const memory& m) {
  const md_t d = m.get_desc();
  return static_cast<int64_t>(d.get_size() / memory::data_type_size(d.get_data_type()));
}

// bfloat16 <-> float32 for the element-wise loops that oneDNN does not run (dropout).
inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
// Round to nearest even, as oneDNN's reorders do (inputs here are finite).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// A primitive with its scratchpad (Ctx::scratch), which run() adds to the arguments.
class Prim {
 public:
  Prim() = default;
  template <class PD>
  Prim(Ctx& c, const PD& pd) : p_(pd.get()), scratch_(c.scratch(pd.scratchpad_desc())) {}
  void run(dnnl::stream& s, std::unordered_map<int, memory> args) const {
    args[DNNL_ARG_SCRATCHPAD] = *scratch_;
    p_.execute(s, args);
  }

 private:
  dnnl::primitive p_;
  std::shared_ptr<memory> scratch_;
};

// A reorder between two memories, created once.
struct Reorder {
  Prim prim;
  memory src, dst;
  void run(dnnl::stream& s) { prim.run(s, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}}); }
};

inline Reorder make_reorder(Ctx& c, const memory& src, const memory& dst) {
  return Reorder{Prim(c, dnnl::reorder::primitive_desc(src, dst, c.attr())), src, dst};
}

// `have` itself if it already has desc `want`, else a new memory of `want`; in that case
// `*conv` receives the reorder have->new (to_want) or new->have (!to_want).
inline memory adapt(Ctx& c, const memory& have, const md_t& want, std::optional<Reorder>* conv,
                    bool to_want) {
  if (have.get_desc() == want) return have;
  memory m(want, c.eng);
  if (to_want)
    *conv = make_reorder(c, have, m);
  else
    *conv = make_reorder(c, m, have);
  return m;
}

// The setting of a CPU fast path (DCGAN_CPU_THIN, DCGAN_CPU_WINO, DCGAN_CPU_BWDW): the
// variable's value, "auto" when unset or empty. `allowed` lists the values it may take, "auto"
// first; anything else is refused with a message naming them.
inline std::string cpu_path_setting(const char* var, std::initializer_list<const char*> allowed) {
  const char* v = std::getenv(var);
  const std::string s = v && *v ? v : "auto";
  std::string names;
  size_t i = 0;
  for (const char* a : allowed) {
    if (s == a) return s;
    names += (i == 0 ? "'" : i + 1 == allowed.size() ? " or '" : ", '") + std::string(a) + "'";
    ++i;
  }
  throw InvalidArgument(std::string(var) + ": expected " + names + ", got '" + s + "'");
}

// An "auto|native" switch of a CPU fast path (DCGAN_CPU_THIN): true for "auto".
inline bool auto_or_native(const char* var) {
  return cpu_path_setting(var, {"auto", "native"}) == "auto";
}

// Whether oneDNN dispatches to an AVX2 ISA here (no AVX-512): its direct convolution kernels
// are slower there relative to its matmul, and the matmul is gemm-based (no brgemm).
inline bool onednn_avx2_only() {
  using I = dnnl::cpu_isa;
  const I isa = dnnl::get_effective_cpu_isa();
  return isa == I::avx2 || isa == I::avx2_vnni || isa == I::avx2_vnni_2;
}

class Layer {
 public:
  virtual ~Layer() = default;
  // Creates primitives and the output memories for input memories `in` / `d_in`.
  virtual void build(Ctx& c, const memory& in, const memory& d_in) = 0;
  virtual void forward(bool training, Counter ctr) = 0;
  virtual void backward(bool need_d_in, int slot) = 0;
  virtual bool has_params() const { return false; }
  // BatchNorm: its batch statistics into the precise-statistics sums (NetExec).
  virtual void accumulate_stats(float* /*sums*/, float* /*mean_sq*/) {}
  memory out, d_out;

 protected:
  memory in_, d_in_;
};

// An activation layer (ReLU, LeakyReLU, Tanh, Sigmoid) as oneDNN algorithms: `forward` for a
// post-op or a forward primitive, `backward` (the *_use_dst_for_bwd variant) for the backward,
// which needs only the activation's output. eltwise.cpp.
struct FusedEltwise {
  dnnl::algorithm forward, backward;
  float alpha;
};
FusedEltwise fused_eltwise(const LayerSpec& act);
// The forward of activation `act` in place on a tensor of desc `d`: the paths that compute a
// layer outside oneDNN's convolution primitives apply their fused activation with it.
Prim fused_act_forward(Ctx& c, const LayerSpec& act, const md_t& d);

// A Conv2d/ConvTranspose2d backward-weights computed as matrix products (gemm_weights.cpp):
// dW in PyTorch's layout into `dw_canon`, and the bias gradient into `db` unless null.
class GemmWeights {
 public:
  virtual ~GemmWeights() = default;
  virtual void run(dnnl::stream& s, const memory& dw_canon, float* db) = 0;
};
// Whether layer L takes that path rather than oneDNN's own kernel (DCGAN_CPU_BWDW, the shape,
// the rule for the context's precision); read once, when the layer is compiled.
bool use_gemm_weights(const Ctx& c, const ResolvedLayer& L);
// `src` and `d_dst` are the layer's forward input and output gradient (any layout).
std::unique_ptr<GemmWeights> make_gemm_weights(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                               const memory& src, const memory& d_dst);

// The few-channel side of a Conv2d/ConvTranspose2d as a matrix product and a gather
// (thin_conv.cpp): a ConvTranspose2d's forward into at most 4 channels (then `act`, the fused
// activation, if any), or a Conv2d's backward-data into at most 4 channels. `s`: the
// many-channel tensor (the layer's input, or its output gradient; any layout), `w_canon`: the
// f32 weights in PyTorch's layout, `bias`: the bias (forward only) or null, `b_out`: where the
// result goes (any layout and type).
class ThinScatter {
 public:
  virtual ~ThinScatter() = default;
  // `weights_version`: the parameters' version (the weights are re-laid-out when it changes).
  virtual void run(dnnl::stream& s, uint64_t weights_version) = 0;
};
std::unique_ptr<ThinScatter> make_thin_scatter(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                               const memory& s, const memory& w_canon,
                                               const float* bias, const ResolvedLayer* act,
                                               const memory& b_out);

// A Conv2d/ConvTranspose2d as a Winograd convolution (winograd.cpp: stride 2 through its phase
// images, or 'same' at stride 1). `x`, `y`, `dy`, `dx`: the layer's input, output, output gradient
// and input gradient, f32 NHWC; `w_canon`: the weights in PyTorch's layout; `bias` (or null) and
// `act` (the fused activation, or null) as for ThinScatter. `one_weight_pass`: the network takes
// one weight gradient per update (one gradient slot: G, a classifier), so the weight gradient's
// transformed form may overwrite the transformed weights, which the update makes stale anyway.
class WinoConv {
 public:
  virtual ~WinoConv() = default;
  virtual void forward(dnnl::stream& s, uint64_t weights_version) = 0;
  // dy -> dx if `data`; the weight gradient into `dw_canon` (PyTorch's layout) and the bias
  // gradient into `db` (unless null) if `dw_canon` is not null.
  virtual void backward(dnnl::stream& s, uint64_t weights_version, bool data,
                        const memory* dw_canon, float* db) = 0;
};
bool use_winograd(const Ctx& c, const ResolvedLayer& L);
std::unique_ptr<WinoConv> make_winograd(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                        const memory& x, const memory& y, const memory& dy,
                                        const memory& dx, const memory& w_canon, const float* bias,
                                        const ResolvedLayer* act, bool one_weight_pass);

// One factory per family. `act`: the activation layer after this one, fused into it by the
// network (net.cpp decides which pairs fuse), or nullptr. `channels_last`: a convolution's
// activations in NHWC instead of the layout oneDNN picks (net.cpp decides, per network).
std::unique_ptr<Layer> make_weighted_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                           int64_t batch, const ResolvedLayer* act,
                                           bool channels_last);
// `comm` points at the network's batch communicator (see NetExec::set_batch_comm). `relu`:
// a ReLU after the BatchNorm fused into it (oneDNN's fuse_norm_relu), or nullptr.
std::unique_ptr<Layer> make_batchnorm_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                            int64_t batch, Communicator* const* comm,
                                            const ResolvedLayer* relu);
std::unique_ptr<Layer> make_eltwise_layer(Ctx& c, const ResolvedLayer& L, bool in_place);
std::unique_ptr<Layer> make_dropout_layer(Ctx& c, const ResolvedLayer& L, uint64_t seed,
                                          uint64_t layer_index);
std::unique_ptr<Layer> make_reshape_layer(Ctx& c, const ResolvedLayer& L, int64_t batch);

}  // namespace dcgan::cpu
