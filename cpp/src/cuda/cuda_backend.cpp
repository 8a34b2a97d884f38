// The CUDA Backend: device parameter stores, pinned staging for uploads and real batches, the
// element-wise operations on the kernels of ops.hpp, CUDA-graph recording, and registration.
#include "cuda/cuda_backend.hpp"

#include <cstring>
#include <deque>
#include <vector>

#include "core/registry.hpp"
#include "cuda/layer.hpp"
#include "cuda/ops.hpp"

namespace dcgan::cuda {

// ------------------------------------------------------------------------------- errors
void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so that later calls start clean
    throw BackendError(std::string("CUDA error: ") + cudaGetErrorString(e) + " in " + what + " (" +
                       file + ":" + std::to_string(line) + ")");
  }
}

void check_cudnn(cudnnStatus_t s, const char* what, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw BackendError(std::string("cuDNN error: ") + cudnnGetErrorString(s) + " in " + what +
                       " (" + file + ":" + std::to_string(line) + ")");
}

void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw BackendError(std::string("cuBLAS error: ") + cublasGetStatusString(s) + " in " + what +
                       " (" + file + ":" + std::to_string(line) + ")");
}

// ------------------------------------------------------------------------------- memory
DevMem::DevMem(int64_t n) : n_(n) {
  if (n < 0) throw InvalidArgument("negative allocation");
  const size_t bytes = static_cast<size_t>(n > 0 ? n : 1) * sizeof(float);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw BackendError("CUDA out of memory allocating " + std::to_string(bytes) +
                       " bytes: " + cudaGetErrorString(e));
  }
  p_ = static_cast<float*>(p);
  // cudaMemset runs on the legacy default stream, asynchronously, and the backend's stream is
  // non-blocking (no implicit ordering with it): wait, so that later work on that stream (a
  // staged batch's copy, Adam on the zeroed moments) cannot run before the zeroing.
  DCGAN_CUDA_OK(cudaMemset(p_, 0, bytes));
  DCGAN_CUDA_OK(cudaStreamSynchronize(nullptr));
}

DevMem::~DevMem() {
  if (p_) cudaFree(p_);
}

DeviceParams::DeviceParams(Ctx& c, int64_t n_params, int64_t n_state, int grad_slots) : c_(c) {
  if (grad_slots != 1 && grad_slots != 2) throw InvalidArgument("grad_slots must be 1 or 2");
  this->n_params = n_params;
  this->n_state = n_state;
  this->grad_slots = grad_slots;
  // Each array starts on a 256-byte boundary.
  const int64_t np = (n_params + 63) / 64 * 64, ns = (n_state + 63) / 64 * 64;
  buf_ = DevMem((3 + grad_slots) * np + ns);
  p_ = buf_.get(), m_ = p_ + np, v_ = m_ + np, s_ = v_ + np, g0_ = s_ + ns;
  g1_ = grad_slots == 2 ? g0_ + np : nullptr;
}

