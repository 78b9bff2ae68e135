#pragma once
// The GEMMs the GPU's emulated kernels (cuda/emulated_gemm.hpp) are checked on: `lpsim-cuda gemm` runs them on the
// GPU, compares with the CPU kernels there and stores a digest of each GPU output (results/cuda/emulated_gemm.csv);
// tests/hw/test_device_gemm.cpp recomputes every case on the CPU and compares digests, so CI holds the GPU's bits.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lpsim/accum/policy.hpp"
#include "lpsim/format/array_round.hpp"

namespace lpsim {

struct DeviceGemmCase {
  std::string policy;  // a preset or key=value list
  int m = 0, n = 0, k = 0;
  std::uint64_t seed = 0;
  bool extreme = false;  // operands over the format's whole range, with rare infinities and NaNs
};

// Every policy preset the portable kernel computes (the exact-accumulation one is the MPFR reference's alone) and
// policies that reach the other branches (stochastic and directed roundings, pairwise, blocked, split-K, rounded
// products), each at odd shapes that cut tiles and chunks unevenly, and k = 0; the tensor-core presets also on
// extreme operands (steps that leave a fast kernel's range, overflow, inf and NaN).
std::vector<DeviceGemmCase> device_gemm_cases();

struct GemmOperands {
  std::vector<double> a, b;  // m x k and k x n, row-major, values of the policy's input format
};
// Values of the input format: mostly of magnitude 2^-4..2^4 with random signs and significands, some zeros and
// subnormals (extreme: exponents over the whole range, one value in 500 infinite or NaN where the format has them),
// drawn from the case's seed by the counter-based generator (the same on every machine).
GemmOperands make_operands(const DeviceGemmCase& c, const AccumPolicy& p);
StochasticStream case_stream(const DeviceGemmCase& c);

// FNV-1a over the values' binary64 patterns, every NaN as one pattern (GPU and CPU make different NaN payloads).
std::uint64_t value_digest(std::span<const double> values);

}  // namespace lpsim
