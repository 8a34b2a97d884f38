// dcgan._core: converts NumPy arrays and dicts to the core's types (checking dtype, shape and
// contiguity), releases the GIL around compute, and maps C++ exceptions to Python ones. It names
// no backend library: backends come from core's registry by name (Config.device).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <sstream>

#include "comm_capsule.hpp"
#include "core/classifier.hpp"
#include "core/gan_step.hpp"
#include "core/init.hpp"
#include "core/layer_kinds.hpp"
#include "core/parse.hpp"
#include "core/registry.hpp"
#include "cpu/cpu_backend.hpp"
#ifdef DCGAN_WITH_NCCL
#include "cuda/cuda_backend.hpp"
#endif

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

// A Python value as a layer field; the layer-kind table in core decides what it may be.
FieldValue field_value(const py::handle& v, const std::string& key, size_t i) {
  auto wrong = [&]() -> FieldValue {
    throw InvalidArgument("layer " + std::to_string(i) + ": field '" + key +
                          "' has the wrong type (" +
                          std::string(py::str(py::type::of(v).attr("__name__"))) + ")");
  };
  if (py::isinstance<py::bool_>(v) || py::isinstance(v, py::module_::import("numpy").attr("bool_")))
    return v.cast<bool>();
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  if (py::isinstance<py::float_>(v) ||
      py::isinstance(v, py::module_::import("numpy").attr("floating")))
    return v.cast<double>();
  if (py::isinstance<py::int_>(v) ||
      py::isinstance(v, py::module_::import("numpy").attr("integer")))
    return v.cast<int64_t>();
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    std::vector<int64_t> out;
    for (auto e : v) {
      if (py::isinstance<py::bool_>(e) ||
          !(py::isinstance<py::int_>(e) ||
            py::isinstance(e, py::module_::import("numpy").attr("integer"))))
        return wrong();
      out.push_back(e.cast<int64_t>());
    }
    return out;
  }
  return wrong();
}

std::vector<LayerSpec> parse_layers(const py::list& l) {
  std::vector<LayerSpec> out;
  for (size_t i = 0; i < l.size(); ++i) {
    if (!py::isinstance<py::dict>(l[i]))
      throw InvalidArgument("layer " + std::to_string(i) + " must be a dict");
    FieldMap fields;
    for (auto item : l[i].cast<py::dict>()) {
      const auto key = py::str(item.first).cast<std::string>();
      if (item.second.is_none()) continue;
      fields[key] = field_value(item.second, key, i);
    }
    out.push_back(parse_layer(fields, i));
  }
  return out;
}

BnInference bn_inference_from_name(const std::string& s) {
  if (s == "precise") return BnInference::Precise;
  if (s == "running") return BnInference::Running;
  if (s == "batch") return BnInference::Batch;
  throw InvalidArgument("bn_inference must be 'precise', 'running' or 'batch', got '" + s + "'");
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
  c.loss = loss_from_name(get<std::string>(d, "loss", "bce"));
  c.label_smoothing = get<float>(d, "label_smoothing", 0.f);
  c.n_critic = get<int>(d, "n_critic", 1);
  c.g_steps = get<int>(d, "g_steps", 1);
  c.joint = get<bool>(d, "joint", false);
  c.adam_g = {get<float>(d, "lr_g", 2e-4f), get<float>(d, "beta1_g", 0.5f),
              get<float>(d, "beta2_g", 0.999f), get<float>(d, "adam_eps", 1e-8f)};
  c.adam_d = {get<float>(d, "lr_d", 2e-4f), get<float>(d, "beta1_d", 0.5f),
              get<float>(d, "beta2_d", 0.999f), get<float>(d, "adam_eps", 1e-8f)};
  c.noise = noise_from_name(get<std::string>(d, "noise", "normal"));
  c.seed = get<uint64_t>(d, "seed", 0);
  c.bn_inference = bn_inference_from_name(get<std::string>(d, "bn_inference", "precise"));
  c.precise_bn_samples = get<int64_t>(d, "precise_bn_samples", 256);
  c.sync_bn = get<bool>(d, "sync_bn", false);
  return c;
}

std::unique_ptr<Backend> backend_from(const py::dict& d) {
  BackendOptions o;
  o.threads = get<int>(d, "threads", 0);
  o.tf32 = get<bool>(d, "tf32", false);
  o.device = get<int>(d, "device_index", -1);
  o.precision = get<std::string>(d, "precision", "fp32");
  return make_backend(get<std::string>(d, "device", "cpu"), o);
}

