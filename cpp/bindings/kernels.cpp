// dcgan._core.kernels: the element-wise arithmetic of core/elementwise.hpp and core/rng.hpp (the
// functions the CUDA kernels run per thread) evaluated on the host over NumPy arrays, so that
// CPU-only CI tests them against float64 references and against the CPU backend.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "core/elementwise.hpp"
#include "core/parse.hpp"

namespace py = pybind11;

namespace dcgan {

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

LayerKind activation_kind(const std::string& name) {
  if (name == "relu") return LayerKind::ReLU;
  if (name == "leaky_relu") return LayerKind::LeakyReLU;
  if (name == "tanh") return LayerKind::Tanh;
  if (name == "sigmoid") return LayerKind::Sigmoid;
  throw InvalidArgument("activation must be relu, leaky_relu, tanh or sigmoid, got '" + name + "'");
}

void same_size(const py::array& a, const py::array& b, const char* what) {
  if (a.size() != b.size()) throw InvalidArgument(std::string(what) + ": arrays differ in size");
}

py::tuple loss_terms(bool d, const std::string& loss, bool real, const F64& logits, double target) {
  const LossKind kind = loss_from_name(loss);
  const auto n = logits.size();
  F64 l(n), g(n), o(n);
  for (py::ssize_t i = 0; i < n; ++i) {
    const LossTerm t =
        d ? d_loss_term(kind, real, logits.data()[i], target) : g_loss_term(kind, logits.data()[i]);
    l.mutable_data()[i] = t.loss, g.mutable_data()[i] = t.grad, o.mutable_data()[i] = t.out;
  }
  return py::make_tuple(l, g, o);
}

}  // namespace

