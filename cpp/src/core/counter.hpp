// defines: Counter, a step counter an operation reads when it runs on the backend.
#pragma once

#include <cstdint>

#include "core/hd.hpp"

namespace dcgan {

// *base + add. `base` points at backend memory that the training step refreshes once per step
// (nullptr reads as 0), so that a recorded step (a CUDA graph) replays with the current step's
// counters; a plain number converts to a fixed counter.
struct Counter {
  const uint64_t* base = nullptr;
  uint64_t add = 0;
  DCGAN_HD Counter() {}
  DCGAN_HD Counter(uint64_t value) : add(value) {}  // NOLINT(google-explicit-constructor)
  DCGAN_HD Counter(const uint64_t* b, uint64_t a) : base(b), add(a) {}
  // Where `base` is readable: host memory on the CPU backend, device memory in a kernel.
  DCGAN_HD uint64_t value() const { return (base ? *base : 0) + add; }
};

}  // namespace dcgan