// Checks an array's shape against `want` (any dtype); -1 in `want` matches any size.
void check_shape(const py::array& a, const std::vector<int64_t>& want, const char* what) {
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

// Checks a float32 C-contiguous array against an expected shape; -1 in `want` matches any size.
void check_array(const py::array& a, const std::vector<int64_t>& want, const char* what) {
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::type_error(std::string(what) + ": expected a float32 array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw InvalidArgument(std::string(what) + ": expected a C-contiguous array");
  check_shape(a, want, what);
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

// Named copies of one of a ParamStore's arrays, PyTorch-style names ("0.weight").
py::dict named_params(const NetPlan& plan, ParamStore& ps, Buf which) {
  py::dict out;
  for (size_t i = 0; i < plan.layers.size(); ++i)
    for (const ParamSpec& p : plan.layers[i].params) {
      FArray a = new_array(p.shape);
      ps.read(which, p.offset, a.mutable_data(), numel(p.shape));
      out[py::str(std::to_string(i) + "." + p.name)] = a;
    }
  return out;
}

// Named BatchNorm statistics ("3.running_mean", "3.running_var") of a state array, read through
// `read(offset, dst, n)`.
template <class Read>
py::dict named_state_from(const NetPlan& plan, Read read) {
  py::dict out;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const ResolvedLayer& L = plan.layers[i];
    if (L.state_offset < 0) continue;
    const int64_t c = L.in[0];
    for (int k = 0; k < 2; ++k) {
      FArray a = new_array({c});
      read(L.state_offset + k * c, a.mutable_data(), c);
      out[py::str(std::to_string(i) + (k == 0 ? ".running_mean" : ".running_var"))] = a;
    }
  }
  return out;
}

py::dict named_state(const NetPlan& plan, ParamStore& ps) {
  return named_state_from(
      plan, [&](int64_t off, float* dst, int64_t n) { ps.read(Buf::State, off, dst, n); });
}

void set_named(const NetPlan& plan, ParamStore& ps, const py::dict& values, bool strict) {
  struct Slot {
    Buf buf;
    int64_t offset;
    Shape shape;
  };
  std::map<std::string, Slot> slots;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const ResolvedLayer& L = plan.layers[i];
    for (const ParamSpec& p : L.params)
      slots[std::to_string(i) + "." + p.name] = {Buf::Params, p.offset, p.shape};
    if (L.state_offset >= 0) {
      slots[std::to_string(i) + ".running_mean"] = {Buf::State, L.state_offset, {L.in[0]}};
      slots[std::to_string(i) + ".running_var"] = {Buf::State, L.state_offset + L.in[0], {L.in[0]}};
    }
  }
  // Validate everything before writing anything.
  std::vector<std::pair<Slot, FArray>> writes;
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
    check_array(a, it->second.shape, ("parameter '" + name + "'").c_str());
    check_finite(a.data(), a.size(), ("parameter '" + name + "'").c_str());
    writes.emplace_back(it->second, a);
    slots.erase(it);
  }
  if (strict && !slots.empty())
    throw InvalidArgument("missing parameter '" + slots.begin()->first + "'");
  for (auto& [slot, a] : writes) ps.write(slot.buf, slot.offset, a.data(), numel(slot.shape));
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

// How stored images map to the model's input, from Python's description.
ImageFormat image_format(const Shape& image, const std::string& dtype, const std::string& layout,
                         const py::object& scale) {
  ImageFormat f;
  f.c = image[0], f.h = image[1], f.w = image[2];
  if (dtype == "uint8")
    f.dtype = DType::U8;
  else if (dtype == "float32")
    f.dtype = DType::F32;
  else
    throw py::type_error("data: expected uint8 or float32 images, got dtype " + dtype);
  if (layout == "nchw" || layout == "NCHW")
    f.layout = Layout::NCHW;
  else if (layout == "nhwc" || layout == "NHWC")
    f.layout = Layout::NHWC;
  else
    throw InvalidArgument("data: layout must be 'nchw' or 'nhwc', got '" + layout + "'");
  if (!scale.is_none()) {
    const auto t = scale.cast<std::tuple<float, float, float>>();
    f.identity = false;
    f.sub = std::get<0>(t), f.mul = std::get<1>(t), f.add = std::get<2>(t);
    if (!std::isfinite(f.sub) || !std::isfinite(f.mul) || !std::isfinite(f.add))
      throw InvalidArgument("data: scale must be finite numbers (sub, mul, add)");
  }
  return f;
}

// The per-sample shape of stored images in `layout`.
Shape stored_shape(const Shape& image, const std::string& layout) {
  if (layout == "nhwc" || layout == "NHWC") return {image[1], image[2], image[0]};
  return image;
}

// Images held as given: a C-contiguous uint8 or float32 array (or memory map) of (N, C, H, W)
// ("nchw") or (N, H, W, C) ("nhwc") images of `image`'s shape, checked (float32: finite) but not
// copied; the caller keeps the array alive.
std::unique_ptr<BatchSource> memory_source(const py::array& x, const Shape& image,
                                           const std::string& layout, const py::object& scale) {
  const std::string dtype = x.dtype().is(py::dtype::of<uint8_t>()) ? "uint8"
                            : x.dtype().is(py::dtype::of<float>())
                                ? "float32"
                                : std::string(py::str(x.dtype()));
  const ImageFormat fmt = image_format(image, dtype, layout, scale);
  check_shape(x, with_batch(-1, stored_shape(image, layout)), "data");
  if (!(x.flags() & py::array::c_style))
    throw InvalidArgument("data: expected a C-contiguous array");
  if (x.shape(0) == 0) throw InvalidArgument("data: is empty");
  if (fmt.dtype == DType::F32) {
    const float* p = static_cast<const float*>(x.data());
    py::gil_scoped_release nogil;
    check_finite(p, x.size(), "data");
  }
  return BatchSource::from_memory(x.data(), x.shape(0), fmt);
}

py::dict train_state_dict(const TrainState& s) {
  py::dict d;
  d["step"] = s.step, d["adam_t_d"] = s.adam_t_d, d["adam_t_g"] = s.adam_t_g;
  d["epoch"] = s.data.epoch, d["cursor"] = s.data.cursor;
  return d;
}

// ---------------------------------------------------------------------------------------------
// The communicator of a data-parallel run (a capsule from dcgan._mpi or nccl_communicator), or
// nullptr for None: one process.
std::unique_ptr<Communicator> take_communicator(const py::object& obj) {
  if (obj.is_none()) return nullptr;
  auto c = take_communicator_capsule(obj);
  if (!c)
    throw InvalidArgument(
        "comm must be a communicator from dcgan.distributed (an unused 'dcgan.Communicator' "
        "capsule) or None");
  return c;
}

class PyTrainer {
 public:
  explicit PyTrainer(const py::dict& cfg, const py::object& comm = py::none())
      : t_(parse_config(cfg), backend_from(cfg), take_communicator(comm)) {}

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

  // Training data held as given: a C-contiguous uint8 or float32 array (or memory map) of
  // (N, C, H, W) ("nchw") or (N, H, W, C) ("nhwc") images; `scale` = (sub, mul, add) maps stored
  // values to the model's range, None when they are in it already.
  void set_data(const py::array& x, const std::string& layout, const py::object& scale) {
    TrainerLock guard(mu_);
    t_.set_data(memory_source(x, t_.config().image, layout, scale));
    data_ = x;  // keeps the memory alive while the core holds the pointer
  }

  // Training data read per batch from a file: n images from byte `offset` of `path`.
  void set_data_file(const std::string& path, int64_t offset, int64_t n, const std::string& dtype,
                     const std::string& layout, const py::object& scale) {
    TrainerLock guard(mu_);
    const ImageFormat fmt = image_format(t_.config().image, dtype, layout, scale);
    if (n <= 0) throw InvalidArgument("data: is empty");
    t_.set_data(BatchSource::from_file(path, offset, n, fmt));
    data_ = py::none();
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
    return named_params(t_.plan(i), t_.params(i), Buf::Params);
  }
  py::dict get_grads(const std::string& net, int slot) {
    TrainerLock guard(mu_);
    if (slot != 0 && slot != 1) throw InvalidArgument("slot must be 0 or 1");
    const int i = net_index(net);
    return named_params(t_.plan(i), t_.params(i), slot == 0 ? Buf::Grad0 : Buf::Grad1);
  }
  py::dict get_state(const std::string& net) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    return named_state(t_.plan(i), t_.params(i));
  }
  void set_params(const std::string& net, const py::dict& values, bool strict) {
    TrainerLock guard(mu_);
    const int i = net_index(net);
    set_named(t_.plan(i), t_.params(i), values, strict);
    t_.weights_changed();
  }
  void set_bn_inference(const std::string& mode, int64_t samples) {
    TrainerLock guard(mu_);
    t_.set_bn_inference(bn_inference_from_name(mode), samples);
  }
  py::dict precise_bn_state() {
    TrainerLock guard(mu_);
    const std::vector<float>* s = nullptr;
    {
      py::gil_scoped_release nogil;
      s = &t_.precise_bn_state();
    }
    return named_state_from(t_.plan(0), [&](int64_t off, float* dst, int64_t n) {
      std::copy(s->begin() + off, s->begin() + off + n, dst);
    });
  }
  FArray precise_bn_noise(int64_t k) {
    TrainerLock guard(mu_);
    FArray out = new_array({t_.config().batch, t_.config().z_dim});
    t_.precise_bn_noise(k, out.mutable_data());
    return out;
  }
  py::dict get_adam(const std::string& net) {
    TrainerLock guard(mu_);
    ParamStore& ps = t_.params(net_index(net));
    py::dict d;
    for (auto [name, buf] : {std::pair<const char*, Buf>{"m", Buf::AdamM}, {"v", Buf::AdamV}}) {
      FArray a = new_array({ps.n_params});
      ps.read(buf, 0, a.mutable_data(), ps.n_params);
      d[name] = a;
    }
    return d;
  }
  void set_adam(const std::string& net, const py::array& m, const py::array& v) {
    TrainerLock guard(mu_);
    ParamStore& ps = t_.params(net_index(net));
    check_array(m, {ps.n_params}, "adam m");
    check_array(v, {ps.n_params}, "adam v");
    ps.write(Buf::AdamM, 0, m.cast<FArray>().data(), ps.n_params);
    ps.write(Buf::AdamV, 0, v.cast<FArray>().data(), ps.n_params);
  }
  std::string non_finite_state() {
    TrainerLock guard(mu_);
    py::gil_scoped_release nogil;
    return t_.non_finite_state();
  }
  py::dict get_train_state() {
    TrainerLock guard(mu_);
    return train_state_dict(t_.state());
  }
  void set_train_state(const py::dict& d) {
    TrainerLock guard(mu_);
    TrainState s;
    s.step = get<int64_t>(d, "step", 0), s.adam_t_d = get<int64_t>(d, "adam_t_d", 0);
    s.adam_t_g = get<int64_t>(d, "adam_t_g", 0), s.data.epoch = get<int64_t>(d, "epoch", 0);
    s.data.cursor = get<int64_t>(d, "cursor", 0);
    s.check();
    t_.state() = s;
  }
  int64_t n_params(const std::string& net) { return t_.plan(net_index(net)).n_params; }
  py::list describe_net(const std::string& net) { return describe(t_.plan(net_index(net))); }
  int64_t steps_per_epoch() { return t_.steps_per_epoch(); }
  int64_t steps_left_in_epoch() {
    TrainerLock guard(mu_);
    return t_.steps_left_in_epoch();
  }
  std::string device() { return t_.backend().name(); }
  void set_use_recording(bool on) {
    TrainerLock guard(mu_);
    t_.set_use_recording(on);
  }
  std::string recording_status() {
    TrainerLock guard(mu_);
    return t_.recording_status();
  }
  py::dict step_flops() {
    const StepFlops f = t_.step_flops();
    py::dict d;
    d["forward"] = f.forward, d["backward_data"] = f.backward_data;
    d["backward_weights"] = f.backward_weights, d["total"] = f.total();
    return d;
  }
  int world_size() { return t_.comm().size(); }
  int rank() { return t_.comm().rank(); }
  std::string communicator() { return t_.comm().name(); }
  std::string replica_mismatch() {
    TrainerLock guard(mu_);
    py::gil_scoped_release nogil;
    return t_.replica_mismatch();
  }

 private:
  GanTrainer t_;
  py::object data_;
  std::mutex mu_;
};

