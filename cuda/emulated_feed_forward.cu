// EmulatedGemm::feed_forward: one feed-forward block on the GPU with the CPU's bits (feed_forward_device.hpp).
// Each pass is the CPU's elementwise loop for every element of U (tokens x ffn), one thread per element.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "device_passes.cuh"
#include "emulated_gemm.hpp"
#include "emulated_gemm_buffers.hpp"
#include "norm_on_device.hpp"

namespace lpsim::cuda {

namespace {

struct Counts {
  unsigned long long overflows, saturations;
  unsigned long long beyond, now_infinite;  // U's cast to ffn_down's input, as EmulatedBackend::prepare counts them
  unsigned long long flagged;               // activation values left to the host
};


struct DeviceFunction {  // the activation's transcendental function, CUDA's
  Activation kind;
  __device__ double operator()(double x) const {
    switch (kind) {
      case Activation::silu: return exp(x);
      case Activation::gelu: return erf(x);
      default: return tanh(x);
    }
  }
};

// The activation in place, certified (activation_certain) or listed for the host.
__global__ void activation_kernel(ActivationRecipe r, float* u, std::size_t n, Counts* counts, Flag* flags) {
  const DeviceFunction f{r.kind};
  ElementEvents events;
  LPSIM_FOR_EACH(i, n) {
    const double x = u[i];
    if (r.kind == Activation::relu || activation_certain(r, x, f)) {
      u[i] = float(activation_value(r, x, f, 0, &events));
    } else {
      flags[atomicAdd(&counts->flagged, 1ull)] = {i, x};
      u[i] = 0.0f;
    }
  }
  add_events(counts, events);
}

// store(act), then for a gated block compute(u * up) and store(act) again; then prepare()'s cast to ffn_down's input.
__global__ void finish_kernel(float* u, const float* up, std::size_t n, ElementRounding compute, ElementRounding out,
                              bool cast, ElementRounding down_input, Counts* counts) {
  ElementEvents events;
  long beyond = 0, now_infinite = 0;
  LPSIM_FOR_EACH(i, n) {
    const double a = u[i];
    double y = round_element(out, a);
    events.store(out, a, y);
    if (up) {
      const double x = y * double(up[i]);
      const double v = round_element(compute, x);
      events.compute(compute, x, v);
      y = round_element(out, v);
      events.store(out, v, y);
    }
    if (cast) {
      beyond += fabs(y) > down_input.max && isfinite(y);
      y = round_element(down_input, y);
      now_infinite += !isfinite(y);
    }
    u[i] = float(y);
  }
  add_events(counts, events);
  add(&counts->beyond, beyond);
  add(&counts->now_infinite, now_infinite);
}

__global__ void to_float_kernel(const double* in, float* out, std::size_t n) {
  LPSIM_FOR_EACH(i, n) out[i] = float(in[i]);  // values of a format a float holds: exact
}

}  // namespace

bool EmulatedGemm::runs(const AccumPolicy& up, const AccumPolicy& down) const {
  return has_float_kernel(up) && has_float_kernel(down);
}

const float* EmulatedGemm::weight_floats(const WeightOperand& w, int which) {
  Buffers& d = *buffers_;
  if (!w.f.empty()) return weight_on_device(w.f, w.id, d.w_scratch[which]);
  const double* kept = weight_on_device(w.d, w.id, d.w_scratch[which]);
  float* f = d.w_float[which].get<float>(w.d.size());
  to_float_kernel<<<blocks_for(w.d.size()), 256>>>(kept, f, w.d.size());
  return f;
}

DeviceResult EmulatedGemm::feed_forward(const FeedForwardJob& job, std::span<float> out) {
  const std::lock_guard<std::mutex> turn(turn_);
  const Stopwatch call(seconds_);
  ++blocks_;
  calls_ += job.gated ? 3 : 2;
  Buffers& d = *buffers_;
  const std::size_t n = std::size_t(job.rows) * job.hidden;
  float* h = d.ffn_h.get<float>(job.h.size());
  {
    const Stopwatch copies(copy_seconds_);
    staged_to_device(d.staging, h, job.h);
  }
  DeviceResult result;
  bool h_finite = job.h_finite;
  if (job.norm) {  // H = norm(stream), cast to ffn_up's input; the host's path prepares it for each up product
    float* normed = d.normed.get<float>(job.h.size());
    const NormResult r = norm_on_device(d.norm, *job.norm, h, job.rows, job.width, job.up_input, normed);
    result.overflows += r.overflows, result.saturations += r.saturations;
    add_cast_events(result, r.beyond, r.now_infinite, job.up_input, job.gated ? 2 : 1);
    h_finite = r.now_infinite == 0;
    h = normed;
  }
  const float* w1 = weight_floats(job.w1, 0);
  const float* w3 = job.gated ? weight_floats(job.w3, 1) : nullptr;
  const float* w2 = weight_floats(job.w2, 2);
  float* u = d.ffn_u.get<float>(n);
  float* up = job.gated ? d.ffn_up.get<float>(n) : nullptr;
  float* o = d.ffn_out.get<float>(out.size());
  Counts* counts = d.ffn_counts.get<Counts>(1);
  Flag* flags = d.ffn_flags.get<Flag>(n);
  check(cudaMemset(counts, 0, sizeof(Counts)), "cudaMemset");

  launch_float_gemm(job.up, job.rows, job.hidden, job.width, h, w1, u);
  if (!job.b1.empty()) {
    float* b1 = d.ffn_b1.get<float>(job.b1.size());
    to_device(b1, job.b1);
    bias_kernel<<<blocks_for(n), 256>>>(u, n, job.hidden, b1, job.up_compute, job.up_out, counts);
  } else if (h_finite && job.w1.finite) {
    count_nonfinite_kernel<<<blocks_for(n), 256>>>(u, n, &counts->overflows);
  }
  activation_kernel<<<blocks_for(n), 256>>>(job.act, u, n, counts, flags);
  check(cudaGetLastError(), "feed-forward kernels");
  Counts c{};
  to_host(std::span<Counts>(&c, 1), counts);
  if (c.flagged) {  // glibc's function for the values the device's cannot round with certainty
    ElementEvents events;
    resolve_on_host(flags, c.flagged, u, d.ffn_values, [&](double x) {
      switch (job.act.kind) {
        case Activation::silu: return activation_value(job.act, x, [](double v) { return std::exp(v); }, 0, &events);
        case Activation::gelu: return activation_value(job.act, x, [](double v) { return std::erf(v); }, 0, &events);
        default: return activation_value(job.act, x, [](double v) { return std::tanh(v); }, 0, &events);
      }
    });
    result.overflows += events.overflows, result.saturations += events.saturations;
    result.host_values = long(c.flagged);
    host_activations_ += result.host_values;
  }
  if (job.gated) {
    finish_kernel<<<blocks_for(n), 256>>>(u, nullptr, n, job.act.compute, job.act.out, false, job.down_input, counts);
    launch_float_gemm(job.up, job.rows, job.hidden, job.width, h, w3, up);
    if (h_finite && job.w3.finite) count_nonfinite_kernel<<<blocks_for(n), 256>>>(up, n, &counts->overflows);
    finish_kernel<<<blocks_for(n), 256>>>(u, up, n, job.act.compute, job.act.out, true, job.down_input, counts);
  } else {
    finish_kernel<<<blocks_for(n), 256>>>(u, nullptr, n, job.act.compute, job.act.out, true, job.down_input, counts);
  }
  launch_float_gemm(job.down, job.rows, job.width, job.hidden, u, w2, o);
  if (!job.b2.empty()) {
    float* b2 = d.ffn_b2.get<float>(job.b2.size());
    to_device(b2, job.b2);
    bias_kernel<<<blocks_for(out.size()), 256>>>(o, out.size(), job.width, b2, job.down_compute, job.down_out, counts);
  }
  check(cudaGetLastError(), "feed-forward kernels");
  {
    const Stopwatch copies(copy_seconds_);
    staged_to_host(d.staging, out, static_cast<const float*>(o));
  }
  to_host(std::span<Counts>(&c, 1), counts);
  result.overflows += long(c.overflows);
  result.saturations += long(c.saturations);
  add_cast_events(result, c.beyond, c.now_infinite, job.down_input);  // U's cast
  if (job.b2.empty() && c.now_infinite == 0 && job.w2.finite)
    for (float x : out) result.overflows += !std::isfinite(x);
  return result;
}

}  // namespace lpsim::cuda
