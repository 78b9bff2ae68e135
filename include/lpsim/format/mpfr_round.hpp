#pragma once
// Rounding an exact value held by MPFR to a format, written apart from lpsim's rounding core: MPFR does the
// rounding to p bits inside the exponent range (subnormalize), and the overflow rules of IEEE 754 / OCP are written
// out here from the specifications. The tests use it as the oracle of the core; the accumulation reference
// (accum/dot_reference.hpp) uses it to define what every policy computes.
//
// Stochastic rounding is defined on the value rounded to odd at 53 bits (as lp<> and the kernels do): its random
// word is compared with the 53-p bits below the format's last place plus a sticky bit.
#include <mpfr.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lpsim/format/format.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/format/rounding.hpp"

namespace lpsim {

class Mpfr {  // RAII for one mpfr_t
 public:
  explicit Mpfr(mpfr_prec_t prec) { mpfr_init2(v_, prec); }
  ~Mpfr() { mpfr_clear(v_); }
  Mpfr(const Mpfr&) = delete;
  Mpfr& operator=(const Mpfr&) = delete;
  mpfr_ptr get() { return v_; }
  operator mpfr_ptr() { return v_; }

 private:
  mpfr_t v_;
};

// Rounds z to p bits inside the format's exponent range with an MPFR rounding mode, into y (precision p); the top
// of the range is left open (overflow is decided by the caller on the unbounded result, as IEEE 754 defines it).
inline void mpfr_round_unbounded(mpfr_ptr y, mpfr_ptr z, const FormatSpec& f, mpfr_rnd_t rnd) {
  const mpfr_exp_t old_emin = mpfr_get_emin();
  // MPFR's exponent E has x = m 2^E with m in [1/2, 1): our binade exponent plus one.
  mpfr_set_emin(f.subnormals ? f.emin - f.precision + 2 : f.emin + 1);
  int t = mpfr_set(y, z, rnd);
  t = mpfr_check_range(y, t, rnd);
  if (f.subnormals) mpfr_subnormalize(y, t, rnd);
  mpfr_set_emin(old_emin);
}

// z rounded to odd at 53 bits (a double): truncated, with the last bit set when anything was dropped.
inline double round_to_odd_double(mpfr_ptr z) {
  const double t = mpfr_get_d(z, MPFR_RNDZ);
  if (!std::isfinite(t) || mpfr_cmp_d(z, t) == 0) return t;
  return std::bit_cast<double>(std::bit_cast<std::uint64_t>(t) | 1);
}

// Integer significand of a non-zero value of the format at its quantum; its parity decides round-to-odd.
inline bool odd_significand(double y, const FormatSpec& f) {
  if (y == 0) return false;
  const int e = std::max(std::ilogb(y), f.emin);
  const double m = std::ldexp(std::fabs(y), f.precision - 1 - e);
  return std::fmod(m, 2.0) == 1.0;
}

// z is exact, or round-to-odd at >= p+2 bits (which any rounding to p bits may take in place of the exact value).
inline double mpfr_round_to_format(mpfr_ptr z, const FormatSpec& f, Rounding mode, std::uint64_t random = 0) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double max = f.max_finite();
  const double overflow_value = f.overflow == Overflow::infinity ? inf : f.overflow == Overflow::saturate ? max : nan;
  if (mpfr_nan_p(z)) return nan;
  const bool neg = mpfr_signbit(z) != 0;
  const double sgn = neg ? -1.0 : 1.0;
  // A saturating conversion clamps infinities as well (NVIDIA __NV_SATFINITE, measured on the H100).
  if (mpfr_inf_p(z)) return f.overflow == Overflow::saturate ? sgn * max : f.has_inf() ? sgn * inf : sgn * overflow_value;

  Mpfr y(f.precision);
  switch (mode) {
    case Rounding::nearest_even: mpfr_round_unbounded(y, z, f, MPFR_RNDN); break;
    case Rounding::toward_zero: mpfr_round_unbounded(y, z, f, MPFR_RNDZ); break;
    case Rounding::upward: mpfr_round_unbounded(y, z, f, MPFR_RNDU); break;
    case Rounding::downward: mpfr_round_unbounded(y, z, f, MPFR_RNDD); break;
    case Rounding::nearest_away:
    case Rounding::to_odd: {
      Mpfr toward(f.precision), away(f.precision);
      mpfr_round_unbounded(toward, z, f, MPFR_RNDZ);
      mpfr_round_unbounded(away, z, f, MPFR_RNDA);
      if (mpfr_equal_p(toward, away)) { mpfr_set(y, toward, MPFR_RNDN); break; }
      if (mode == Rounding::to_odd) {
        const bool toward_odd = odd_significand(mpfr_get_d(toward, MPFR_RNDN), f);  // toward is finite
        mpfr_set(y, toward_odd ? toward.get() : away.get(), MPFR_RNDN);
        break;
      }
      Mpfr d1(4096), d2(4096);  // exact distances
      mpfr_sub(d1, z, toward, MPFR_RNDN);
      mpfr_sub(d2, away, z, MPFR_RNDN);
      mpfr_abs(d1, d1, MPFR_RNDN);
      mpfr_abs(d2, d2, MPFR_RNDN);
      mpfr_set(y, mpfr_cmp(d1, d2) < 0 ? toward.get() : away.get(), MPFR_RNDN);  // a tie goes away from zero
      break;
    }
    case Rounding::stochastic: return round_to(round_to_odd_double(z), f, mode, random);
  }
  Mpfr magnitude(f.precision);
  mpfr_abs(magnitude, y, MPFR_RNDN);
  if (mpfr_cmp_d(magnitude, max) > 0) {
    const bool nearest = mode == Rounding::nearest_even || mode == Rounding::nearest_away;
    const bool away = nearest || (mode == Rounding::upward && !neg) || (mode == Rounding::downward && neg);
    return away ? sgn * overflow_value : sgn * max;
  }
  double r = mpfr_get_d(y, MPFR_RNDN);  // exact: within the format's range
  if (r == 0) r = (neg && f.has_negative_zero()) ? -0.0 : 0.0;
  return r;
}



}  // namespace lpsim