BackendOptions network_options(int threads, const std::string& precision) {
  BackendOptions o;
  o.threads = threads;
  o.precision = precision;
  return o;
}

// A single network on one backend, for per-layer tests (gradients vs finite differences).
class PyNetwork {
 public:
  PyNetwork(const py::list& layers, const std::vector<int64_t>& in_shape, int64_t batch,
            uint64_t seed, int threads, const std::string& device, const std::string& precision)
      : be_(make_backend(device, network_options(threads, precision))),
        plan_(plan_network("network", in_shape, parse_layers(layers))),
        batch_(batch),
        precision_(precision) {
    if (batch <= 0) throw InvalidArgument("batch must be positive");
    ps_ = be_->make_params(plan_.n_params, plan_.n_state, 1);
    std::vector<float> w(plan_.n_params), s(plan_.n_state);
    init_parameters(plan_, seed, 0, w.data(), s.data());
    ps_->write(Buf::Params, 0, w.data(), plan_.n_params);
    ps_->write(Buf::State, 0, s.data(), plan_.n_state);
    exec_ = be_->compile(plan_, *ps_, batch, seed);
  }
  FArray forward(const py::array& x, bool training, uint64_t counter) {
    check_array(x, with_batch(batch_, plan_.in), "x");
    FArray a = x.cast<FArray>();
    FArray out = new_array(with_batch(batch_, plan_.out));
    {
      py::gil_scoped_release nogil;
      be_->activate();
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
      be_->activate();
      be_->upload(exec_->d_output(), a.data(), a.size());
      exec_->backward(need_d_input, 0);
      if (need_d_input) be_->download(out.mutable_data(), exec_->d_input(), out.size());
      be_->synchronize();
    }
    return out;
  }
  py::dict get_params() { return named_params(plan_, *ps_, Buf::Params); }
  py::dict get_grads() { return named_params(plan_, *ps_, Buf::Grad0); }
  py::dict get_state() { return named_state(plan_, *ps_); }
  void set_params(const py::dict& v) { set_named(plan_, *ps_, v, false); }
  py::list describe_net() { return describe(plan_); }
  std::string device() { return be_->name(); }
  // Per layer: "gemm" or "native" for a convolution's backward-weights on the CPU backend (the
  // path a network compiled now takes: DCGAN_CPU_BWDW is read at this call), None for other
  // layers.
  py::list cpu_backward_weights() {
    return per_conv_layer("backward-weights paths", [&](const ResolvedLayer& L) {
      const bool bf16 = precision_ == "bf16";
      if (cpu::use_winograd_weights(bf16, L)) return "winograd";
      return cpu::use_gemm_weights(bf16, L) ? "gemm" : "native";
    });
  }
  // Per layer: "winograd" or "native" for a convolution's three passes on the CPU backend
  // (DCGAN_CPU_WINO is read at this call), None for other layers.
  py::list cpu_conv_algorithms() {
    return per_conv_layer("convolution algorithms", [&](const ResolvedLayer& L) {
      return cpu::use_winograd(precision_ == "bf16", L) ? "winograd" : "native";
    });
  }
  // Per layer: "matmul" or "native" for the few-channel pass of a convolution on the CPU backend
  // (a ConvTranspose2d's forward, a Conv2d's backward-data; DCGAN_CPU_THIN is read at this
  // call), None for other layers.
  py::list cpu_few_channel_paths() {
    return per_conv_layer("few-channel paths", [](const ResolvedLayer& L) {
      return cpu::use_thin_scatter(L) ? "matmul" : "native";
    });
  }

