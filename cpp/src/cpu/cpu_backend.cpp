#include "cpu/cpu_backend.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/registry.hpp"
#include "cpu/ops.hpp"

namespace dcgan::cpu {

std::shared_ptr<dnnl::memory> Arena::get(const dnnl::engine& eng, const dnnl::memory::desc& desc) {
  // Forget the memories of networks freed since the last call.
  users_.erase(std::remove_if(users_.begin(), users_.end(),
                              [](const std::weak_ptr<dnnl::memory>& w) { return w.expired(); }),
               users_.end());
  const size_t need = std::max<size_t>(desc.get_size(), 64);
  if (need > size_) {
    const size_t size = (need + 4095) / 4096 * 4096;
    void* p = std::aligned_alloc(4096, size);
    if (!p) throw BackendError("out of host memory for a " + std::to_string(size) + "-byte buffer");
    std::shared_ptr<void> buf(p, std::free);
    for (const std::weak_ptr<dnnl::memory>& w : users_)
      if (auto m = w.lock()) m->set_data_handle(p);
    buf_ = std::move(buf);
    size_ = size;
  }
  auto m = std::make_shared<dnnl::memory>(desc, eng, buf_.get());
  users_.push_back(m);
  return m;
}

HostParams::HostParams(int64_t n_params, int64_t n_state, int grad_slots) {
  if (grad_slots != 1 && grad_slots != 2) throw InvalidArgument("grad_slots must be 1 or 2");
  this->n_params = n_params;
  this->n_state = n_state;
  this->grad_slots = grad_slots;
  // Each array starts on a 64-byte boundary.
  const int64_t np = (n_params + 15) / 16 * 16, ns = (n_state + 15) / 16 * 16;
  buf_.assign(static_cast<size_t>((3 + grad_slots) * np + ns + 16), 0.f);
  float* base = buf_.data();
  base += (16 - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % 16) % 16;
  p_ = base, m_ = p_ + np, v_ = m_ + np, s_ = v_ + np, g0_ = s_ + ns;
  g1_ = grad_slots == 2 ? g0_ + np : nullptr;
}

float* HostParams::data(Buf b) {
  switch (b) {
    case Buf::Params:
      return p_;
    case Buf::State:
      return s_;
    case Buf::Grad0:
      return g0_;
    case Buf::Grad1:
      return g1_;
    case Buf::AdamM:
      return m_;
    case Buf::AdamV:
      return v_;
  }
  return nullptr;
}

void HostParams::write(Buf b, int64_t offset, const float* host, int64_t n) {
  check_range(b, offset, n);
  if (n) std::memcpy(data(b) + offset, host, static_cast<size_t>(n) * sizeof(float));
  if (b == Buf::Params) touch();
}

void HostParams::read(Buf b, int64_t offset, float* host, int64_t n) {
  check_range(b, offset, n);
  if (n) std::memcpy(host, data(b) + offset, static_cast<size_t>(n) * sizeof(float));
}

namespace {

// oneDNN reports failures as dnnl::error; the rest of the library sees BackendError.
template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    throw BackendError(std::string("oneDNN error: ") + e.what());
  }
}

class GuardedNet : public NetExec {
 public:
  explicit GuardedNet(std::unique_ptr<NetExec> net) : net_(std::move(net)) {}
  int64_t batch() const override { return net_->batch(); }
  float* input() override { return net_->input(); }
  const float* output() override { return net_->output(); }
  float* d_output() override { return net_->d_output(); }
  const float* d_input() override { return net_->d_input(); }
  void forward(bool training, Counter ctr) override {
    guarded([&] { net_->forward(training, ctr); });
  }
  void backward(bool need_d_input, int slot) override {
    guarded([&] { net_->backward(need_d_input, slot); });
  }
  void set_batch_comm(Communicator* comm) override { net_->set_batch_comm(comm); }
  void accumulate_bn_stats(float* sums, float* mean_sq) override {
    net_->accumulate_bn_stats(sums, mean_sq);
  }

 private:
  std::unique_ptr<NetExec> net_;
};

