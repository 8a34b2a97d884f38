#include "core/batch_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/rng.hpp"

namespace dcgan {

BatchSource::BatchSource(int64_t n, const ImageFormat& fmt) : n_(n), fmt_(fmt) {
  if (n <= 0) throw InvalidArgument("data: is empty");
  if (fmt.c <= 0 || fmt.h <= 0 || fmt.w <= 0)
    throw InvalidArgument("data: image sizes must be positive");
}

namespace {

class MemorySource : public BatchSource {
 public:
  MemorySource(const void* data, int64_t n, const ImageFormat& fmt)
      : BatchSource(n, fmt), base_(static_cast<const char*>(data)) {
    if (!data) throw InvalidArgument("data: null pointer");
  }
  const void* const* fetch(const int64_t* index, int64_t count) override {
    ptrs_.resize(count);
    const int64_t per = fmt_.bytes();
    for (int64_t i = 0; i < count; ++i) ptrs_[i] = base_ + index[i] * per;
    return ptrs_.data();
  }

 private:
  const char* base_;
};

// Reads each batch's images with pread: memory use is one batch, whatever the file's size.
class FileSource : public BatchSource {
 public:
  FileSource(const std::string& path, int64_t offset, int64_t n, const ImageFormat& fmt)
      : BatchSource(n, fmt), path_(path), offset_(offset) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InvalidArgument("data file " + path + ": " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
      ::close(fd_);
      throw InvalidArgument("data file " + path + ": " + std::strerror(errno));
    }
    const int64_t need = offset + n * fmt.bytes();
    if (offset < 0 || static_cast<int64_t>(st.st_size) < need) {
      ::close(fd_);
      throw InvalidArgument("data file " + path + " has " + std::to_string(st.st_size) +
                            " bytes; its header promises " + std::to_string(need) +
                            " (truncated?)");
    }
  }
  ~FileSource() override { ::close(fd_); }

  const void* const* fetch(const int64_t* index, int64_t count) override {
    const int64_t per = fmt_.bytes();
    staging_.resize(static_cast<size_t>(count * per));
    ptrs_.resize(count);
    for (int64_t i = 0; i < count; ++i) {
      char* dst = staging_.data() + i * per;
      int64_t done = 0;
      while (done < per) {
        const ssize_t r = ::pread(fd_, dst + done, static_cast<size_t>(per - done),
                                  static_cast<off_t>(offset_ + index[i] * per + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
          throw std::runtime_error("reading image " + std::to_string(index[i]) + " of " + path_ +
                                   ": " +
                                   (r < 0 ? std::strerror(errno) : "unexpected end of file"));
        done += r;
      }
      ptrs_[i] = dst;
    }
    return ptrs_.data();
  }

 private:
  std::string path_;
  int64_t offset_;
  int fd_ = -1;
  std::vector<char> staging_;
};

}  // namespace

std::unique_ptr<BatchSource> BatchSource::from_memory(const void* data, int64_t n,
                                                      const ImageFormat& fmt) {
  return std::make_unique<MemorySource>(data, n, fmt);
}

std::unique_ptr<BatchSource> BatchSource::from_file(const std::string& path, int64_t offset,
                                                    int64_t n, const ImageFormat& fmt) {
  return std::make_unique<FileSource>(path, offset, n, fmt);
}

EpochSampler::EpochSampler(int64_t n, int64_t batch, uint64_t seed, int rank, int world)
    : n_(n), batch_(batch), seed_(seed), rank_(rank), world_(world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw InvalidArgument("rank " + std::to_string(rank) + " is outside world size " +
                          std::to_string(world));
  if (batch <= 0) throw InvalidArgument("batch_size must be positive");
  if (n < batch * world)
    throw InvalidArgument("need at least one batch of data: got " + std::to_string(n) +
                          " images for batch_size " + std::to_string(batch) +
                          (world > 1 ? " on each of " + std::to_string(world) + " ranks" : ""));
}

const std::vector<int64_t>& EpochSampler::permutation(int64_t e) {
  if (perm_epoch_ != e) {
    // Fisher-Yates with the epoch's own stream: the order depends on (seed, epoch) only.
    perm_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) perm_[i] = i;
    const Philox rng(seed_, Stream::Shuffle, static_cast<uint64_t>(e));
    for (int64_t i = n_ - 1; i > 0; --i) {
      uint32_t w[4];
      rng.block(static_cast<uint64_t>(i), w);
      const uint64_t r = (static_cast<uint64_t>(w[0]) << 32) | w[1];
      std::swap(perm_[i], perm_[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
    }
    perm_epoch_ = e;
  }
  return perm_;
}

int64_t EpochSampler::steps_left(const DataCursor& c) const {
  const int64_t global = batch_ * world_;
  // (n_ >= global; written so that no cursor, however large, overflows)
  if (c.cursor < 0 || c.cursor > n_ - global) return steps_per_epoch();
  return steps_per_epoch() - c.cursor / global;
}

void EpochSampler::next(DataCursor& c, int64_t* index) {
  const int64_t global = batch_ * world_;
  if (c.cursor < 0 || c.cursor > n_ - global) {  // the epoch is done (or the cursor is not one)
    if (c.epoch < 0 || c.epoch >= kMaxCounter)
      throw InvalidArgument("data cursor epoch " + std::to_string(c.epoch) + " is out of range");
    c.epoch++;
    c.cursor = 0;
  }
  const auto& p = permutation(c.epoch);
  const int64_t lo = c.cursor + static_cast<int64_t>(rank_) * batch_;
  std::copy(p.begin() + lo, p.begin() + lo + batch_, index);
  c.cursor += global;
}

}  // namespace dcgan