 private:
  // pick(L) for each Conv2d/ConvTranspose2d layer of the plan, None for the others; CPU only.
  template <class Pick>
  py::list per_conv_layer(const char* what, Pick pick) const {
    if (be_->name() != "cpu")
      throw InvalidArgument(std::string(what) + " are a CPU backend choice; this network is on '" +
                            be_->name() + "'");
    py::list out;
    for (const ResolvedLayer& L : plan_.layers) {
      const bool conv =
          L.spec.kind == LayerKind::Conv2d || L.spec.kind == LayerKind::ConvTranspose2d;
      if (conv)
        out.append(pick(L));
      else
        out.append(py::none());
    }
    return out;
  }

  std::unique_ptr<Backend> be_;
  NetPlan plan_;
  int64_t batch_;
  std::string precision_;
  std::unique_ptr<ParamStore> ps_;
  std::unique_ptr<NetExec> exec_;
};

// The engine's supervised classifier (core/classifier.hpp): the feature network of
// dcgan.features.FeatureNet.
class PyClassifier {
 public:
  explicit PyClassifier(const py::dict& d) : c_(parse(d), backend_from(d)) {}

  void set_data(const py::array& x, const std::string& layout, const py::object& scale,
                const py::array& labels) {
    TrainerLock guard(mu_);
    auto source = memory_source(x, c_.config().image, layout, scale);
    check_shape(labels, {x.shape(0)}, "labels");
    auto lab = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(labels);
    if (!lab) throw py::type_error("labels must be integers");
    std::vector<int32_t> v(lab.data(), lab.data() + lab.size());
    c_.set_data(std::move(source), std::move(v));
    data_ = x;
  }
  FArray run(int64_t steps) {
    TrainerLock guard(mu_);
    if (steps < 0) throw InvalidArgument("steps must be >= 0");
    std::vector<float> loss(steps), acc(steps);
    {
      py::gil_scoped_release nogil;
      c_.run(steps, loss.data(), acc.data());
    }
    FArray out = new_array({steps, 2});
    auto r = out.mutable_unchecked<2>();
    for (int64_t i = 0; i < steps; ++i) r(i, 0) = loss[i], r(i, 1) = acc[i];
    return out;
  }
  FArray logits(const py::array& x) { return infer(x, false); }
  FArray features(const py::array& x) { return infer(x, true); }
  py::dict get_params() {
    TrainerLock guard(mu_);
    return named_params(c_.plan(), c_.params(), Buf::Params);
  }
  py::dict get_state() {
    TrainerLock guard(mu_);
    return named_state(c_.plan(), c_.params());
  }
  void set_params(const py::dict& values, bool strict) {
    TrainerLock guard(mu_);
    set_named(c_.plan(), c_.params(), values, strict);
  }
  void set_lr(float lr) {
    TrainerLock guard(mu_);
    c_.set_lr(lr);
  }
  void recompute_bn_stats(int64_t batches) {
    TrainerLock guard(mu_);
    py::gil_scoped_release nogil;
    c_.recompute_bn_stats(batches);
  }
  int64_t step() { return c_.state().step; }
  int64_t n_classes() { return c_.n_classes(); }
  std::vector<int64_t> feature_shape() { return c_.feature_plan().out; }
  int64_t steps_per_epoch() { return c_.steps_per_epoch(); }
  py::list describe_net() { return describe(c_.plan()); }
  std::string device() { return c_.backend().name(); }

