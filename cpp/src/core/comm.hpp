// The communicator between the processes of a data-parallel run: the GAN step calls it on D's
// and G's gradients between backward and Adam, on the BatchNorm running statistics after each
// step, on synchronised BatchNorm's moments inside a step, and on the statistics of a chunk of
// steps. One process uses LocalCommunicator, which does nothing; MPI (cpp/src/mpi/, the CPU)
// and NCCL (cpp/src/cuda/nccl_comm.cpp, the GPU) implementations plug in here. Every rank must
// call the collectives in the same order; a failed collective throws (or aborts the job where
// the transport cannot recover), it never returns partial results.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace dcgan {

class Backend;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether the buffers handed in are host memory (MPI) or device memory (NCCL). The GAN step
  // stages through the host where this differs from the backend's memory.
  virtual bool host_memory() const { return true; }
  // Called once by the trainer with its backend (NCCL: to enqueue on the backend's stream).
  virtual void attach(Backend&) {}
  // buf <- mean over ranks of buf (n floats).
  virtual void all_reduce_mean(float* buf, int64_t n) = 0;
  // buf <- root's buf.
  virtual void broadcast(float* buf, int64_t n, int root) = 0;
  // out[r * n, (r + 1) * n) <- rank r's in[0, n): out holds size() * n floats.
  virtual void all_gather(const float* in, float* out, int64_t n) = 0;
};

class LocalCommunicator final : public Communicator {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_mean(float*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
  void all_gather(const float* in, float* out, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) out[i] = in[i];
  }
};

}  // namespace dcgan