float* DeviceParams::data(Buf b) {
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

// Rare (initialisation, checkpoints): copies on the backend's stream (ordered after its work and
// before what follows; a plain cudaMemcpy would go to the legacy stream, which the non-blocking
// stream does not wait for, and a pageable H2D cudaMemcpy may return before its DMA is done),
// then waited for.
void DeviceParams::write(Buf b, int64_t offset, const float* host, int64_t n) {
  check_range(b, offset, n);
  if (n == 0) return;
  DCGAN_CUDA_OK(cudaMemcpyAsync(data(b) + offset, host, static_cast<size_t>(n) * sizeof(float),
                                cudaMemcpyHostToDevice, c_.stream));
  DCGAN_CUDA_OK(cudaStreamSynchronize(c_.stream));
}

void DeviceParams::read(Buf b, int64_t offset, float* host, int64_t n) {
  check_range(b, offset, n);
  if (n == 0) return;
  DCGAN_CUDA_OK(cudaMemcpyAsync(host, data(b) + offset, static_cast<size_t>(n) * sizeof(float),
                                cudaMemcpyDeviceToHost, c_.stream));
  DCGAN_CUDA_OK(cudaStreamSynchronize(c_.stream));
}

namespace {

// Pinned host memory used as a ring: each upload copies its bytes into the next free region
// and the device reads them asynchronously; a region is reused only after the event recorded
// behind its copy has completed, so the host waits only when it is a whole ring ahead.
class PinnedRing {
 public:
  explicit PinnedRing(size_t bytes) { grow(bytes); }
  PinnedRing(const PinnedRing&) = delete;
  PinnedRing& operator=(const PinnedRing&) = delete;
  ~PinnedRing() {
    drain();
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
    if (base_) cudaFreeHost(base_);
  }

  // n bytes of pinned memory that no pending copy reads.
  char* take(size_t n) {
    n = (n + 255) / 256 * 256;
    if (n > cap_) {
      drain();
      grow(n > 2 * cap_ ? n : 2 * cap_);
    }
    if (head_ + n > cap_) head_ = 0;
    const size_t begin = head_, end = head_ + n;
    for (auto it = pending_.begin(); it != pending_.end();) {
      const bool overlaps = it->begin < end && begin < it->end;
      if (overlaps || cudaEventQuery(it->ev) == cudaSuccess) {
        if (overlaps) DCGAN_CUDA_OK(cudaEventSynchronize(it->ev));
        free_events_.push_back(it->ev);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    cudaGetLastError();  // cudaEventQuery's cudaErrorNotReady is not an error here
    last_ = {begin, end, nullptr};
    head_ = end;
    return base_ + begin;
  }

  // The region last taken is read by the work enqueued on `s` so far.
  void in_use_until_now(cudaStream_t s) {
    cudaEvent_t e;
    if (free_events_.empty()) {
      DCGAN_CUDA_OK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    } else {
      e = free_events_.back();
      free_events_.pop_back();
    }
    DCGAN_CUDA_OK(cudaEventRecord(e, s));
    last_.ev = e;
    pending_.push_back(last_);
  }

 private:
  struct Region {
    size_t begin, end;
    cudaEvent_t ev;
  };
  void drain() {
    for (auto& r : pending_) {
      cudaEventSynchronize(r.ev);
      free_events_.push_back(r.ev);
    }
    pending_.clear();
  }
  void grow(size_t bytes) {
    if (base_) cudaFreeHost(base_);
    base_ = nullptr;
    void* p = nullptr;
    DCGAN_CUDA_OK(cudaMallocHost(&p, bytes));
    base_ = static_cast<char*>(p);
    cap_ = bytes;
    head_ = 0;
  }
  char* base_ = nullptr;
  size_t cap_ = 0, head_ = 0;
  Region last_{};
  std::deque<Region> pending_;
  std::vector<cudaEvent_t> free_events_;
};

// A staged real batch: the images as stored (uint8 or float32), on the device.
struct StagedBatch {
  DevMem mem;
  size_t capacity = 0;  // bytes
  ImageFormat fmt;
  int64_t count = -1;
};

bool same_format(const ImageFormat& a, const ImageFormat& b) {
  return a.c == b.c && a.h == b.h && a.w == b.w && a.dtype == b.dtype && a.layout == b.layout &&
         a.identity == b.identity && a.sub == b.sub && a.mul == b.mul && a.add == b.add;
}

class CudaGraph : public Recording {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t s) : exec_(exec), s_(s) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  void replay() override { DCGAN_CUDA_OK(cudaGraphLaunch(exec_, s_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t s_;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& opts) {
    if (opts.precision != "fp32")
      throw InvalidArgument("precision='" + opts.precision +
                            "' is not supported on the cuda backend (it trains in fp32; "
                            "tf32=True allows TF32 tensor-core math). Use precision='fp32'.");
    int count = 0;
    DCGAN_CUDA_OK(cudaGetDeviceCount(&count));
    if (opts.device < 0)
      DCGAN_CUDA_OK(cudaGetDevice(&c_.device));  // -1: the current device (BackendOptions)
    else
      c_.device = opts.device;
    if (c_.device >= count)
      throw InvalidArgument("CUDA device " + std::to_string(c_.device) + " does not exist (" +
                            std::to_string(count) + " found)");
    c_.tf32 = opts.tf32;
    DCGAN_CUDA_OK(cudaSetDevice(c_.device));
    // Room for several steps' staged batches (n_critic of them per step) before a region is
    // reused; a larger request grows it.
    ring_ = std::make_unique<PinnedRing>(kRingBytes);
    DCGAN_CUDA_OK(cudaStreamCreateWithFlags(&c_.stream, cudaStreamNonBlocking));
    DCGAN_CUDNN(cudnnCreate(&c_.dnn));
    DCGAN_CUDNN(cudnnSetStream(c_.dnn, c_.stream));
    DCGAN_CUBLAS(cublasCreate(&c_.blas));
    DCGAN_CUBLAS(cublasSetStream(c_.blas, c_.stream));
    // TF32 only when asked for: it changes the numerics of every GEMM.
    DCGAN_CUBLAS(
        cublasSetMathMode(c_.blas, c_.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    // A workspace of our own, so that cuBLAS allocates nothing while a graph is recorded.
    blas_ws_ = DevMem(kBlasWorkspaceBytes / sizeof(float));
    DCGAN_CUBLAS(cublasSetWorkspace(c_.blas, blas_ws_.get(), kBlasWorkspaceBytes));
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(c_.stream);
    if (c_.blas) cublasDestroy(c_.blas);
    if (c_.dnn) cudnnDestroy(c_.dnn);
    if (c_.stream) cudaStreamDestroy(c_.stream);
  }

  std::string name() const override { return "cuda"; }
  void activate() override { DCGAN_CUDA_OK(cudaSetDevice(c_.device)); }
  void synchronize() override { DCGAN_CUDA_OK(cudaStreamSynchronize(c_.stream)); }
  bool host_memory() const override { return false; }
  void* native_stream() override { return c_.stream; }
  int64_t memory_available() const override {
    size_t free_b = 0, total = 0;
    if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) {
      cudaGetLastError();
      return -1;
    }
    return static_cast<int64_t>(free_b);
  }

  std::unique_ptr<ParamStore> make_params(int64_t n_params, int64_t n_state,
                                          int grad_slots) override {
    return std::make_unique<DeviceParams>(c_, n_params, n_state, grad_slots);
  }
  std::unique_ptr<NetExec> compile(const NetPlan& plan, ParamStore& params, int64_t batch,
                                   uint64_t seed) override {
    auto* dp = dynamic_cast<DeviceParams*>(&params);
    if (!dp) throw InvalidArgument("parameters of another backend given to the cuda backend");
    return compile_net(c_, plan, *dp, batch, seed);
  }

  float* alloc(int64_t n) override {
    DevMem m(n);
    float* p = m.get();
    owned_.emplace_back(std::move(m));
    return p;
  }
  void release(float* p) override {
    for (auto it = owned_.begin(); it != owned_.end(); ++it)
      if (it->get() == p) {
        cudaStreamSynchronize(c_.stream);
        owned_.erase(it);
        return;
      }
  }
  void upload(float* dst, const float* host, int64_t n) override {
    if (n <= 0) return;
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    char* pinned = ring_->take(bytes);
    std::memcpy(pinned, host, bytes);
    DCGAN_CUDA_OK(cudaMemcpyAsync(dst, pinned, bytes, cudaMemcpyHostToDevice, c_.stream));
    ring_->in_use_until_now(c_.stream);
  }
  void download(float* host, const float* src, int64_t n) override {
    if (n <= 0) return;
    DCGAN_CUDA_OK(cudaMemcpyAsync(host, src, static_cast<size_t>(n) * sizeof(float),
                                  cudaMemcpyDeviceToHost, c_.stream));
    DCGAN_CUDA_OK(cudaStreamSynchronize(c_.stream));
  }
  void copy(float* dst, const float* src, int64_t n) override {
    if (n <= 0 || dst == src) return;
    DCGAN_CUDA_OK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float),
                                  cudaMemcpyDeviceToDevice, c_.stream));
  }

  bool stage_batch(int slot, const ImageFormat& fmt, const void* const* images,
                   int64_t count) override {
    if (slot < 0 || count < 0) throw InvalidArgument("bad staging slot or count");
    if (static_cast<size_t>(slot) >= staged_.size()) staged_.resize(slot + 1);
    StagedBatch& sb = staged_[slot];
    const size_t per = static_cast<size_t>(fmt.bytes()), bytes = per * count;
    bool changed = sb.count != count || !same_format(sb.fmt, fmt);
    if (bytes > sb.capacity) {
      synchronize();  // the old buffer may still be read
      sb.mem = DevMem(static_cast<int64_t>((bytes + 3) / 4));
      sb.capacity = bytes;
      changed = true;
    }
    sb.fmt = fmt, sb.count = count;
    if (bytes == 0) return changed;
    char* pinned = ring_->take(bytes);
    for (int64_t i = 0; i < count; ++i) std::memcpy(pinned + i * per, images[i], per);
    DCGAN_CUDA_OK(cudaMemcpyAsync(sb.mem.get(), pinned, bytes, cudaMemcpyHostToDevice, c_.stream));
    ring_->in_use_until_now(c_.stream);
    return changed;
  }
  void convert_batch(float* dst, int slot) override {
    if (slot < 0 || static_cast<size_t>(slot) >= staged_.size() || staged_[slot].count < 0)
      throw InvalidArgument("staging slot " + std::to_string(slot) + " holds no batch");
    const StagedBatch& sb = staged_[slot];
    if (sb.count > 0) cuda::convert_batch(c_.stream, dst, sb.mem.get(), sb.count, sb.fmt);
  }
  void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                  Counter counter, int64_t first) override {
    cuda::fill_noise(c_.stream, dst, n, kind, seed, stream, counter, first);
  }
  void d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
              float* d_logits, float* loss_out, float* mean_out) override {
    cuda::d_loss(c_.stream, kind, real, logits, n, target, d_logits, loss_out, mean_out);
  }
  void g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits, float* loss_out,
              float* mean_out) override {
    cuda::g_loss(c_.stream, kind, logits, n, d_logits, loss_out, mean_out);
  }
  void softmax_xent(const float* logits, const float* labels, int64_t n, int64_t k, float* d_logits,
                    float* loss_out, float* correct_out) override {
    cuda::softmax_xent(c_.stream, logits, labels, n, k, d_logits, loss_out, correct_out);
  }
  int64_t count_non_finite(const float* p, int64_t n) override {
    if (n <= 0) return 0;
    if (!count_.get()) count_ = DevMem(2);  // an unsigned long long counter
    auto* c = reinterpret_cast<unsigned long long*>(count_.get());
    cuda::count_non_finite(c_.stream, p, n, c);
    unsigned long long host = 0;
    DCGAN_CUDA_OK(cudaMemcpyAsync(&host, c, sizeof host, cudaMemcpyDeviceToHost, c_.stream));
    DCGAN_CUDA_OK(cudaStreamSynchronize(c_.stream));
    return static_cast<int64_t>(host);
  }
  void adam(ParamStore& p, const AdamParams& h, Counter t, const float* g0,
            const float* g1) override {
    cuda::adam(c_.stream, p.params(), p.adam_m(), p.adam_v(), p.n_params, g0, g1, h.lr, h.beta1,
               h.beta2, h.eps, t);
  }

  std::unique_ptr<Recording> record(const std::function<void()>& enqueue,
                                    std::string* why) override {
    activate();
    DCGAN_CUDA_OK(cudaStreamBeginCapture(c_.stream, cudaStreamCaptureModeThreadLocal));
    std::string failure;
    try {
      enqueue();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(c_.stream, &graph);
    cudaGetLastError();
    if (failure.empty() && end != cudaSuccess)
      failure = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    cudaGraphExec_t exec = nullptr;
    if (failure.empty()) {
      const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
      if (e != cudaSuccess) {
        cudaGetLastError();
        failure = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e);
      }
    }
    if (graph) cudaGraphDestroy(graph);
    if (!failure.empty()) {
      if (why) *why = "CUDA graph capture failed (" + failure + "); the step runs eagerly";
      return nullptr;
    }
    return std::make_unique<CudaGraph>(exec, c_.stream);
  }

 private:
  static constexpr size_t kBlasWorkspaceBytes = size_t(32) << 20;
  static constexpr size_t kRingBytes = size_t(64) << 20;
  Ctx c_;
  DevMem blas_ws_;
  std::unique_ptr<PinnedRing> ring_;
  std::vector<StagedBatch> staged_;
  std::deque<DevMem> owned_;
  DevMem count_;
};

