#pragma once
// Wall-clock seconds of one call, for the benchmarks' side-by-side ratios.
#include <chrono>

namespace lpsim::bench {

double seconds(auto&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace lpsim::bench
