// dcgan._core: converts NumPy arrays and dicts to the core's types (checking dtype, shape and
// contiguity), releases the GIL around compute, and maps C++ exceptions to Python ones.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <dnnl.hpp>
#include <mutex>
#include <sstream>

#include "core/gan_step.hpp"
#include "core/init.hpp"

namespace py = pybind11;
using namespace dcgan;

namespace {

using FArray = py::array_t<float, py::array::c_style>;

template <class T>
T get(const py::dict& d, const char* key, T def) {
  if (!d.contains(key) || d[key].is_none()) return def;
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw InvalidArgument(std::string("config key '") + key + "' has the wrong type (" +
                          std::string(py::str(py::type::of(d[key]).attr("__name__"))) + ")");
  }
}

LayerSpec parse_layer(const py::dict& d, size_t i) {
  if (!d.contains("type")) throw InvalidArgument("layer " + std::to_string(i) + " has no 'type'");
  LayerSpec s;
  s.kind = kind_from_name(d["type"].cast<std::string>());
  s.out = get<int64_t>(d, "out", 0);
  s.kernel = get<int64_t>(d, "kernel", 0);
  s.stride = get<int64_t>(d, "stride", 1);
  if (d.contains("padding") && py::isinstance<py::str>(d["padding"])) {
    const auto p = d["padding"].cast<std::string>();
    if (p != "same" && p != "valid")
      throw InvalidArgument("layer " + std::to_string(i) +
                            ": padding must be 'same', 'valid' or an int, got '" + p + "'");
    s.same = p == "same";
  } else {
    s.padding = get<int64_t>(d, "padding", 0);
  }
  s.output_padding = get<int64_t>(d, "output_padding", 0);
  s.bias = get<bool>(d, "bias", true);
  s.slope = get<float>(d, "slope", 0.01f);
  s.p = get<float>(d, "p", 0.f);
  s.momentum = get<float>(d, "momentum", 0.1f);
  s.eps = get<float>(d, "eps", 1e-5f);
  s.shape = get<std::vector<int64_t>>(d, "shape", {});
  s.init = init_from_name(get<std::string>(d, "init", "normal"));
  s.init_std = get<float>(d, "init_std", 0.02f);
  return s;
}

std::vector<LayerSpec> parse_layers(const py::list& l) {
  std::vector<LayerSpec> out;
  for (size_t i = 0; i < l.size(); ++i) out.push_back(parse_layer(l[i].cast<py::dict>(), i));
  return out;
}

LossKind parse_loss(const std::string& s) {
  if (s == "bce") return LossKind::BCE;
  if (s == "minimax") return LossKind::Minimax;
  if (s == "saturating") return LossKind::Saturating;
  if (s == "lsgan") return LossKind::LSGAN;
  if (s == "hinge") return LossKind::Hinge;
  throw InvalidArgument("unknown loss '" + s +
                        "'; expected bce, minimax, saturating, lsgan or hinge");
}

GanConfig parse_config(const py::dict& d) {
  GanConfig c;
  c.z_dim = get<int64_t>(d, "z_dim", 100);
  c.image = get<std::vector<int64_t>>(d, "image", {});
  if (!d.contains("generator") || !d.contains("discriminator"))
    throw InvalidArgument("config needs 'generator' and 'discriminator' layer lists");
  c.g_layers = parse_layers(d["generator"].cast<py::list>());
  c.d_layers = parse_layers(d["discriminator"].cast<py::list>());
  c.batch = get<int64_t>(d, "batch_size", 64);
  c.loss = parse_loss(get<std::string>(d, "loss", "bce"));
  c.label_smoothing = get<float>(d, "label_smoothing", 0.f);
  c.n_critic = get<int>(d, "n_critic", 1);
  c.g_steps = get<int>(d, "g_steps", 1);
  c.joint = get<bool>(d, "joint", false);
  c.adam_g = {get<float>(d, "lr_g", 2e-4f), get<float>(d, "beta1_g", 0.5f),
              get<float>(d, "beta2_g", 0.999f), get<float>(d, "adam_eps", 1e-8f)};
  c.adam_d = {get<float>(d, "lr_d", 2e-4f), get<float>(d, "beta1_d", 0.5f),
              get<float>(d, "beta2_d", 0.999f), get<float>(d, "adam_eps", 1e-8f)};
  const auto noise = get<std::string>(d, "noise", "normal");
  if (noise != "normal" && noise != "uniform")
    throw InvalidArgument("noise must be 'normal' or 'uniform', got '" + noise + "'");
  c.noise = noise == "normal" ? NoiseKind::Normal : NoiseKind::Uniform;
  c.seed = get<uint64_t>(d, "seed", 0);
  c.threads = get<int>(d, "threads", 0);
  return c;
}