void add_kernels_module(py::module_& parent) {
  auto m = parent.def_submodule(
      "kernels", "Element-wise kernel arithmetic (core/elementwise.hpp), evaluated on the host.");
  m.def(
      "d_loss_terms",
      [](const std::string& loss, bool real, const F64& logits, double target) {
        return loss_terms(true, loss, real, logits, target);
      },
      py::arg("loss"), py::arg("real"), py::arg("logits"), py::arg("target"),
      "Per-logit (loss, grad, out) of D's loss.");
  m.def(
      "g_loss_terms",
      [](const std::string& loss, const F64& logits) {
        return loss_terms(false, loss, false, logits, 0.0);
      },
      py::arg("loss"), py::arg("logits"), "Per-logit (loss, grad, out) of G's loss.");
  m.def(
      "adam",
      [](F32 p, F32 m1, F32 v, const F32& g, float lr, float b1, float b2, float eps, int64_t t) {
        same_size(p, g, "adam"), same_size(m1, g, "adam"), same_size(v, g, "adam");
        if (t < 1) throw InvalidArgument("adam: t must be >= 1");
        F32 po(p.size()), mo(p.size()), vo(p.size());
        const AdamScalars a = adam_scalars(lr, b1, b2, eps, t);
        for (py::ssize_t i = 0; i < p.size(); ++i) {
          float pi = p.data()[i], mi = m1.data()[i], vi = v.data()[i];
          adam_element(pi, mi, vi, g.data()[i], a);
          po.mutable_data()[i] = pi, mo.mutable_data()[i] = mi, vo.mutable_data()[i] = vi;
        }
        return py::make_tuple(po, mo, vo);
      },
      py::arg("p"), py::arg("m"), py::arg("v"), py::arg("g"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("t"), "One Adam step; returns (p, m, v).");
  m.def(
      "activation",
      [](const std::string& kind, const F32& x, float slope) {
        const LayerKind k = activation_kind(kind);
        F32 y(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i)
          y.mutable_data()[i] = activation(k, x.data()[i], slope);
        return y;
      },
      py::arg("kind"), py::arg("x"), py::arg("slope") = 0.01f);
  m.def(
      "activation_grad",
      [](const std::string& kind, const F32& y, const F32& dy, float slope) {
        const LayerKind k = activation_kind(kind);
        same_size(y, dy, "activation_grad");
        F32 dx(y.size());
        for (py::ssize_t i = 0; i < y.size(); ++i)
          dx.mutable_data()[i] = activation_grad_from_output(k, y.data()[i], dy.data()[i], slope);
        return dx;
      },
      py::arg("kind"), py::arg("y"), py::arg("dy"), py::arg("slope") = 0.01f);
  m.def(
      "dropout_multipliers",
      [](uint64_t seed, uint64_t counter, uint64_t layer, int64_t n, float p) {
        const Philox rng(seed, Stream::Dropout, counter);
        F32 out(n);
        for (int64_t i = 0; i < n; ++i)
          out.mutable_data()[i] = dropout_multiplier(rng, layer, i, p);
        return out;
      },
      py::arg("seed"), py::arg("counter"), py::arg("layer"), py::arg("n"), py::arg("p"));
  m.def(
      "softmax_xent",
      [](const F32& logits, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& labels) {
        if (logits.ndim() != 2 || labels.ndim() != 1 || labels.shape(0) != logits.shape(0))
          throw InvalidArgument("softmax_xent: logits (n, k) and labels (n,) expected");
        const int64_t n = logits.shape(0), k = logits.shape(1);
        F32 dx({n, k});
        F64 loss(n);
        py::array_t<bool> correct(n);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t y = labels.data()[i];
          if (y < 0 || y >= k) throw InvalidArgument("softmax_xent: label out of range");
          const XentTerm t = softmax_xent_row(logits.data() + i * k, k, y, dx.mutable_data() + i * k,
                                              1.0 / static_cast<double>(n));
          loss.mutable_data()[i] = t.loss, correct.mutable_data()[i] = t.correct;
        }
        return py::make_tuple(loss, dx, correct);
      },
      py::arg("logits"), py::arg("labels"),
      "Per-row (loss, d(mean loss)/d(logits), arg-max == label) of softmax cross-entropy.");
  m.def(
      "bn_accumulate",
      [](const F32& means, const F32& vars) {
        same_size(means, vars, "bn_accumulate");
        float s = 0, v = 0, q = 0;
        for (py::ssize_t i = 0; i < means.size(); ++i)
          bn_accumulate(s, v, q, means.data()[i], vars.data()[i]);
        return py::make_tuple(s, v, q);
      },
      py::arg("means"), py::arg("vars"),
      "The precise-statistics sums (mean, var, mean^2) over batches of one channel.");
  m.def(
      "bn_normalize",
      [](const F32& x, const F32& mean, const F32& inv_std, const F32& gamma, const F32& beta) {
        for (const F32* a : {&mean, &inv_std, &gamma, &beta}) same_size(x, *a, "bn_normalize");
        F32 y(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i)
          y.mutable_data()[i] = bn_normalize(x.data()[i], mean.data()[i], inv_std.data()[i],
                                             gamma.data()[i], beta.data()[i]);
        return y;
      },
      py::arg("x"), py::arg("mean"), py::arg("inv_std"), py::arg("gamma"), py::arg("beta"),
      "Element-wise with per-element (already broadcast) channel values.");
  m.def(
      "bn_input_grad",
      [](const F32& dy, const F32& xhat, const F32& gamma, const F32& inv_std, const F32& mean_dy,
         const F32& mean_dy_xhat) {
        for (const F32* a : {&xhat, &gamma, &inv_std, &mean_dy, &mean_dy_xhat})
          same_size(dy, *a, "bn_input_grad");
        F32 dx(dy.size());
        for (py::ssize_t i = 0; i < dy.size(); ++i)
          dx.mutable_data()[i] =
              bn_input_grad(dy.data()[i], xhat.data()[i], gamma.data()[i], inv_std.data()[i],
                            mean_dy.data()[i], mean_dy_xhat.data()[i]);
        return dx;
      },
      py::arg("dy"), py::arg("xhat"), py::arg("gamma"), py::arg("inv_std"), py::arg("mean_dy"),
      py::arg("mean_dy_xhat"));
  m.def(
      "bn_running_update",
      [](F32 rm, F32 rv, const F32& mean, const F32& var, float momentum, int64_t count) {
        for (const F32* a : {static_cast<const F32*>(&rv), &mean, &var})
          same_size(rm, *a, "bn_running_update");
        F32 mo(rm.size()), vo(rm.size());
        for (py::ssize_t i = 0; i < rm.size(); ++i) {
          float a = rm.data()[i], b = rv.data()[i];
          bn_running_update(a, b, mean.data()[i], var.data()[i], momentum, count);
          mo.mutable_data()[i] = a, vo.mutable_data()[i] = b;
        }
        return py::make_tuple(mo, vo);
      },
      py::arg("running_mean"), py::arg("running_var"), py::arg("mean"), py::arg("var"),
      py::arg("momentum"), py::arg("count"));
  m.def(
      "noise",
      [](const std::string& kind, uint64_t seed, uint32_t stream, uint64_t counter, int64_t n) {
        const Philox rng(seed, static_cast<Stream>(stream), counter);
        const NoiseKind k = noise_from_name(kind);
        F32 out(n);
        for (int64_t i = 0; i < n; ++i)
          out.mutable_data()[i] = k == NoiseKind::Normal
                                      ? rng.normal(static_cast<uint64_t>(i))
                                      : 2.f * rng.uniform(static_cast<uint64_t>(i)) - 1.f;
        return out;
      },
      py::arg("kind"), py::arg("seed"), py::arg("stream"), py::arg("counter"), py::arg("n"));
  m.def(
      "scale_values",
      [](const F32& x, bool identity, float sub, float mul, float add) {
        F32 y(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i)
          y.mutable_data()[i] = scale_value(x.data()[i], identity, sub, mul, add);
        return y;
      },
      py::arg("x"), py::arg("identity"), py::arg("sub"), py::arg("mul"), py::arg("add"));
  m.def(
      "pad2d",
      [](const F32& x, int64_t lo_h, int64_t hi_h, int64_t lo_w, int64_t hi_w) {
        if (x.ndim() != 4) throw InvalidArgument("pad2d: x must be (N, C, H, W)");
        if (lo_h < 0 || hi_h < 0 || lo_w < 0 || hi_w < 0)
          throw InvalidArgument("pad2d: padding must be >= 0");
        const PadGeometry g{x.shape(2), x.shape(3), lo_h, hi_h, lo_w, hi_w};
        F32 y({x.shape(0), x.shape(1), g.Hp(), g.Wp()});
        for (py::ssize_t o = 0; o < y.size(); ++o) {
          const int64_t src = pad_source(o, g);
          y.mutable_data()[o] = src >= 0 ? x.data()[src] : 0.f;
        }
        return y;
      },
      py::arg("x"), py::arg("lo_h"), py::arg("hi_h"), py::arg("lo_w"), py::arg("hi_w"),
      "The CUDA backend's explicit padding (pad_source), on the host.");
  m.def(
      "crop2d",
      [](const F32& xp, int64_t lo_h, int64_t hi_h, int64_t lo_w, int64_t hi_w) {
        if (xp.ndim() != 4) throw InvalidArgument("crop2d: xp must be (N, C, Hp, Wp)");
        const int64_t H = xp.shape(2) - lo_h - hi_h, W = xp.shape(3) - lo_w - hi_w;
        if (lo_h < 0 || hi_h < 0 || lo_w < 0 || hi_w < 0 || H <= 0 || W <= 0)
          throw InvalidArgument("crop2d: bad crop for the array's shape");
        const PadGeometry g{H, W, lo_h, hi_h, lo_w, hi_w};
        F32 y({xp.shape(0), xp.shape(1), H, W});
        for (py::ssize_t o = 0; o < y.size(); ++o)
          y.mutable_data()[o] = xp.data()[crop_source(o, g)];
        return y;
      },
      py::arg("xp"), py::arg("lo_h"), py::arg("hi_h"), py::arg("lo_w"), py::arg("hi_w"),
      "The CUDA backend's crop (crop_source), on the host.");
}

}  // namespace dcgan
