#pragma once
// Operands that stress accumulation: random values over a wide exponent range, exact cancellations, values near
// the accumulator's overflow threshold and the input's subnormals, and a few infinities and NaNs.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lpsim/format/format.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim::test {

// full_range: exponents over the format's whole range (subnormals up to the largest binade) and one zero in ten,
// all finite: products that overflow or underflow binary32 beside ordinary ones.
enum class DotInputs { moderate, wide, adversarial, full_range };

// n values of the format, drawn as `kind` says.
inline std::vector<double> dot_operands(const FormatSpec& f, std::size_t n, DotInputs kind, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> mant(1, 2);
  const int lo = f.emin - f.precision + 1, hi = std::min(f.emax, 30);
  std::uniform_int_distribution<int> wide_exp(std::max(lo, -60), hi), moderate_exp(-4, 4), pick(0, 99),
      full_exp(lo, f.emax);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double sign = (gen() & 1) ? -1.0 : 1.0;
    const int e = kind == DotInputs::moderate ? moderate_exp(gen) : kind == DotInputs::full_range ? full_exp(gen) : wide_exp(gen);
    double x = sign * std::ldexp(mant(gen), e);
    if (kind == DotInputs::full_range && pick(gen) < 10) x = 0;
    if (kind == DotInputs::adversarial) {
      const int r = pick(gen);
      if (r < 10 && i > 0) x = -v[i - 1];                                  // cancels the previous operand
      else if (r < 15) x = sign * f.max_finite();                          // overflow in a narrow accumulator
      else if (r < 20) x = sign * f.min_subnormal() * double(1 + r % 3);   // subnormals
      else if (r < 25) x = sign * std::ldexp(1.0, r % 2 ? 12 : -12);       // exact powers of two, ties
      else if (r == 25) x = sign * INFINITY;
      else if (r == 26) x = NAN;
    }
    v[i] = round_to(x, f, Rounding::nearest_even);
    if (std::isinf(v[i]) && !f.has_inf()) v[i] = sign * f.max_finite();
    if (std::isnan(v[i]) && !f.has_nan()) v[i] = 0;
  }
  return v;
}

}  // namespace lpsim::test
