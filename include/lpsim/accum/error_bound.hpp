#pragma once
// The worst-case error of one dot product under an accumulation policy, in Higham's form
//   |fl(a . b) - a . b| <= theta * sum_i |a_i b_i|,
// theta = (1 + u_prod)(1 + gamma_m(u_step))(1 + u_out) - 1, gamma_m(u) = m u / (1 - m u), with m the number of
// roundings on the longest path of the summation (sequential k; pairwise ceil(log2 k) + 1; blocked b + ceil(k/b);
// split-k ceil(k/P) + P; tensor cores: one step per tc products), and per step the accumulator's unit roundoff
// (twice it for directed and stochastic rounding), plus for tensor cores the alignment loss of a step,
// 2 (tc + 1) 2^(1 - tcbits) (truncation of tc products and the running sum below the step's alignment exponent). Exact accumulation leaves only the
// product and output roundings. The constants of arXiv 2510.21770's theorems, derived from the kernels' policies.
#include "lpsim/accum/policy.hpp"

namespace lpsim {

double worst_case_dot_error(const AccumPolicy& policy, int k);

// gamma_m(u) = m u / (1 - m u); infinity when m u >= 1 (the bound says nothing).
double gamma_n(int m, double u);

}  // namespace lpsim
