#pragma once
// The spectral norm of the softmax Jacobian J(p) = Diag(p) - p p^T of one probability row.
//
// J(p) is a covariance matrix (positive semidefinite), so ||J||_2 is its largest eigenvalue. By the secular
// equation det(Diag(p) - p p^T - l I) = prod(p_i - l) (1 - sum p_i^2 / (p_i - l)), that eigenvalue is the root
// of g(l) = 1 - sum_i p_i^2 / (p_i - l) between the two largest probabilities (or their common value at a tie):
// O(n) per bisection step, exact to double precision, checked against a dense eigensolver in the tests.
#include <span>

namespace lpsim {

double softmax_jacobian_norm(std::span<const double> p);

// arXiv 2510.21770's estimate (App. A.6): `steps` steps of power iteration on J(p), from a fixed start vector in 1-perp.
// It approaches the exact value from below; the diagnostics report both so users see what the estimate misses.
double softmax_jacobian_norm_power(std::span<const double> p, int steps);

}  // namespace lpsim
