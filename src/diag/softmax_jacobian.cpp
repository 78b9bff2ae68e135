#include "lpsim/diag/softmax_jacobian.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lpsim {

double softmax_jacobian_norm(std::span<const double> p) {
  double first = 0, second = 0;  // the two largest probabilities
  for (double v : p) {
    if (v > first) second = first, first = v;
    else if (v > second) second = v;
  }
  if (first <= 0 || second <= 0) return 0;  // one nonzero probability: J = 0
  if (first == second) return first;  // a tie: p_max is an eigenvalue, and nothing lies above it
  auto g = [&](double l) {
    double s = 0;
    for (double v : p)
      if (v != 0) s += v * v / (v - l);
    return 1 - s;
  };
  double lo = second, hi = first;  // g(lo+) = +inf, g(hi-) = -inf; g decreases in between
  for (int i = 0; i < 200 && hi - lo > 0; ++i) {
    const double mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    (g(mid) > 0 ? lo : hi) = mid;
  }
  return lo + (hi - lo) / 2;
}

double softmax_jacobian_norm_power(std::span<const double> p, int steps) {
  const std::size_t n = p.size();
  if (n < 2) return 0;
  // Start: alternating signs weighted by p, projected onto 1-perp (J maps into 1-perp and annihilates 1).
  std::vector<double> x(n), y(n);
  double mean = 0;
  for (std::size_t i = 0; i < n; ++i) x[i] = (i % 2 ? -1.0 : 1.0) * (p[i] + 1.0 / double(n)), mean += x[i] / double(n);
  for (double& v : x) v -= mean;
  double estimate = 0;
  for (int s = 0; s < steps; ++s) {
    double norm = 0;
    for (double v : x) norm += v * v;
    norm = std::sqrt(norm);
    if (norm == 0) return 0;
    for (double& v : x) v /= norm;
    double px = 0;
    for (std::size_t i = 0; i < n; ++i) px += p[i] * x[i];
    double rayleigh = 0;
    for (std::size_t i = 0; i < n; ++i) y[i] = p[i] * x[i] - p[i] * px, rayleigh += x[i] * y[i];
    estimate = rayleigh;  // x^T J x with ||x|| = 1: a lower bound on ||J||_2
    x.swap(y);
  }
  return estimate;
}

}  // namespace lpsim
