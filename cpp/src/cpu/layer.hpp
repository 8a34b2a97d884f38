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

#include <memory>
#include <optional>

#include "core/comm.hpp"
#include "cpu/cpu_backend.hpp"

namespace dcgan::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using md_t = memory::desc;

inline md_t plain_md(int64_t batch, const Shape& s) {
  if (s.size() == 1) return md_t({batch, s[0]}, dt::f32, tag::nc);
  return md_t({batch, s[0], s[1], s[2]}, dt::f32, tag::nchw);
}

inline int64_t phys_floats(const memory& m) {
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
inline memory adapt(Ctx& c, const memory& have, const md_t& want, std::optional<Reorder>* conv,
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
  virtual void forward(bool training, Counter ctr) = 0;
  virtual void backward(bool need_d_in, int slot) = 0;
  virtual bool has_params() const { return false; }
  // BatchNorm: its batch statistics into the precise-statistics sums (NetExec).
  virtual void accumulate_stats(float* /*sums*/, float* /*mean_sq*/) {}
  memory out, d_out;

 protected:
  memory in_, d_in_;
};

// One factory per family.
std::unique_ptr<Layer> make_weighted_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                           int64_t batch);
// `comm` points at the network's batch communicator (see NetExec::set_batch_comm).
std::unique_ptr<Layer> make_batchnorm_layer(Ctx& c, const ResolvedLayer& L, HostParams& ps,
                                            int64_t batch, Communicator* const* comm);
std::unique_ptr<Layer> make_eltwise_layer(Ctx& c, const ResolvedLayer& L, bool in_place);
std::unique_ptr<Layer> make_dropout_layer(Ctx& c, const ResolvedLayer& L, uint64_t seed,
                                          uint64_t layer_index);
std::unique_ptr<Layer> make_reshape_layer(Ctx& c, const ResolvedLayer& L, int64_t batch);

}  // namespace dcgan::cpu