// Checks a float32 C-contiguous array against an expected shape; -1 in `want` matches any size.
void check_array(const py::array& a, const std::vector<int64_t>& want, const char* what) {
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::type_error(std::string(what) + ": expected a float32 array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw InvalidArgument(std::string(what) + ": expected a C-contiguous array");
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || a.shape(i) == want[i];
  if (!ok) {
    std::ostringstream o;
    o << what << ": expected shape (";
    for (size_t i = 0; i < want.size(); ++i)
      o << (i ? ", " : "") << (want[i] < 0 ? std::string("N") : std::to_string(want[i]));
    o << "), got (";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) o << (i ? ", " : "") << a.shape(i);
    o << ")";
    throw InvalidArgument(o.str());
  }
}

void check_finite(const float* p, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]))
      throw InvalidArgument(std::string(what) + " contains NaN or Inf (at flat index " +
                            std::to_string(i) + ")");
}

std::vector<int64_t> with_batch(int64_t n, const Shape& s) {
  std::vector<int64_t> v{n};
  v.insert(v.end(), s.begin(), s.end());
  return v;
}

FArray new_array(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> sh(shape.begin(), shape.end());
  return FArray(sh);
}

int net_index(const std::string& name) {
  if (name == "generator" || name == "G" || name == "g") return 0;
  if (name == "discriminator" || name == "D" || name == "d") return 1;
  throw InvalidArgument("network must be 'generator' or 'discriminator', got '" + name + "'");
}

// Named views of a flat parameter / state / gradient buffer, PyTorch-style names.
py::dict named_params(const NetPlan& plan, const float* base, Backend& be) {
  py::dict out;
  for (size_t i = 0; i < plan.layers.size(); ++i)
    for (const ParamSpec& p : plan.layers[i].params) {
      FArray a = new_array(p.shape);
      be.download(a.mutable_data(), base + p.offset, numel(p.shape));
      out[py::str(std::to_string(i) + "." + p.name)] = a;
    }
  return out;
}

py::dict named_state(const NetPlan& plan, const float* base, Backend& be) {
  py::dict out;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const ResolvedLayer& L = plan.layers[i];
    if (L.state_offset < 0) continue;
    const int64_t c = L.in[0];
    for (int k = 0; k < 2; ++k) {
      FArray a = new_array({c});
      be.download(a.mutable_data(), base + L.state_offset + k * c, c);
      out[py::str(std::to_string(i) + (k == 0 ? ".running_mean" : ".running_var"))] = a;
    }
  }
  return out;
}

void set_named(const NetPlan& plan, float* params, float* state, const py::dict& values,
               Backend& be, bool strict) {
  std::map<std::string, std::pair<float*, Shape>> slots;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const ResolvedLayer& L = plan.layers[i];
    for (const ParamSpec& p : L.params)
      slots[std::to_string(i) + "." + p.name] = {params + p.offset, p.shape};
    if (L.state_offset >= 0 && state) {
      slots[std::to_string(i) + ".running_mean"] = {state + L.state_offset, {L.in[0]}};
      slots[std::to_string(i) + ".running_var"] = {state + L.state_offset + L.in[0], {L.in[0]}};
    }
  }
  // Validate everything before writing anything.
  std::vector<std::tuple<float*, FArray, int64_t>> writes;
  for (auto item : values) {
    const auto name = item.first.cast<std::string>();
    auto it = slots.find(name);
    if (it == slots.end()) {
      std::string known;
      for (auto& kv : slots) known += (known.empty() ? "" : ", ") + kv.first;
      throw InvalidArgument("unknown parameter '" + name + "'; this network has: " + known);
    }
    FArray a = FArray::ensure(item.second);
    if (!a) throw py::type_error("parameter '" + name + "' is not convertible to a float32 array");
    check_array(a, it->second.second, ("parameter '" + name + "'").c_str());
    check_finite(a.data(), a.size(), ("parameter '" + name + "'").c_str());
    writes.emplace_back(it->second.first, a, numel(it->second.second));
    slots.erase(it);
  }
  if (strict && !slots.empty())
    throw InvalidArgument("missing parameter '" + slots.begin()->first + "'");
  for (auto& [dst, a, n] : writes) be.upload(dst, a.data(), n);
}

