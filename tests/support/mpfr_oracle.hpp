#pragma once
// The independent oracle of the tests: MPFR rounding (include/lpsim/format/mpfr_round.hpp, written apart from the
// rounding core), plus comparison helpers.
#include <cmath>
#include <limits>
#include <ostream>

#include "lpsim/format/mpfr_round.hpp"

namespace lpsim::test {

using lpsim::Mpfr;
using lpsim::mpfr_round_unbounded;
using lpsim::odd_significand;

// Deterministic modes only: stochastic rounding is tested statistically, never against the core's own bits.
inline double oracle_round(mpfr_ptr z, const FormatSpec& f, Rounding mode) {
  if (mode == Rounding::stochastic) return std::numeric_limits<double>::quiet_NaN();
  return mpfr_round_to_format(z, f, mode);
}

inline double oracle_round(double x, const FormatSpec& f, Rounding mode) {
  Mpfr z(53);
  mpfr_set_d(z, x, MPFR_RNDN);  // exact
  return oracle_round(z.get(), f, mode);
}

// Same bits, or both NaN.
inline bool same_value(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::signbit(a) == std::signbit(b) && a == b;
}

}  // namespace lpsim::test

namespace lpsim {
// gtest prints a parameter with this instead of its bytes.
inline void PrintTo(const Format& f, std::ostream* os) { *os << f.name; }
}  // namespace lpsim
