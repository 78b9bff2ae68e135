#pragma once
// Loops that use every thread only when asked to. An OpenMP region whose if clause is false is not free: libgomp
// still builds a one-thread team and pays futex calls for it (measured: 13,600 futex calls and 16 ms per Tiny-ViT
// forward when the per-row reductions each opened one). Short loops therefore take a plain loop, no region at all,
// and so do loops inside a region already (attention's heads on threads), where a nested one gets one thread anyway,
// and every loop when one thread is all there is (libgomp's one-thread team still cost 9% of a Tiny-ViT forward).
#include <omp.h>

#include <cstdint>

namespace lpsim {

inline bool open_region(bool parallel) { return parallel && !omp_in_parallel() && omp_get_max_threads() > 1; }

template <class Body>
void parallel_for(std::int64_t n, bool parallel, Body&& body) {
  if (open_region(parallel)) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) body(i);
  } else {
    for (std::int64_t i = 0; i < n; ++i) body(i);
  }
}

// Two counts summed over [0, n): body(i, a, b) adds to a and b.
struct Counts {
  long a = 0, b = 0;
};
template <class Body>
Counts parallel_count(std::int64_t n, bool parallel, Body&& body) {
  long a = 0, b = 0;
  if (open_region(parallel)) {
#pragma omp parallel for schedule(static) reduction(+ : a, b)
    for (std::int64_t i = 0; i < n; ++i) body(i, a, b);
  } else {
    for (std::int64_t i = 0; i < n; ++i) body(i, a, b);
  }
  return {a, b};
}

}  // namespace lpsim
