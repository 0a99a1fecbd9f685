// Grow-only, 64-byte aligned scratch memory owned by the calling thread and reused across calls, so
// steady-state kernels never allocate. Scratch is taken before a parallel region (an allocation
// failure throws std::bad_alloc there, where the binding turns it into MemoryError) and shared into it.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace nncore {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }

  // At least n floats; contents are unspecified.
  float* floats(size_t n) {
    if (n > cap_) {
      if (n > (SIZE_MAX - 63) / sizeof(float)) throw std::bad_alloc();
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, bytes);
      if (!p) throw std::bad_alloc();
      std::free(data_);
      data_ = static_cast<float*>(p);
      cap_ = bytes / sizeof(float);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t cap_ = 0;
};

// Named per-thread scratch slots so nested users (conv -> gemm) do not overwrite each other.
enum class ScratchSlot : int {
  gemm = 0,
  conv = 1,
  pool = 2,
  rnn = 3,
  misc = 4,
  winograd = 5,          // the Winograd blocks' transformed tiles (per worker)
  winograd_weights = 6,  // transformed, packed weights of the call
  count = 7
};

inline Scratch& thread_scratch(ScratchSlot slot) {
  thread_local Scratch slots[static_cast<int>(ScratchSlot::count)];
  return slots[static_cast<int>(slot)];
}

}  // namespace nncore