 private:
  static ClassifierConfig parse(const py::dict& d) {
    ClassifierConfig c;
    c.image = get<std::vector<int64_t>>(d, "image", {});
    if (!d.contains("layers")) throw InvalidArgument("classifier config needs a 'layers' list");
    c.layers = parse_layers(d["layers"].cast<py::list>());
    c.feature_layer = get<int64_t>(d, "feature_layer", -1);
    c.batch = get<int64_t>(d, "batch_size", 128);
    c.adam = {get<float>(d, "lr", 1e-3f), get<float>(d, "beta1", 0.9f),
              get<float>(d, "beta2", 0.999f), get<float>(d, "adam_eps", 1e-8f)};
    c.seed = get<uint64_t>(d, "seed", 0);
    c.flip = get<bool>(d, "flip", false);
    c.shift = get<int64_t>(d, "shift", 0);
    return c;
  }
  FArray infer(const py::array& x, bool feats) {
    TrainerLock guard(mu_);
    check_array(x, with_batch(-1, c_.config().image), "images");
    FArray a = x.cast<FArray>();
    if (a.shape(0) == 0) throw InvalidArgument("images: is empty");
    check_finite(a.data(), a.size(), "images");
    const Shape per = feats ? c_.feature_plan().out : c_.plan().out;
    FArray out = new_array(with_batch(a.shape(0), per));
    float* p = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      if (feats)
        c_.features(a.shape(0), a.data(), p);
      else
        c_.logits(a.shape(0), a.data(), p);
    }
    return out;
  }

  Classifier c_;
  py::object data_;
  std::mutex mu_;
};

