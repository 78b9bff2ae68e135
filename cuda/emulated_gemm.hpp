#pragma once
// lpsim's GEMM under an accumulation policy, on the GPU, with the CPU kernels' bits: the exact kernel of every
// policy the CPU's portable kernel computes (lpsim/accum/dot_kernel.hpp, the same source compiled by nvcc), and for
// the fp32-accumulation policies a tiled kernel in float arithmetic whose every step is the CPU's (fmaf, or
// fmul/fadd, in order along K), and for the tensor-core model aligned by operand exponents (the hardware-exact
// presets) a kernel in float and integer arithmetic (as the CPU's AVX-512 one). Policies with exact accumulation or operands wider than 26 bits (the MPFR
// reference on the CPU) are left to the CPU.
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/device/attention_block_device.hpp"
#include "lpsim/device/feed_forward_device.hpp"

namespace lpsim::cuda {

enum class DeviceKernel { none, fp32_fma, tensor_core, exact };
std::string_view kernel_name(DeviceKernel k);
// The kernel that runs the policy (none: the CPU runs it).
DeviceKernel device_kernel(const AccumPolicy& policy);
// c = a b (m x k times k x n, row-major, in device memory) by the float kernel of the policy (device_kernel gives
// fp32_fma or tensor_core), launched on the default stream: the products of the GPU's heads and feed-forward blocks.
void launch_float_gemm(const AccumPolicy& policy, int m, int n, int k, const float* a, const float* b, float* c);
// `count` such products in one launch: c_z = a_z b_(z / group) with a_z = a + z * a_stride, b_g = b + g * b_stride,
// c_z = c + z * c_stride (strides in elements; an attention layer's heads).
void launch_float_gemms(const AccumPolicy& policy, int m, int n, int k, const float* a, const float* b, float* c,
                        int count, std::size_t a_stride, std::size_t b_stride, std::size_t c_stride, int group);
// Whether launch_float_gemm runs the policy (its kernel is fp32_fma or tensor_core).
inline bool has_float_kernel(const AccumPolicy& policy) {
  const DeviceKernel k = device_kernel(policy);
  return k == DeviceKernel::fp32_fma || k == DeviceKernel::tensor_core;
}

class Slot;

class EmulatedGemm final : public GemmDevice, public FeedForwardDevice, public AttentionBlockDevice {
 public:
  EmulatedGemm();
  ~EmulatedGemm() override;
  // A weight (b_id != 0) is copied to the GPU once and kept there until forget(b_id), while the kept weights fit
  // in half the memory the GPU had free at construction; the others are copied on every call.
  bool gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const double> a, std::span<const double> b,
            std::span<double> c, const StochasticStream& sr, std::uint64_t b_id) override;
  bool gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const float> a, std::span<const float> b,
            std::span<float> c, const StochasticStream& sr, std::uint64_t b_id) override;
  void forget(std::uint64_t b_id) override;
  // Calls from several threads (attention's heads) take turns: one product on the GPU at a time.
  bool concurrent() const override { return true; }
  // A whole feed-forward block (feed_forward_device.hpp) on its kept weights: the products on the float kernels.
  bool runs(const AccumPolicy& up, const AccumPolicy& down) const override;
  DeviceResult feed_forward(const FeedForwardJob& job, std::span<float> out) override;
  // A whole attention layer (attention_block_device.hpp): projections and rotations on the device, its heads as
  // EmulatedAttention runs them (heads_on_device.hpp), the output projection; weights kept as above.
  bool runs(const AccumPolicy& qkv, const AccumPolicy& score, const AccumPolicy& pv,
            const AccumPolicy& out_proj) const override;
  DeviceResult attention(const AttentionBlockJob& job, std::span<float> out) override;
  // The relative margin of the heads' exp certification (EmulatedAttention::set_exp_margin).
  void set_exp_margin(double relative) { exp_margin_ = relative; }
  long attention_layers() const { return attention_layers_; }  // attention layers run so far
  long host_exps() const { return host_exps_; }  // exp values the host computed for their heads
  long blocks() const { return blocks_; }        // feed-forward blocks run so far
  long host_activations() const { return host_activations_; }  // activation values the host computed for them
  long calls() const { return calls_; }  // products run on the GPU so far
  double seconds() const { return seconds_; }            // wall time inside those calls, copies included
  double copy_seconds() const { return copy_seconds_; }  // of it, host <-> device copies and conversions

 private:
  template <class T>
  bool run(const AccumPolicy& policy, int m, int n, int k, std::span<const T> a, std::span<const T> b,
           std::span<T> c, const StochasticStream& sr, std::uint64_t b_id);
  template <class T>
  T* weight_on_device(std::span<const T> b, std::uint64_t b_id, Slot& scratch);
  // w as floats on the device: kept, or in scratch slot `which` (0..3) when not kept.
  const float* weight_floats(const WeightOperand& w, int which);
  struct Buffers;
  std::unique_ptr<Buffers> buffers_;
  // Held by run(), feed_forward(), attention() and forget(): the buffers and counters serve one call at a time.
  std::mutex turn_;
  long calls_ = 0, blocks_ = 0, host_activations_ = 0, attention_layers_ = 0, host_exps_ = 0;
  double exp_margin_ = exp_margin;
  double seconds_ = 0, copy_seconds_ = 0;
};

}  // namespace lpsim::cuda
