#pragma once
// An accelerator for one feed-forward block (layers.hpp's feed_forward: U = act(H W1 + b1), gated U = U * (H W3),
// then U W2 + b2) that computes what EmulatedBackend computes on the CPU, bit for bit, with the same range events.
// The GPU's is cuda::EmulatedGemm (it keeps the weights); EmulatedBackend::device_feed_forward says which plans and
// blocks it takes. The intermediate U (tokens x ffn) never leaves the device.
//
// The activation's one transcendental value (exp(-x) for silu, erf for gelu, tanh for the tanh forms) is the
// device's own; the result is kept only where it rounds the same for every value of the function within a margin
// that covers both its error and glibc's (activation_value brackets it), else the host computes that element with
// glibc's function and the same formula.
#include <cstdint>
#include <optional>
#include <span>

#include "lpsim/accum/policy.hpp"
#include "lpsim/device/attention_device.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/device/norm_device.hpp"
#include "lpsim/model/row_kernels.hpp"
#include "lpsim/util/host_device.hpp"

namespace lpsim {

// The activation class's roundings and what the formula needs of the model.
struct ActivationRecipe {
  Activation kind = Activation::relu;
  bool chain = false;      // ModelConfig::activation_chain: gelu_new as a chain of framework ops
  bool composite = false;  // the plan rounds every chain step to out too (OpPrecision::composite)
  ElementRounding compute, out;
  double relative_margin = 0x1p-46;  // on the function's value: >= 64 ulps of double (CUDA's and glibc's errors: <= 2 each)
  double sqrt2 = 0, sqrt_2_over_pi = 0;  // sqrt(T(2)) and sqrt(T(2) / pi) in double, as layers.hpp has them
};

// rows::activation (row_kernels.hpp: the same code layers.hpp runs) for one value x in double, with f the
// transcendental function, counting the range events. With shift, the function's value is moved by shift * |value|
// before use: the bracket of activation_certain.
template <class F>
LPSIM_HD double activation_value(const ActivationRecipe& r, double x, F f, double shift, ElementEvents* events) {
  auto fn = [&](double arg) {
    const double v = f(arg);
    if (shift == 0) return v;
    return v + kmath::fabs(v) * shift + (shift > 0 ? 0x1p-1060 : -0x1p-1060);  // and past subnormal steps
  };
  auto compute = [&](double v) {
    const double y = round_element(r.compute, v);
    if (events) events->compute(r.compute, v, y);
    return y;
  };
  auto step = [&](double v) {  // gelu_new_chain's step: compute, then out when composite
    const double y = compute(v);
    if (!r.composite) return y;
    const double z = round_element(r.out, y);
    if (events) events->compute(r.out, y, z);
    return z;
  };
  return rows::activation(r.kind, r.chain, x, fn, compute, step, r.sqrt2, r.sqrt_2_over_pi);
}

// Whether the activation of x rounds the same for every value of its function within the recipe's margin of f's.
template <class F>
LPSIM_HD bool activation_certain(const ActivationRecipe& r, double x, F f) {
  const double lo = activation_value(r, x, f, -r.relative_margin, nullptr);
  const double hi = activation_value(r, x, f, r.relative_margin, nullptr);
  return kmath::bits(lo) == kmath::bits(hi) || (lo != lo && hi != hi);
}

// A weight as the backend cached it: values of the GEMM's input format, as floats or as doubles.
struct WeightOperand {
  std::span<const float> f;
  std::span<const double> d;
  std::uint64_t id = 0;  // new_weight_id: the device may keep it
  bool finite = true;
};

struct FeedForwardJob {
  int rows = 0, width = 0, hidden = 0;  // H rows x width, W1 and W3 width x hidden, W2 hidden x width
  std::span<const float> h;             // rounded to ffn_up's input; with a norm, the stream (AttentionBlockJob)
  bool h_finite = true;                 // without a norm: no Inf/NaN in h
  std::optional<NormJob> norm;
  WeightOperand w1, w3, w2;             // w3 only when gated
  std::span<const float> b1, b2;        // rounded to the class's out; empty: no bias (no epilogue)
  bool gated = false;
  AccumPolicy up, down;                 // output: the class's compute with a bias, else its out (product())
  ElementRounding up_input, up_compute, up_out, down_input, down_compute, down_out;
  ActivationRecipe act;
};

class FeedForwardDevice {
 public:
  virtual ~FeedForwardDevice() = default;
  virtual bool runs(const AccumPolicy& up, const AccumPolicy& down) const = 0;
  // out: rows x width, values of ffn_down's out.
  virtual DeviceResult feed_forward(const FeedForwardJob& job, std::span<float> out) = 0;
};

}  // namespace lpsim