py::list describe(const NetPlan& plan) {
  py::list out;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const ResolvedLayer& L = plan.layers[i];
    int64_t n = 0;
    for (const auto& p : L.params) n += numel(p.shape);
    py::dict d;
    d["index"] = i;
    d["type"] = kind_name(L.spec.kind);
    d["in_shape"] = py::tuple(py::cast(L.in));
    d["out_shape"] = py::tuple(py::cast(L.out));
    d["params"] = n;
    if (L.spec.kind == LayerKind::Conv2d || L.spec.kind == LayerKind::ConvTranspose2d)
      d["padding"] = py::make_tuple(L.pad_h.lo, L.pad_h.hi, L.pad_w.lo, L.pad_w.hi);
    out.append(d);
  }
  return out;
}

// Serialises calls into one trainer from several Python threads (a fit() in a background thread
// and a generate() in the notebook). Taken with the GIL released: the holder may be computing
// without the GIL and need it back before it can let go.
class TrainerLock {
 public:
  explicit TrainerLock(std::mutex& m) : lock_(m, std::defer_lock) {
    py::gil_scoped_release nogil;
    lock_.lock();
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

// ---------------------------------------------------------------------------------------------
class PyTrainer {
 public:
  explicit PyTrainer(const py::dict& cfg)
      : t_(parse_config(cfg), make_cpu_backend(get<int>(cfg, "threads", 0))) {}

  py::tuple step(const py::array& batch) {
    TrainerLock guard(mu_);
    const auto& c = t_.config();
    check_array(batch, with_batch(c.batch, c.image), "batch");
    FArray b = batch.cast<FArray>();
    check_finite(b.data(), b.size(), "batch");
    StepStats s;
    {
      py::gil_scoped_release nogil;
      s = t_.step(b.data());
    }
    return py::make_tuple(s.d_loss, s.g_loss, s.d_real, s.d_fake);
  }

  void set_data(const py::array& x) {
    TrainerLock guard(mu_);
    const auto& c = t_.config();
    check_array(x, with_batch(-1, c.image), "data");
    FArray a = x.cast<FArray>();
    if (a.shape(0) == 0) throw InvalidArgument("data: is empty");
    {
      py::gil_scoped_release nogil;
      check_finite(a.data(), a.size(), "data");
    }
    t_.set_data(a.data(), a.shape(0));
    data_ = a;  // keeps the memory alive while the core holds the pointer
  }

  FArray run(int64_t steps) {
    TrainerLock guard(mu_);
    if (steps < 0) throw InvalidArgument("steps must be >= 0");
    std::vector<StepStats> st(steps);
    {
      py::gil_scoped_release nogil;
      t_.run(steps, st.data());
    }
    FArray out = new_array({steps, 4});
    auto r = out.mutable_unchecked<2>();
    for (int64_t i = 0; i < steps; ++i) {
      r(i, 0) = st[i].d_loss, r(i, 1) = st[i].g_loss, r(i, 2) = st[i].d_real,
           r(i, 3) = st[i].d_fake;
    }
    return out;
  }

  FArray generate(int64_t n, uint64_t seed) {
    TrainerLock guard(mu_);
    if (n <= 0) throw InvalidArgument("n must be positive, got " + std::to_string(n));
    FArray out = new_array(with_batch(n, t_.config().image));
    float* p = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      t_.generate(n, seed, p);
    }
    return out;
  }

  FArray noise(int64_t step, int64_t index) {
    TrainerLock guard(mu_);
    FArray out = new_array({t_.config().batch, t_.config().z_dim});
    t_.noise(step, out.mutable_data(), index);
    return out;
  }

  FArray discriminate(const py::array& x) {
    TrainerLock guard(mu_);
    check_array(x, with_batch(-1, t_.config().image), "images");
    FArray a = x.cast<FArray>();
    if (a.shape(0) == 0) throw InvalidArgument("images: is empty");
    check_finite(a.data(), a.size(), "images");
    FArray out = new_array({a.shape(0)});
    float* p = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      t_.discriminate(a.shape(0), a.data(), p);
    }
    return out;
  }

