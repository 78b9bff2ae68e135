#pragma once
// What the elementwise passes of the GPU's heads and feed-forward blocks share: counting on the device (each thread
// sums its own counts and adds them once, with an atomic only where it saw any: range events are rare), the list of
// values left to the host, and the pass that writes the host's values back.
#include <cstddef>
#include <span>
#include <vector>

#include "device_slot.hpp"
#include "lpsim/device/attention_device.hpp"

namespace lpsim::cuda {

__device__ inline void add(unsigned long long* total, long count) {
  if (count) atomicAdd(total, static_cast<unsigned long long>(count));
}

// Counts: a kernel's struct of unsigned long long totals with overflows and saturations.
template <class Counts>
__device__ void add_events(Counts* c, const ElementEvents& e) {
  add(&c->overflows, e.overflows);
  add(&c->saturations, e.saturations);
}

// prepare()'s events for an operand cast counted on the device (`beyond`: finite values beyond the format's range;
// `now_infinite`: Inf/NaN after the cast): those that became Inf/NaN overflowed, the rest were clamped. `times`: how
// many products' inputs the host's path prepares from the same values.
inline void add_cast_events(DeviceResult& r, unsigned long long beyond, unsigned long long now_infinite,
                            const ElementRounding& cast, long times = 1) {
  if (!beyond) return;
  const long overflowed = long(beyond < now_infinite ? beyond : now_infinite);
  r.overflows += times * overflowed;
  r.saturations += cast.saturates ? times * (long(beyond) - overflowed) : 0;
}

#define LPSIM_FOR_EACH(i, n)                                                                                  \
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < (n); \
       i += std::size_t(gridDim.x) * blockDim.x)

// How many of c's n values are Inf or NaN, added to total (a product's result without epilogue: each one an
// overflow when its operands were finite).
__global__ inline void count_nonfinite_kernel(const float* c, std::size_t n, unsigned long long* total) {
  long count = 0;
  LPSIM_FOR_EACH(i, n) count += !isfinite(c[i]);
  add(total, count);
}

// product()'s epilogue: compute(v + b[j]) (the bias a value of out), then the class's store.
template <class Counts>
__global__ void bias_kernel(float* c, std::size_t n, int cols, const float* b, ElementRounding compute,
                            ElementRounding out, Counts* counts) {
  ElementEvents events;
  LPSIM_FOR_EACH(i, n) {
    const double x = double(c[i]) + double(b[i % cols]);
    const double v = round_element(compute, x);
    events.compute(compute, x, v);
    const double y = round_element(out, v);
    events.store(out, v, y);
    c[i] = float(y);
  }
  add_events(counts, events);
}

// A value whose rounding the device cannot decide: where it goes, and the argument the host computes it from.
struct Flag {
  std::size_t index;
  double x;
};

// The host's values into place.
__global__ inline void scatter_kernel(const Flag* flags, const float* values, std::size_t n, float* target) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    target[flags[i].index] = values[i];
}

// Blocks of 256 threads for n elements, at most 8192 (the passes loop grid-stride).
inline int blocks_for(std::size_t n) { return int((n + 255) / 256 < 8192 ? (n + 255) / 256 : 8192); }

// The `count` values listed in flags, computed on the host as value(x) (glibc's functions; value counts their range
// events) and written into target on the device; scratch holds them on the way.
template <class Value>
void resolve_on_host(const Flag* flags, std::size_t count, float* target, Slot& scratch, Value value) {
  std::vector<Flag> listed(count);
  std::vector<float> values(count);
  to_host(std::span<Flag>(listed), flags);
  for (std::size_t i = 0; i < count; ++i) values[i] = float(value(listed[i].x));
  float* v = scratch.get<float>(count);
  to_device(v, std::span<const float>(values));
  scatter_kernel<<<blocks_for(count), 256>>>(flags, v, count, target);
}

}  // namespace lpsim::cuda
