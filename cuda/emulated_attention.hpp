#pragma once
// The heads of the textbook attention on the GPU (one, or a layer's at once) with the CPU's bits (lpsim/device/attention_device.hpp has the
// contract): the score and P V products by the float kernels of the emulated GEMM, scale and softmax by kernels
// whose every step is the CPU's double or float operation, exp certified per value (the host computes the rare
// value whose rounding the device's exp cannot decide). S and P stay on the GPU: only Q, K, V and the head's output
// cross the bus.
#include <memory>
#include <mutex>

#include "lpsim/device/attention_device.hpp"

namespace lpsim::cuda {

class EmulatedAttention final : public AttentionDevice {
 public:
  EmulatedAttention();
  ~EmulatedAttention() override;
  // Both products on the float kernels (fp32 accumulation or the tensor-core model; emulated_gemm.hpp).
  bool runs(const AccumPolicy& score, const AccumPolicy& pv) const override;
  DeviceResult head(const AttentionHeadJob& job, std::span<float> out) override;
  DeviceResult heads(const AttentionLayerJob& job, std::span<float> out) override;
  long calls() const { return calls_; }          // heads run so far
  long host_exps() const { return host_exps_; }  // exp values the host computed for them
  double seconds() const { return seconds_; }    // wall time inside head() and heads(), copies included
  // The relative margin of rounds_alike (attention_device.hpp): wider than exp_margin only to test the host's part.
  void set_exp_margin(double relative) { exp_margin_ = relative; }

 private:
  struct Buffers;
  std::unique_ptr<Buffers> buffers_;
  std::mutex turn_;  // one head on the GPU at a time
  long calls_ = 0, host_exps_ = 0;
  double seconds_ = 0;
  double exp_margin_ = exp_margin;
};

}  // namespace lpsim::cuda
