// The NCCL communicator (core/comm.hpp) for the CUDA backend: collectives on device buffers,
// enqueued on the backend's stream (no host synchronisation), the communicator bootstrapped from a
// unique id that rank 0 creates and the Python side sends to every rank over MPI
// (dcgan.distributed). Built with -DDCGAN_CUDA=ON where nccl.h is found (the PyPI wheel
// nvidia-nccl-cu13, or a system NCCL).
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <memory>
#include <string>

#include "core/backend.hpp"
#include "core/comm.hpp"
#include "cuda/cuda_backend.hpp"

namespace dcgan::cuda {

namespace {

void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess)
    throw BackendError(std::string("NCCL error in ") + what + ": " + ncclGetErrorString(r));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const std::string& id, int rank, int size, int device)
      : rank_(rank), size_(size), device_(device) {
    if (id.size() != sizeof(ncclUniqueId))
      throw InvalidArgument("an NCCL unique id has " + std::to_string(sizeof(ncclUniqueId)) +
                            " bytes, got " + std::to_string(id.size()));
    if (size < 1 || rank < 0 || rank >= size)
      throw InvalidArgument("rank " + std::to_string(rank) + " is outside a world of " +
                            std::to_string(size));
    ncclUniqueId uid;
    std::memcpy(&uid, id.data(), sizeof uid);
    if (device_ >= 0) {
      const cudaError_t e = cudaSetDevice(device_);
      if (e != cudaSuccess)
        throw BackendError(std::string("CUDA error: ") + cudaGetErrorString(e) +
                           " in cudaSetDevice(" + std::to_string(device_) + ")");
    }
    nccl_check(ncclCommInitRank(&comm_, size, uid, rank), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool host_memory() const override { return false; }
  void attach(Backend& be) override { stream_ = static_cast<cudaStream_t>(be.native_stream()); }

  void all_reduce_mean(float* buf, int64_t n) override {
    nccl_check(ncclAllReduce(buf, buf, static_cast<size_t>(n), ncclFloat, ncclAvg, comm_, stream_),
               "ncclAllReduce");
  }
  void broadcast(float* buf, int64_t n, int root) override {
    nccl_check(ncclBroadcast(buf, buf, static_cast<size_t>(n), ncclFloat, root, comm_, stream_),
               "ncclBroadcast");
  }
  void all_gather(const float* in, float* out, int64_t n) override {
    nccl_check(ncclAllGather(in, out, static_cast<size_t>(n), ncclFloat, comm_, stream_),
               "ncclAllGather");
  }

 private:
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_, size_, device_;
};

}  // namespace

std::string nccl_unique_id() {
  ncclUniqueId uid;
  nccl_check(ncclGetUniqueId(&uid), "ncclGetUniqueId");
  return std::string(reinterpret_cast<const char*>(&uid), sizeof uid);
}

std::unique_ptr<Communicator> make_nccl_communicator(const std::string& id, int rank, int size,
                                                     int device) {
  return std::make_unique<NcclCommunicator>(id, rank, size, device);
}

std::string nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

}  // namespace dcgan::cuda