py::list backends() {
  py::list out;
  for (const BackendInfo& b : list_backends()) {
    py::dict d;
    d["name"] = b.name, d["library"] = b.library, d["detail"] = b.detail;
    d["available"] = b.available, d["unavailable_reason"] = b.unavailable_reason;
    out.append(d);
  }
  return out;
}

py::dict layer_kinds_dict() {
  py::dict out;
  for (const LayerKindInfo& k : layer_kinds()) {
    py::dict fields;
    for (const char* name : k.fields) {
      const FieldInfo& f = layer_field(name);
      py::dict fd;
      fd["type"] = field_type_name(f.type), fd["default"] = f.default_value, fd["doc"] = f.doc;
      fields[name] = fd;
    }
    py::dict d;
    d["fields"] = fields, d["has_params"] = k.has_params, d["shape_rule"] = k.shape_rule;
    out[k.name] = d;
  }
  return out;
}

// The indices rank `rank` of `world` draws in its next `steps` steps from an EpochSampler,
// starting at (epoch, cursor): for tests of the data sharding.
py::array_t<int64_t> sample_indices(int64_t n, int64_t batch, uint64_t seed, int rank, int world,
                                    int64_t steps, int64_t epoch, int64_t cursor) {
  EpochSampler s(n, batch, seed, rank, world);
  DataCursor c{epoch, cursor};
  py::array_t<int64_t> out({steps, batch});
  for (int64_t i = 0; i < steps; ++i) s.next(c, out.mutable_data(i, 0));
  return out;
}

}  // namespace

