#pragma once
// Error checks and a device buffer for the CUDA path (host code compiled by nvcc).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace lpsim::cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Device memory holding n values of T, freed on scope exit.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) { check(cudaMalloc(&p_, std::max<std::size_t>(n, 1) * sizeof(T)), "cudaMalloc"); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    check(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "copy to device");
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(p_); }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  // NaN bytes everywhere: an output element no kernel wrote shows up as NaN, never as a plausible zero.
  void poison() { check(cudaMemset(p_, 0xff, n_ * sizeof(T)), "cudaMemset"); }
  std::vector<T> to_host() const {
    std::vector<T> h(n_);
    check(cudaDeviceSynchronize(), "kernel");
    check(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "copy to host");
    return h;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

}  // namespace lpsim::cuda
