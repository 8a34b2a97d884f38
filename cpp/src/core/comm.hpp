// The communicator between the processes of a data-parallel run: the GAN step calls it on D's
// and G's gradients between backward and Adam, and on the BatchNorm running statistics after
// each step. Buffers are in the backend's memory. One process uses LocalCommunicator, which
// does nothing; MPI (CPU) and NCCL (GPU) implementations plug in here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace dcgan {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // buf <- mean over ranks of buf (n floats).
  virtual void all_reduce_mean(float* buf, int64_t n) = 0;
  // buf <- root's buf.
  virtual void broadcast(float* buf, int64_t n, int root) = 0;
};

class LocalCommunicator final : public Communicator {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_mean(float*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
};

}  // namespace dcgan