// ISAs whose oneDNN convolutions, inner products and BatchNorm train in bf16 natively.
bool isa_has_bf16(dnnl::cpu_isa isa) {
  using I = dnnl::cpu_isa;
  return isa == I::avx512_core_bf16 || isa == I::avx512_core_fp16 || isa == I::avx512_core_amx ||
         isa == I::avx512_core_amx_fp16;
}

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& opts) : threads_(opts.threads) {
    if (threads_ < 0 || threads_ > kMaxThreads)
      throw InvalidArgument("threads must be in [0, " + std::to_string(kMaxThreads) +
                            "] (0 = all cores; libgomp aborts the process when it cannot create "
                            "the threads asked for), got " +
                            std::to_string(threads_));
    if (opts.precision == "bf16") {
      const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
      if (!isa_has_bf16(isa))
        throw InvalidArgument(
            std::string("precision='bf16' needs a CPU with AVX512-BF16 or AMX (oneDNN has no "
                        "bf16 training kernels below them); this CPU's oneDNN dispatches to ") +
            isa_name(isa) + ". Use precision='fp32'.");
      ctx_.act = dnnl::memory::data_type::bf16;
    } else if (opts.precision != "fp32") {
      throw InvalidArgument("precision must be 'fp32' or 'bf16', got '" + opts.precision + "'");
    }
    activate();
  }
  std::string name() const override { return "cpu"; }
  int64_t memory_available() const override {
    // MemAvailable of /proc/meminfo (kB): what the kernel can hand out without swapping.
    std::FILE* f = std::fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    std::fclose(f);
    return kb < 0 ? -1 : static_cast<int64_t>(kb) * 1024;
  }
  // OpenMP's thread count is per calling thread: set it wherever this backend is entered.
  void activate() override {
    if (threads_ > 0) omp_set_num_threads(threads_);
  }
  std::unique_ptr<ParamStore> make_params(int64_t n_params, int64_t n_state,
                                          int grad_slots) override {
    return std::make_unique<HostParams>(n_params, n_state, grad_slots);
  }
  std::unique_ptr<NetExec> compile(const NetPlan& plan, ParamStore& params, int64_t batch,
                                   uint64_t seed) override {
    return guarded([&] {
      return std::unique_ptr<NetExec>(
          std::make_unique<GuardedNet>(compile_net(ctx_, plan, params, batch, seed)));
    });
  }
  float* alloc(int64_t n) override {
    auto* p = static_cast<float*>(
        std::calloc(static_cast<size_t>(std::max<int64_t>(n, 1)), sizeof(float)));
    if (!p) throw BackendError("out of host memory allocating " + std::to_string(n) + " floats");
    return p;
  }
  void release(float* p) override { std::free(p); }
  void upload(float* dst, const float* host, int64_t n) override { copy_floats(dst, host, n); }
  void download(float* host, const float* src, int64_t n) override { copy_floats(host, src, n); }
  void copy(float* dst, const float* src, int64_t n) override { copy_floats(dst, src, n); }
  // Converted at once into the slot's float buffer; convert_batch copies it out.
  bool stage_batch(int slot, const ImageFormat& fmt, const void* const* images,
                   int64_t count) override {
    if (slot < 0 || count < 0) throw InvalidArgument("bad staging slot or count");
    if (static_cast<size_t>(slot) >= staged_.size()) staged_.resize(slot + 1);
    std::vector<float>& buf = staged_[slot];
    const bool changed = buf.size() != static_cast<size_t>(count * fmt.numel());
    buf.resize(static_cast<size_t>(count * fmt.numel()));
    cpu::load_batch(buf.data(), fmt, images, count);
    return changed;
  }
  void convert_batch(float* dst, int slot) override {
    if (slot < 0 || static_cast<size_t>(slot) >= staged_.size())
      throw InvalidArgument("staging slot " + std::to_string(slot) + " holds no batch");
    copy_floats(dst, staged_[slot].data(), static_cast<int64_t>(staged_[slot].size()));
  }
  void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                  Counter counter, int64_t first) override {
    cpu::fill_noise(dst, n, kind, seed, stream, counter.value(), first);
  }
  void d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
              float* d_logits, float* loss_out, float* mean_out) override {
    const LossOut r = cpu::d_loss(kind, real, logits, n, target, d_logits);
    *loss_out = static_cast<float>(r.loss), *mean_out = static_cast<float>(r.mean_out);
  }
  void g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits, float* loss_out,
              float* mean_out) override {
    const LossOut r = cpu::g_loss(kind, logits, n, d_logits);
    *loss_out = static_cast<float>(r.loss), *mean_out = static_cast<float>(r.mean_out);
  }
  void softmax_xent(const float* logits, const float* labels, int64_t n, int64_t k, float* d_logits,
                    float* loss_out, float* correct_out) override {
    const LossOut r = cpu::softmax_xent(logits, labels, n, k, d_logits);
    *loss_out = static_cast<float>(r.loss), *correct_out = static_cast<float>(r.mean_out);
  }
  int64_t count_non_finite(const float* p, int64_t n) override {
    int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) bad += std::isfinite(p[i]) ? 0 : 1;
    return bad;
  }
  void adam(ParamStore& p, const AdamParams& h, Counter t, const float* g0,
            const float* g1) override {
    adam_update(p.params(), p.adam_m(), p.adam_v(), p.n_params, h, static_cast<int64_t>(t.value()),
                g0, g1);
    static_cast<HostParams&>(p).touch();
  }

 private:
  static constexpr int kMaxThreads = 256;  // as Config.threads (python/dcgan/config.py)
  static void copy_floats(float* dst, const float* src, int64_t n) {
    if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
  int threads_;
  Ctx ctx_;
  std::vector<std::vector<float>> staged_;
};

}  // namespace

const char* isa_name(dnnl::cpu_isa isa) {
  using I = dnnl::cpu_isa;
  switch (isa) {
    case I::sse41:
      return "sse41";
    case I::avx:
      return "avx";
    case I::avx2:
      return "avx2";
    case I::avx2_vnni:
      return "avx2_vnni";
    case I::avx2_vnni_2:
      return "avx2_vnni_2";
    case I::avx512_core:
      return "avx512_core";
    case I::avx512_core_vnni:
      return "avx512_core_vnni";
    case I::avx512_core_bf16:
      return "avx512_core_bf16";
    case I::avx512_core_fp16:
      return "avx512_core_fp16";
    case I::avx512_core_amx:
      return "avx512_core_amx";
    case I::avx512_core_amx_fp16:
      return "avx512_core_amx_fp16";
    default:
      return "default";
  }
}

namespace {

BackendInfo cpu_info() {
  BackendInfo info;
  info.name = "cpu";
  const auto* v = dnnl::version();
  info.library = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                 std::to_string(v->patch);
  info.detail = isa_name(dnnl::get_effective_cpu_isa());
  return info;
}

}  // namespace

void register_cpu_backend() {
  register_backend({"cpu", cpu_info, [](const BackendOptions& o) -> std::unique_ptr<Backend> {
                      return std::make_unique<CpuBackend>(o);
                    }});
}

}  // namespace dcgan::cpu
