// The interface every backend implements: parameter stores, networks compiled for a batch size,
// and the element-wise operations of the GAN step. Pointers handed across it live in the
// backend's memory (host memory for the CPU backend, device memory for CUDA). Work is enqueued:
// nothing but download() and synchronize() waits for it, so a training step never stops for
// the host.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/batch_source.hpp"
#include "core/counter.hpp"
#include "core/spec.hpp"

namespace dcgan {

class Communicator;

// The arrays of one network's ParamStore.
enum class Buf { Params, State, Grad0, Grad1, AdamM, AdamV };

// Parameters of one network, shared by all its compiled batch sizes: parameters, BN running
// statistics, two gradient slots (D's real and fake passes write separately) and Adam's moments.
class ParamStore {
 public:
  virtual ~ParamStore() = default;
  int64_t n_params = 0, n_state = 0;
  int grad_slots = 2;              // 1 for a network trained on one pass per step (G)
  virtual float* data(Buf b) = 0;  // backend memory
  // Host <-> backend copies of [offset, offset + n) of one array (bounds-checked).
  virtual void write(Buf b, int64_t offset, const float* host, int64_t n) = 0;
  virtual void read(Buf b, int64_t offset, float* host, int64_t n) = 0;

  int64_t size(Buf b) const { return b == Buf::State ? n_state : n_params; }
  float* params() { return data(Buf::Params); }
  float* state() { return data(Buf::State); }
  float* grad(int slot) { return data(slot == 0 ? Buf::Grad0 : Buf::Grad1); }
  float* adam_m() { return data(Buf::AdamM); }
  float* adam_v() { return data(Buf::AdamV); }

 protected:
  void check_range(Buf b, int64_t offset, int64_t n) const {
    if (b == Buf::Grad1 && grad_slots < 2)
      throw InvalidArgument("this network keeps one gradient slot (slot 0)");
    if (offset < 0 || n < 0 || offset + n > size(b))
      throw InvalidArgument("parameter range [" + std::to_string(offset) + ", " +
                            std::to_string(offset + n) + ") is outside an array of " +
                            std::to_string(size(b)));
  }
};

// Work recorded once and replayed (a CUDA graph): the same kernels on the same buffers.
class Recording {
 public:
  virtual ~Recording() = default;
  virtual void replay() = 0;
};

// A network compiled for a fixed batch size. All buffers are fixed at construction.
class NetExec {
 public:
  virtual ~NetExec() = default;
  virtual int64_t batch() const = 0;
  virtual float* input() = 0;          // (batch, *in), plain row-major
  virtual const float* output() = 0;   // (batch, *out), plain; valid after forward
  virtual float* d_output() = 0;       // filled by the caller before backward
  virtual const float* d_input() = 0;  // valid after backward(need_d_input = true)
  // `dropout_counter` selects this pass's dropout masks (Stream::Dropout of the net's seed).
  virtual void forward(bool training, Counter dropout_counter) = 0;
  // Back-propagates d_output. Weight gradients overwrite grad(grad_slot); -1 skips them.
  // Forward state is left intact, so backward may run again with another d_output.
  virtual void backward(bool need_d_input, int grad_slot) = 0;
  // After a training-mode forward: adds every BatchNorm layer's batch mean and biased variance
  // (bn_accumulate) into sums[state_offset, +C) and sums[state_offset + C, +C), and the squared
  // mean into mean_sq[state_offset, +C). Both arrays: n_state floats in backend memory.
  virtual void accumulate_bn_stats(float* sums, float* mean_sq) = 0;
  // Synchronised BatchNorm: while `comm` is set, training-mode BatchNorm layers normalise with
  // the statistics of the batch over all ranks (their moments all-gathered) and back-propagate
  // through them; nullptr (the default) normalises with this rank's batch. Throws
  // InvalidArgument where the backend cannot.
  virtual void set_batch_comm(Communicator* comm) {
    if (comm) throw InvalidArgument("this backend has no synchronised BatchNorm");
  }
};

struct AdamParams {
  float lr = 2e-4f, beta1 = 0.5f, beta2 = 0.999f, eps = 1e-8f;
};

// What a caller may ask of a backend when creating it.
struct BackendOptions {
  int threads = 0;    // CPU: OpenMP threads (0: the runtime's default)
  bool tf32 = false;  // CUDA: allow TF32 tensor-core math in convolutions and GEMMs
  int device = -1;    // CUDA: device ordinal (-1: the current device)
  // "fp32", or "bf16" (CPU: activations and convolutions in bfloat16 on CPUs with AVX512-BF16
  // or AMX; weights, gradients and Adam in fp32). Backends refuse what they cannot run.
  std::string precision = "fp32";
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Binds the backend to the calling thread before a batch of work (CPU: its thread count;
  // CUDA: its device). Cheap; called at every entry point of the trainer.
  virtual void activate() {}
  // Waits until all enqueued work is done.
  virtual void synchronize() {}
  // Bytes of memory this backend could still allocate (host: the kernel's MemAvailable; GPU:
  // the device's free memory), or -1 when unknown.
  virtual int64_t memory_available() const { return -1; }
  // Whether the pointers this backend hands out are host memory (CPU) or device memory.
  virtual bool host_memory() const { return true; }
  // The backend's native stream (CUDA: its cudaStream_t), for communicators that enqueue on it;
  // nullptr where work runs as it is issued.
  virtual void* native_stream() { return nullptr; }

  // `grad_slots`: 2 for D (its real and fake passes write separately), 1 for G.
  virtual std::unique_ptr<ParamStore> make_params(int64_t n_params, int64_t n_state,
                                                  int grad_slots) = 0;
  // `seed` keys the dropout masks. `params` must come from this backend's make_params.
  virtual std::unique_ptr<NetExec> compile(const NetPlan& plan, ParamStore& params, int64_t batch,
                                           uint64_t seed) = 0;

  // Backend memory for n floats, zero-filled; released with release().
  virtual float* alloc(int64_t n) = 0;
  virtual void release(float* p) = 0;
  virtual void upload(float* dst, const float* host, int64_t n) = 0;
  // Waits for the work that writes `src`.
  virtual void download(float* host, const float* src, int64_t n) = 0;
  virtual void copy(float* dst, const float* src, int64_t n) = 0;

  // A real batch in two halves. stage_batch (host side, never recorded) takes `count` images
  // (host memory, each numel(fmt) values in fmt's dtype and layout, valid only during the call)
  // into staging slot `slot`; convert_batch (recordable) writes the slot's images as float NCHW
  // scaled by fmt's affine map into dst (count, C, H, W). stage_batch returns true when the
  // slot's backend buffer or format changed, which invalidates recordings that convert it.
  virtual bool stage_batch(int slot, const ImageFormat& fmt, const void* const* images,
                           int64_t count) = 0;
  virtual void convert_batch(float* dst, int slot) = 0;
  // Elements [first, first + n) of the noise sequence (seed, stream, counter) into dst: a
  // rank of a data-parallel run takes its slice of the global batch's noise.
  virtual void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                          Counter counter, int64_t first = 0) = 0;