  py::dict get_params(const std::string& net) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    return named_params(t_.plan(i), t_.params(i).params(), t_.backend());
  }
  py::dict get_grads(const std::string& net, int slot) {
    TrainerLock guard(mu_);
    if (slot != 0 && slot != 1) throw InvalidArgument("slot must be 0 or 1");
    const int i = net_index(net);
    return named_params(t_.plan(i), t_.params(i).grad(slot), t_.backend());
  }
  py::dict get_state(const std::string& net) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    return named_state(t_.plan(i), t_.params(i).state(), t_.backend());
  }
  void set_params(const std::string& net, const py::dict& values, bool strict) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    ParamStore& ps = t_.params(i);
    set_named(t_.plan(i), ps.params(), ps.state(), values, t_.backend(), strict);
    ps.version++;
  }
  py::dict get_adam(const std::string& net) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    ParamStore& ps = t_.params(i);
    py::dict d;
    for (auto [name, ptr] :
         {std::pair<const char*, float*>{"m", ps.adam_m()}, {"v", ps.adam_v()}}) {
      FArray a = new_array({ps.n_params});
      t_.backend().download(a.mutable_data(), ptr, ps.n_params);
      d[name] = a;
    }
    return d;
  }
  void set_adam(const std::string& net, const py::array& m, const py::array& v) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    ParamStore& ps = t_.params(i);
    check_array(m, {ps.n_params}, "adam m");
    check_array(v, {ps.n_params}, "adam v");
    t_.backend().upload(ps.adam_m(), m.cast<FArray>().data(), ps.n_params);
    t_.backend().upload(ps.adam_v(), v.cast<FArray>().data(), ps.n_params);
  }
  py::dict get_train_state() {
    TrainerLock guard(mu_);
    const TrainState& s = t_.state();
    py::dict d;
    d["step"] = s.step, d["adam_t_d"] = s.adam_t_d, d["adam_t_g"] = s.adam_t_g;
    d["epoch"] = s.epoch, d["cursor"] = s.cursor;
    return d;
  }
  void set_train_state(const py::dict& d) {
    TrainerLock guard(mu_);
    TrainState s;
    s.step = get<int64_t>(d, "step", 0), s.adam_t_d = get<int64_t>(d, "adam_t_d", 0);
    s.adam_t_g = get<int64_t>(d, "adam_t_g", 0), s.epoch = get<int64_t>(d, "epoch", 0);
    s.cursor = get<int64_t>(d, "cursor", 0);
    if (s.step < 0 || s.adam_t_d < 0 || s.adam_t_g < 0 || s.epoch < 0 || s.cursor < 0)
      throw InvalidArgument("training state values must be >= 0");
    t_.state() = s;
  }
  int64_t n_params(const std::string& net) { return t_.plan(net_index(net)).n_params; }
  py::list describe_net(const std::string& net) { return describe(t_.plan(net_index(net))); }
  int64_t steps_per_epoch() { return t_.steps_per_epoch(); }

 private:
  GanTrainer t_;
  FArray data_;
  std::mutex mu_;
};

