#pragma once
// Counting on the device: each thread sums its own counts and adds them once, with an atomic only where it saw any
// (range events are rare). Counts is a kernel's struct of unsigned long long totals with overflows and saturations.
#include "lpsim/model/attention_device.hpp"

namespace lpsim::cuda {

__device__ inline void add(unsigned long long* total, long count) {
  if (count) atomicAdd(total, static_cast<unsigned long long>(count));
}

template <class Counts>
__device__ void add_events(Counts* c, const ElementEvents& e) {
  add(&c->overflows, e.overflows);
  add(&c->saturations, e.saturations);
}

}  // namespace lpsim::cuda