std::string version_string(int v) {
  // cuDNN 9: major * 10000 + minor * 100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

BackendInfo cuda_info() {
  BackendInfo info;
  info.name = "cuda";
  int rt = 0, blas_major = 0, blas_minor = 0, blas_patch = 0;
  cudaRuntimeGetVersion(&rt);
  cublasGetProperty(MAJOR_VERSION, &blas_major);
  cublasGetProperty(MINOR_VERSION, &blas_minor);
  cublasGetProperty(PATCH_LEVEL, &blas_patch);
  info.library = "cuDNN " + version_string(static_cast<int>(cudnnGetVersion())) + ", cuBLAS " +
                 std::to_string(blas_major) + "." + std::to_string(blas_minor) + "." +
                 std::to_string(blas_patch) + ", CUDA runtime " + std::to_string(rt / 1000) + "." +
                 std::to_string(rt % 1000 / 10);
  std::string why;
  info.available = cuda_available(&why);
  if (info.available) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
      info.detail =
          std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ")";
  } else {
    info.unavailable_reason = why;
  }
  return info;
}

}  // namespace

bool cuda_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    const std::string rts = std::to_string(rt / 1000) + "." + std::to_string(rt % 1000 / 10);
    if (!why) return false;
    if (e == cudaErrorInsufficientDriver)
      *why = "no NVIDIA driver is loaded, or it is older than this build's CUDA " + rts +
             " runtime needs (" + cudaGetErrorString(e) + ")";
    else if (e == cudaErrorNoDevice)
      *why = "no CUDA GPU found";
    else
      *why = std::string("no usable CUDA GPU (") + cudaGetErrorString(e) + ")";
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA GPU found";
    return false;
  }
  return true;
}

void register_cuda_backend() {
  register_backend({"cuda", cuda_info, [](const BackendOptions& o) -> std::unique_ptr<Backend> {
                      return std::make_unique<CudaBackend>(o);
                    }});
}

}  // namespace dcgan::cuda