// A single network on the CPU backend, for per-layer tests (gradients vs finite differences).
class PyNetwork {
 public:
  PyNetwork(const py::list& layers, const std::vector<int64_t>& in_shape, int64_t batch,
            uint64_t seed, int threads)
      : be_(make_cpu_backend(threads)),
        plan_(plan_network("network", in_shape, parse_layers(layers))),
        batch_(batch) {
    if (batch <= 0) throw InvalidArgument("batch must be positive");
    ps_ = be_->make_params(plan_.n_params, plan_.n_state);
    std::vector<float> w(plan_.n_params), s(plan_.n_state);
    init_parameters(plan_, seed, 0, w.data(), s.data());
    be_->upload(ps_->params(), w.data(), plan_.n_params);
    if (plan_.n_state) be_->upload(ps_->state(), s.data(), plan_.n_state);
    ps_->version++;
    exec_ = be_->compile(plan_, *ps_, batch, seed);
  }
  FArray forward(const py::array& x, bool training, uint64_t counter) {
    check_array(x, with_batch(batch_, plan_.in), "x");
    FArray a = x.cast<FArray>();
    FArray out = new_array(with_batch(batch_, plan_.out));
    {
      py::gil_scoped_release nogil;
      be_->upload(exec_->input(), a.data(), a.size());
      exec_->forward(training, counter);
      be_->download(out.mutable_data(), exec_->output(), out.size());
    }
    return out;
  }
  FArray backward(const py::array& dy, bool need_d_input) {
    check_array(dy, with_batch(batch_, plan_.out), "dy");
    FArray a = dy.cast<FArray>();
    FArray out = new_array(with_batch(batch_, plan_.in));
    {
      py::gil_scoped_release nogil;
      be_->upload(exec_->d_output(), a.data(), a.size());
      exec_->backward(need_d_input, 0);
      if (need_d_input) be_->download(out.mutable_data(), exec_->d_input(), out.size());
    }
    return out;
  }
  py::dict get_params() { return named_params(plan_, ps_->params(), *be_); }
  py::dict get_grads() { return named_params(plan_, ps_->grad(0), *be_); }
  py::dict get_state() { return named_state(plan_, ps_->state(), *be_); }
  void set_params(const py::dict& v) {
    set_named(plan_, ps_->params(), ps_->state(), v, *be_, false);
    ps_->version++;
  }
  py::list describe_net() { return describe(plan_); }

 private:
  std::unique_ptr<Backend> be_;
  NetPlan plan_;
  int64_t batch_;
  std::unique_ptr<ParamStore> ps_;
  std::unique_ptr<NetExec> exec_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "dcgan C++ core: networks and the GAN training step on oneDNN";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dnnl::error& e) {
      PyErr_SetString(PyExc_RuntimeError, (std::string("oneDNN error: ") + e.what()).c_str());
    }
  });
  const auto v = dnnl::version();
  m.attr("onednn_version") = py::make_tuple(v->major, v->minor, v->patch);
  m.attr("backend") = "cpu";

  py::class_<PyTrainer>(m, "Trainer")
      .def(py::init<const py::dict&>(), py::arg("config"))
      .def("step", &PyTrainer::step, py::arg("batch"))
      .def("set_data", &PyTrainer::set_data, py::arg("data"))
      .def("run", &PyTrainer::run, py::arg("steps"))
      .def("generate", &PyTrainer::generate, py::arg("n"), py::arg("seed"))
      .def("discriminate", &PyTrainer::discriminate, py::arg("images"))
      .def("noise", &PyTrainer::noise, py::arg("step"), py::arg("index") = 0)
      .def("get_params", &PyTrainer::get_params, py::arg("net"))
      .def("set_params", &PyTrainer::set_params, py::arg("net"), py::arg("values"),
           py::arg("strict") = false)
      .def("get_grads", &PyTrainer::get_grads, py::arg("net"), py::arg("slot") = 0)
      .def("get_state", &PyTrainer::get_state, py::arg("net"))
      .def("get_adam", &PyTrainer::get_adam, py::arg("net"))
      .def("set_adam", &PyTrainer::set_adam, py::arg("net"), py::arg("m"), py::arg("v"))
      .def("get_train_state", &PyTrainer::get_train_state)
      .def("set_train_state", &PyTrainer::set_train_state, py::arg("state"))
      .def("n_params", &PyTrainer::n_params, py::arg("net"))
      .def("describe", &PyTrainer::describe_net, py::arg("net"))
      .def("steps_per_epoch", &PyTrainer::steps_per_epoch);

  py::class_<PyNetwork>(m, "Network")
      .def(py::init<const py::list&, const std::vector<int64_t>&, int64_t, uint64_t, int>(),
           py::arg("layers"), py::arg("in_shape"), py::arg("batch"), py::arg("seed") = 0,
           py::arg("threads") = 0)
      .def("forward", &PyNetwork::forward, py::arg("x"), py::arg("training") = true,
           py::arg("counter") = 0)
      .def("backward", &PyNetwork::backward, py::arg("dy"), py::arg("need_d_input") = true)
      .def("get_params", &PyNetwork::get_params)
      .def("set_params", &PyNetwork::set_params, py::arg("values"))
      .def("get_grads", &PyNetwork::get_grads)
      .def("get_state", &PyNetwork::get_state)
      .def("describe", &PyNetwork::describe_net);
}
