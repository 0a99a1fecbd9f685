// Output arrays for the bindings, from a small cache of recycled page-resident blocks.
//
// A training step allocates the same large outputs (activations, gradients) every step and frees
// the previous step's. Fresh numpy allocations of that size come from mmap and are returned with
// munmap, so every step page-faults its outputs in again: measured at more than half of the CPU
// time of the MNIST CNN's conv stack at batch 32 (8.2 -> 3.2 ms per step on one thread). Blocks
// released by numpy (through the array's base capsule) are kept here, up to kMaxCachedBytes, and
// handed out again for the next request of the same size. Small arrays use numpy's allocator.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace nncore::bind {

namespace py = pybind11;

class ArrayPool {
 public:
  static constexpr size_t kMinBytes = size_t{1} << 16;        // smaller: numpy's allocator
  static constexpr size_t kMaxCachedBytes = size_t{1} << 28;  // 256 MB kept at most
  static constexpr size_t kMaxBlocks = 64;

  static ArrayPool& instance() {
    static ArrayPool* pool = new ArrayPool;  // never destroyed: arrays may outlive static teardown
    return *pool;
  }

  // A block of at least `bytes` (64-byte aligned), recycled when one of the same size is cached.
  void* acquire(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = free_.size(); i-- > 0;) {
        if (free_[i].bytes == bytes) {
          void* p = free_[i].ptr;
          cached_ -= bytes;
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          return p;
        }
      }
    }
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  // Takes a block back; frees the oldest cached blocks beyond the limits.
  void release(void* p, size_t bytes) {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      free_.push_back({p, bytes});
      cached_ += bytes;
      size_t k = 0;
      while (k < free_.size() && (cached_ > kMaxCachedBytes || free_.size() - k > kMaxBlocks)) {
        cached_ -= free_[k].bytes;
        drop.push_back(free_[k].ptr);
        ++k;
      }
      free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(k));
    }
    for (void* q : drop) std::free(q);
  }

 private:
  struct Block {
    void* ptr;
    size_t bytes;
  };
  std::mutex mutex_;
  std::vector<Block> free_;  // oldest first
  size_t cached_ = 0;
};

// A new C-contiguous array of `shape` (contents unspecified). Call with the GIL held.
template <class T>
py::array_t<T> pooled_array(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  if (bytes < ArrayPool::kMinBytes) return py::array_t<T>(dims);
  void* p = ArrayPool::instance().acquire(bytes);
  // The capsule owns the block; its size rides in the capsule's context.
  PyCapsule_Destructor give_back = [](PyObject* cap) {
    void* ptr = PyCapsule_GetPointer(cap, nullptr);
    const size_t n = reinterpret_cast<size_t>(PyCapsule_GetContext(cap));
    if (ptr) ArrayPool::instance().release(ptr, n);
  };
  py::capsule owner;
  try {
    owner = py::capsule(p, nullptr, give_back);
  } catch (...) {
    std::free(p);
    throw;
  }
  PyCapsule_SetContext(owner.ptr(), reinterpret_cast<void*>(bytes));
  return py::array_t<T>(dims, static_cast<T*>(p), owner);
}

}  // namespace nncore::bind
