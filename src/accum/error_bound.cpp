#include "lpsim/accum/error_bound.hpp"

#include <cmath>
#include <limits>

namespace lpsim {

namespace {

// The largest relative error of one rounding to f in mode r.
double rounding_error(const Format& f, Rounding r) {
  return r == Rounding::nearest_even || r == Rounding::nearest_away ? f.spec.unit_roundoff() : 2 * f.spec.unit_roundoff();
}

int ceil_log2(int k) {
  int c = 0;
  while ((1 << c) < k) ++c;
  return c;
}

}  // namespace

double gamma_n(int m, double u) {
  const double mu = m * u;
  return mu < 1 ? mu / (1 - mu) : std::numeric_limits<double>::infinity();
}

double worst_case_dot_error(const AccumPolicy& p, int k) {
  k = std::max(k, 1);
  const double u_prod = p.product ? rounding_error(*p.product, p.product_rounding) : 0.0;
  const double u_out = rounding_error(p.output, p.output_rounding);
  double sum = 0;
  if (p.tc.k > 0) {
    // Steps of tc products aligned with the running sum: each of the tc + 1 terms loses less than 2^(1 - bits) of
    // the step's largest exponent, which the operands' exponent sum (tcexp=operands) can put 2x above the largest
    // term; then one rounding into the accumulator.
    const int steps = (k + p.tc.k - 1) / p.tc.k;
    const double align = 2.0 * (p.tc.k + 1) * std::ldexp(1.0, 1 - p.tc.bits);
    const double u_tc = 2 * tensor_core_acc(p).spec.unit_roundoff();  // normalisation may round toward zero
    sum = gamma_n(steps, align + u_tc + align * u_tc);
    if (p.order == Order::blocked || p.order == Order::splitk) {  // the chunk sums are then added in acc
      const int chunks = (k + p.chunk_length(k) - 1) / p.chunk_length(k);
      const double adds = gamma_n(chunks, rounding_error(*p.acc, p.acc_rounding));
      sum = sum + adds + sum * adds;
    }
  } else if (p.acc) {
    int m = k;
    switch (p.order) {
      case Order::sequential: m = k; break;
      case Order::pairwise: m = ceil_log2(k) + 1; break;
      case Order::blocked: m = std::min(k, p.block) + (k + p.block - 1) / p.block; break;
      case Order::splitk: m = (k + p.block - 1) / p.block + p.block; break;
    }
    sum = gamma_n(m, rounding_error(*p.acc, p.acc_rounding));
  }
  if (std::isinf(sum)) return sum;
  // (1 + a)(1 + b)(1 + c) - 1 expanded: 1 + 2^-53 would round to 1.
  return u_prod + sum + u_out + u_prod * sum + u_prod * u_out + sum * u_out + u_prod * sum * u_out;
}

}  // namespace lpsim