namespace dcgan {
void add_kernels_module(py::module_& parent);  // kernels.cpp
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "dcgan C++ core: networks and the GAN training step on registered backends";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const BackendError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  add_kernels_module(m);
  m.def("backends", &backends, "The backends built into this module, with their versions.");
#ifdef DCGAN_WITH_NCCL
  m.attr("has_nccl") = true;
  m.def("nccl_version", &cuda::nccl_version);
  m.def(
      "nccl_unique_id", [] { return py::bytes(cuda::nccl_unique_id()); },
      "A new NCCL unique id (rank 0 makes it and sends it to every rank).");
  m.def(
      "nccl_communicator",
      [](const py::bytes& id, int rank, int size, int device) {
        return communicator_capsule(cuda::make_nccl_communicator(id, rank, size, device));
      },
      py::arg("id"), py::arg("rank"), py::arg("size"), py::arg("device") = -1,
      "An NCCL communicator for a Trainer on the cuda backend (a 'dcgan.Communicator' capsule).");
#else
  m.attr("has_nccl") = false;
#endif
  m.def(
      "cpu_peak",
      [](int threads, double seconds) {
        if (threads < 0 || threads > 256) throw InvalidArgument("threads must be in [0, 256]");
        if (!(seconds > 0 && seconds <= 10)) throw InvalidArgument("seconds must be in (0, 10]");
        cpu::CpuPeak r;
        {
          py::gil_scoped_release nogil;
          r = cpu::measure_fp32_peak(threads, seconds);
        }
        py::dict d;
        d["isa"] = r.isa, d["threads"] = r.threads, d["vector_bits"] = r.vector_bits;
        d["ghz"] = r.ghz, d["gflops"] = r.gflops, d["flops_per_cycle"] = r.flops_per_cycle;
        return d;
      },
      py::arg("threads") = 0, py::arg("seconds") = 0.5,
      "The CPU's fp32 peak GFLOP/s on `threads` threads, measured: clock from dependent adds, "
      "FMA throughput in the vector width of the ISA oneDNN dispatches to.");
  m.def("layer_kinds", &layer_kinds_dict,
        "The layer-kind table: each kind's fields (type, default, doc) and shape rule.");
  m.def("sample_indices", &sample_indices, py::arg("n"), py::arg("batch"), py::arg("seed"),
        py::arg("rank"), py::arg("world"), py::arg("steps"), py::arg("epoch") = 0,
        py::arg("cursor") = 0);