  // Discriminator loss term on `n` logits against `target` (1 - smoothing for real, 0 for
  // fake): writes d(mean loss)/d(logits) into d_logits, and the mean loss and the mean D output
  // (sigmoid of the logit, or the logit for lsgan/hinge) into *loss_out and *mean_out, all in
  // backend memory.
  virtual void d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
                      float* d_logits, float* loss_out, float* mean_out) = 0;
  // Generator loss on D's logits for fakes; gradient into d_logits.
  virtual void g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits,
                      float* loss_out, float* mean_out) = 0;

  // Softmax cross-entropy of n rows of k logits against class indices `labels` (n floats
  // holding integers in [0, k)): d(mean loss)/d(logits) into d_logits, the mean loss into
  // *loss_out and the fraction of rows whose arg-max is the label into *correct_out.
  virtual void softmax_xent(const float* logits, const float* labels, int64_t n, int64_t k,
                            float* d_logits, float* loss_out, float* correct_out) = 0;

  // One Adam step (PyTorch's formula) on p's parameters with gradient g0 (+ g1 when g1 !=
  // nullptr); `t` is the 1-based step count for bias correction.
  // How many of the n floats at p (backend memory) are NaN or infinite; waits for the work that
  // writes them (a check between chunks of steps, not inside one).
  virtual int64_t count_non_finite(const float* p, int64_t n) = 0;

  virtual void adam(ParamStore& p, const AdamParams& h, Counter t, const float* g0,
                    const float* g1) = 0;

  // Records the work `enqueue` issues, without running it, for replay (a CUDA graph). Returns
  // nullptr where the backend cannot record (CPU: every operation runs as it is issued) and
  // sets *why; throws on a backend failure.
  virtual std::unique_ptr<Recording> record(const std::function<void()>& enqueue,
                                            std::string* why) {
    if (why) *why = "the " + name() + " backend runs operations as they are issued";
    return nullptr;
  }
};

// Backend memory that releases itself.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& be, int64_t n) : be_(&be), p_(be.alloc(n)), n_(n) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(be_, o.be_), std::swap(p_, o.p_), std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_) be_->release(p_);
  }
  float* get() const { return p_; }
  int64_t size() const { return n_; }

 private:
  Backend* be_ = nullptr;
  float* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace dcgan
