// The training data as the user gave it, held once: uint8 or float32, NCHW or NHWC, in memory
// (a NumPy array or memory map, not copied) or in a file read per batch (a .npy larger than
// memory). The sampler deals each rank its slice of every epoch's seeded permutation; the
// backend converts and scales the gathered images (Backend::load_batch).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/spec.hpp"

namespace dcgan {

enum class DType { U8, F32 };
enum class Layout { NCHW, NHWC };

// How one stored image maps to the model's input: value = (x - sub) * mul + add, or x itself
// when `identity` (data already in the model's range, e.g. Trainer.step's batches).
struct ImageFormat {
  int64_t c = 1, h = 1, w = 1;
  DType dtype = DType::F32;
  Layout layout = Layout::NCHW;
  bool identity = true;
  float sub = 0.f, mul = 1.f, add = 0.f;

  int64_t numel() const { return c * h * w; }
  int64_t bytes() const { return numel() * (dtype == DType::U8 ? 1 : 4); }
};

// A store of n images in one format. fetch() returns host pointers to the requested images,
// valid until the next fetch.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  int64_t size() const { return n_; }
  const ImageFormat& format() const { return fmt_; }
  virtual const void* const* fetch(const int64_t* index, int64_t count) = 0;

  // `data` holds n images back to back; the caller keeps it alive and unchanged.
  static std::unique_ptr<BatchSource> from_memory(const void* data, int64_t n,
                                                  const ImageFormat& fmt);
  // n images back to back from byte `offset` of the file at `path`, read per batch.
  static std::unique_ptr<BatchSource> from_file(const std::string& path, int64_t offset, int64_t n,
                                                const ImageFormat& fmt);

 protected:
  BatchSource(int64_t n, const ImageFormat& fmt);
  int64_t n_;
  ImageFormat fmt_;
  std::vector<const void*> ptrs_;
};

// Largest value of any training counter (steps, Adam steps, epochs, data cursor) that the core
// accepts: far beyond any run, and far enough below 2^63 that no derived counter (noise and
// dropout counters are step * 256) overflows.
constexpr int64_t kMaxCounter = int64_t(1) << 48;

// Where a rank's data cursor stands.
struct DataCursor {
  int64_t epoch = 0;   // epoch of the data cursor
  int64_t cursor = 0;  // next position in this epoch's permutation (in global images)
};

// Each epoch visits a seeded permutation of the n images in global batches of batch * world;
// rank r takes images [r * batch, (r + 1) * batch) of each global batch. The last incomplete
// global batch of an epoch is dropped. With world = 1 this is plain shuffled batching.
class EpochSampler {
 public:
  EpochSampler(int64_t n, int64_t batch, uint64_t seed, int rank, int world);
  int64_t steps_per_epoch() const { return n_ / (batch_ * world_); }
  // Steps left before the epoch ends, counting from `c` (the next step may start a new epoch).
  int64_t steps_left(const DataCursor& c) const;
  // This rank's indices for the next step; advances `c`.
  void next(DataCursor& c, int64_t* index);
  // The permutation of epoch `e` (for tests).
  const std::vector<int64_t>& permutation(int64_t e);

 private:
  int64_t n_, batch_;
  uint64_t seed_;
  int rank_, world_;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
};

}  // namespace dcgan
