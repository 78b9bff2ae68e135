#pragma once
// Double-double numbers (QD's dd_real: about 106 bits, exponent range of double) as a scalar of the forward.
// QD supplies the arithmetic, to_double, exp, tanh, sqrt; erf, which QD lacks, is here. Functions on dd_real live in the
// global namespace so that the forward's unqualified calls find them by argument-dependent lookup.
#include <qd/dd_real.h>

// erf(x) = 2x/sqrt(pi) e^{-x^2} sum_n (2x^2)^n / (1*3*...*(2n+1)): every term positive, so no cancellation at any
// x; |x| >= 9 gives +-1 (erfc(9) < 1e-36, below a double-double's resolution of 1).
inline dd_real erf(const dd_real& x) {
  if (x.isnan()) return x;
  const dd_real a = abs(x);
  if (a >= 9.0) return x.x[0] > 0 ? dd_real(1.0) : dd_real(-1.0);
  const dd_real two_x2 = 2.0 * sqr(a);
  dd_real term = a, sum = a;
  for (int n = 1; n < 1000; ++n) {
    term = term * two_x2 / double(2 * n + 1);
    sum += term;
    if (term.x[0] < 1e-34 * sum.x[0]) break;
  }
  const dd_real r = 2.0 / sqrt(dd_real::_pi) * exp(-sqr(a)) * sum;
  return x.x[0] < 0 ? -r : r;
}