  py::class_<PyTrainer>(m, "Trainer")
      .def(py::init<const py::dict&, const py::object&>(), py::arg("config"),
           py::arg("comm") = py::none())
      .def("step", &PyTrainer::step, py::arg("batch"))
      .def("set_data", &PyTrainer::set_data, py::arg("data"), py::arg("layout") = "nchw",
           py::arg("scale") = py::none())
      .def("set_data_file", &PyTrainer::set_data_file, py::arg("path"), py::arg("offset"),
           py::arg("n"), py::arg("dtype"), py::arg("layout") = "nchw",
           py::arg("scale") = py::none())
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
      .def("non_finite_state", &PyTrainer::non_finite_state,
           "The first array (e.g. 'generator parameters') holding NaN or Inf, or ''.")
      .def("set_train_state", &PyTrainer::set_train_state, py::arg("state"))
      .def("n_params", &PyTrainer::n_params, py::arg("net"))
      .def("describe", &PyTrainer::describe_net, py::arg("net"))
      .def("step_flops", &PyTrainer::step_flops,
           "FLOPs of one training step's conv/convT/dense layers (2 per multiply-add) by pass.")
      .def("steps_per_epoch", &PyTrainer::steps_per_epoch)
      .def("steps_left_in_epoch", &PyTrainer::steps_left_in_epoch)
      .def_property_readonly("device", &PyTrainer::device)
      .def("set_use_recording", &PyTrainer::set_use_recording, py::arg("on"),
           "Replay run()'s step as a recording (a CUDA graph) where the backend can.")
      .def_property_readonly("recording_status", &PyTrainer::recording_status,
                             "'recorded', 'eager', or why the backend could not record.")
      .def("set_bn_inference", &PyTrainer::set_bn_inference, py::arg("mode"),
           py::arg("samples") = 0)
      .def("precise_bn_state", &PyTrainer::precise_bn_state,
           "G's precise BatchNorm statistics for the current weights (computed if stale).")
      .def("precise_bn_noise", &PyTrainer::precise_bn_noise, py::arg("k"))
      .def_property_readonly("world_size", &PyTrainer::world_size)
      .def_property_readonly("rank", &PyTrainer::rank)
      .def_property_readonly("communicator", &PyTrainer::communicator)
      .def("replica_mismatch", &PyTrainer::replica_mismatch,
           "'' when every rank holds rank 0's parameters, Adam moments and BN statistics; else "
           "which differ. Every rank must call it.");

  py::class_<PyClassifier>(m, "Classifier")
      .def(py::init<const py::dict&>(), py::arg("config"))
      .def("set_data", &PyClassifier::set_data, py::arg("data"), py::arg("layout"),
           py::arg("scale"), py::arg("labels"))
      .def("run", &PyClassifier::run, py::arg("steps"))
      .def("logits", &PyClassifier::logits, py::arg("images"))
      .def("features", &PyClassifier::features, py::arg("images"))
      .def("get_params", &PyClassifier::get_params)
      .def("get_state", &PyClassifier::get_state)
      .def("set_params", &PyClassifier::set_params, py::arg("values"), py::arg("strict") = true)
      .def("set_lr", &PyClassifier::set_lr, py::arg("lr"))
      .def("recompute_bn_stats", &PyClassifier::recompute_bn_stats, py::arg("batches"))
      .def("describe", &PyClassifier::describe_net)
      .def_property_readonly("step", &PyClassifier::step)
      .def_property_readonly("n_classes", &PyClassifier::n_classes)
      .def_property_readonly("feature_shape", &PyClassifier::feature_shape)
      .def_property_readonly("steps_per_epoch", &PyClassifier::steps_per_epoch)
      .def_property_readonly("device", &PyClassifier::device);

  py::class_<PyNetwork>(m, "Network")
      .def(py::init<const py::list&, const std::vector<int64_t>&, int64_t, uint64_t, int,
                    const std::string&, const std::string&>(),
           py::arg("layers"), py::arg("in_shape"), py::arg("batch"), py::arg("seed") = 0,
           py::arg("threads") = 0, py::arg("device") = "cpu", py::arg("precision") = "fp32")
      .def("forward", &PyNetwork::forward, py::arg("x"), py::arg("training") = true,
           py::arg("counter") = 0)
      .def("backward", &PyNetwork::backward, py::arg("dy"), py::arg("need_d_input") = true)
      .def("get_params", &PyNetwork::get_params)
      .def("set_params", &PyNetwork::set_params, py::arg("values"))
      .def("get_grads", &PyNetwork::get_grads)
      .def("get_state", &PyNetwork::get_state)
      .def("describe", &PyNetwork::describe_net)
      .def("cpu_backward_weights", &PyNetwork::cpu_backward_weights)
      .def("cpu_few_channel_paths", &PyNetwork::cpu_few_channel_paths)
      .def("cpu_conv_algorithms", &PyNetwork::cpu_conv_algorithms)
      .def_property_readonly("device", &PyNetwork::device);
}
