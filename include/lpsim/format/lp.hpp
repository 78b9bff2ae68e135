#pragma once
// lp<F, R>: a number whose every operation returns the correctly rounded result in format F under rounding R.
//
// Why not "compute in double, then round": that double rounding is only harmless for + - * / sqrt with
// round-to-nearest into p <= 24 bits (Figueroa), and wrong for directed modes and for fma. Instead each
// operation computes the double result r together with the sign of its exact error (error-free transforms:
// TwoSum, fma-based residuals), then makes r round-to-odd at 53 bits. Rounding a round-to-odd value with at least
// p+2 bits to p bits is correct in every mode (Boldo and Melquiond), so the final round_to is exact.
#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>
#include <ostream>

#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim {

// Random bits for stochastic rounding inside lp<> arithmetic: one stream per thread, positioned by the caller
// (a kernel sets it per output element), so results do not depend on the number of threads.
struct StochasticState {
  std::uint64_t seed = 0, stream = 0, counter = 0;
  std::uint64_t next() { return random_bits(seed, stream, counter++); }
};
inline thread_local StochasticState stochastic_state;
inline void set_stochastic_stream(std::uint64_t seed, std::uint64_t stream) { stochastic_state = {seed, stream, 0}; }

namespace detail {
// r is RN(exact) and err = exact - r (its sign is all that matters): returns the round-to-odd of exact at 53 bits.
inline double odd_from_error(double r, double err) {
  if (!(err > 0 || err < 0) || !std::isfinite(r) || (std::bit_cast<std::uint64_t>(r) & 1)) return r;  // NaN err: exact
  return std::nextafter(r, err > 0 ? std::numeric_limits<double>::infinity()
                                   : -std::numeric_limits<double>::infinity());
}
inline double two_sum_error(double a, double b, double s) {  // Knuth's TwoSum: exact a+b-s
  double bb = s - a;
  return (a - (s - bb)) + (b - bb);
}
}  // namespace detail

template <FormatSpec F, Rounding R = Rounding::nearest_even>
class lp {
  // Products of two values are exact doubles, and round-to-odd at 53 bits has the p+2 bits it needs.
  static_assert(F.precision >= 1 && F.precision <= 26, "lp<> emulates formats of at most 26 significand bits");
  static_assert(F.emin - F.precision + 1 >= -480 && F.emax <= 480, "lp<> keeps exact products inside double's range");
  double v_ = 0;

  static double finish(double r, double err) {
    return round_to(detail::odd_from_error(r, err), F, R, R == Rounding::stochastic ? stochastic_state.next() : 0);
  }
  struct exact_tag {};
  lp(double v, exact_tag) : v_(v) {}

 public:
  static constexpr FormatSpec format = F;
  static constexpr Rounding rounding = R;

  lp() = default;
  template <class T>
    requires std::is_arithmetic_v<T>
  lp(T x) : v_(finish(static_cast<double>(x), 0)) {}  // NOLINT: implicit, as a float literal would be
  // Conversion from another format: a double holds every value, so one rounding is exact.
  template <FormatSpec G, Rounding S>
  explicit lp(lp<G, S> x) : lp(x.value()) {}

  double value() const { return v_; }
  explicit operator double() const { return v_; }
  explicit operator float() const { return static_cast<float>(v_); }
  static lp from_value(double v) { return lp(v, exact_tag{}); }  // v must already be a value of F

  friend lp operator+(lp a, lp b) {
    double s = a.v_ + b.v_;
    return lp(finish(s, detail::two_sum_error(a.v_, b.v_, s)), exact_tag{});
  }
  friend lp operator-(lp a, lp b) { return a + (-b); }
  // Exact; rounding only turns -0 into +0 for formats without negative zero (fnuz).
  friend lp operator-(lp a) { return lp(round_to(-a.v_, F, Rounding::toward_zero), exact_tag{}); }
  friend lp operator+(lp a) { return a; }
  friend lp operator*(lp a, lp b) { return lp(finish(a.v_ * b.v_, 0), exact_tag{}); }  // the product is exact
  friend lp operator/(lp a, lp b) {
    double q = a.v_ / b.v_;
    double residual = std::fma(-q, b.v_, a.v_);  // exact a - q*b; NaN when b or q is infinite, where q is exact
    return lp(finish(q, std::isfinite(residual) ? residual * (b.v_ < 0 ? -1.0 : 1.0) : 0.0), exact_tag{});
  }
  friend lp sqrt(lp a) {
    double r = std::sqrt(a.v_);
    return lp(finish(r, std::isfinite(r) ? std::fma(-r, r, a.v_) : 0.0), exact_tag{});
  }
  // a*b + c with a single rounding: a*b is exact in a double (two significands of <= 26 bits, exponents far from
  // double's limits), so one TwoSum gives the exact error.
  friend lp fma(lp a, lp b, lp c) {
    double p = a.v_ * b.v_;
    double s = p + c.v_;
    return lp(finish(s, detail::two_sum_error(p, c.v_, s)), exact_tag{});
  }
  friend lp abs(lp a) { return lp(std::fabs(a.v_), exact_tag{}); }

  lp& operator+=(lp b) { return *this = *this + b; }
  lp& operator-=(lp b) { return *this = *this - b; }
  lp& operator*=(lp b) { return *this = *this * b; }
  lp& operator/=(lp b) { return *this = *this / b; }

  friend bool operator==(lp a, lp b) { return a.v_ == b.v_; }
  friend std::partial_ordering operator<=>(lp a, lp b) { return a.v_ <=> b.v_; }
  friend std::ostream& operator<<(std::ostream& os, lp a) { return os << a.v_; }
};

}  // namespace lpsim
