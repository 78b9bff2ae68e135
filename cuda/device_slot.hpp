#pragma once
// What the GPU's emulated kernels share on the host side: device memory kept between calls, plain copies, and a
// stopwatch for the time a call spends (host code compiled by nvcc).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <span>

#include "cuda_check.hpp"
#include "parallel_copy.hpp"

namespace lpsim::cuda {

// Device memory that grows to the largest request and is kept: a forward's GEMMs and heads reuse it.
class Slot {
 public:
  Slot() = default;
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  ~Slot() { cudaFree(p_); }
  template <class T>
  T* get(std::size_t count) {
    const std::size_t bytes = std::max<std::size_t>(count, 1) * sizeof(T);
    if (bytes > bytes_) {
      if (p_) check(cudaFree(p_), "cudaFree");
      p_ = nullptr;
      check(cudaMalloc(&p_, bytes), "cudaMalloc");
      bytes_ = bytes;
    }
    return static_cast<T*>(p_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

// Page-locked host memory, grown to the largest request and kept: the DMA engines reach it directly, where a
// copy from pageable memory goes through the driver's staging at a fraction of the bus's speed.
class PinnedSlot {
 public:
  PinnedSlot() = default;
  PinnedSlot(const PinnedSlot&) = delete;
  PinnedSlot& operator=(const PinnedSlot&) = delete;
  ~PinnedSlot() { cudaFreeHost(p_); }
  void* get(std::size_t bytes) {
    if (bytes > bytes_) {
      if (p_) check(cudaFreeHost(p_), "cudaFreeHost");
      p_ = nullptr;
      check(cudaMallocHost(&p_, bytes), "cudaMallocHost");
      bytes_ = bytes;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

template <class T>
void to_device(T* d, std::span<const T> h) {
  check(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "copy to device");
}
template <class T>
void to_host(std::span<T> h, const T* d) {
  check(cudaMemcpy(h.data(), d, h.size() * sizeof(T), cudaMemcpyDeviceToHost), "copy to host");
}

// Copies of 4 MiB and more through pinned memory, the host's part on all threads (a GPT-2-small forward's GEMMs
// copied for 0.11 s per forward from pageable memory on the H200's host at 1024 tokens, Llama-1B's for 0.59 s).
constexpr std::size_t staged_bytes = std::size_t(4) << 20;
template <class T>
void staged_to_device(PinnedSlot& staging, T* d, std::span<const T> h) {
  if (h.size_bytes() < staged_bytes) return to_device(d, h);
  void* pinned = staging.get(h.size_bytes());
  parallel_copy(pinned, h.data(), h.size_bytes());
  check(cudaMemcpy(d, pinned, h.size_bytes(), cudaMemcpyHostToDevice), "copy to device");
}
template <class T>
void staged_to_host(PinnedSlot& staging, std::span<T> h, const T* d) {
  if (h.size_bytes() < staged_bytes) return to_host(h, d);
  void* pinned = staging.get(h.size_bytes());
  check(cudaMemcpy(pinned, d, h.size_bytes(), cudaMemcpyDeviceToHost), "copy to host");
  parallel_copy(h.data(), pinned, h.size_bytes());
}

// Adds the wall time of a scope to a total.
class Stopwatch {
 public:
  explicit Stopwatch(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Stopwatch() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lpsim::cuda
