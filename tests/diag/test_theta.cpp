// theta(p) against exhaustive subsets and closed forms; the long-row bounds bracket the exact value.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lpsim/diag/theta.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

double brute_force(const std::vector<double>& p) {
  double best = 0;
  for (std::uint64_t mask = 0; mask < (std::uint64_t{1} << p.size()); ++mask) {
    double m = 0;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (mask >> i & 1) m += p[i];
    best = std::max(best, 4 * m * (1 - m));
  }
  return best;
}

std::vector<double> random_row(int n, std::uint64_t seed, double scale) {
  std::vector<double> p(n);
  double z = 0;
  for (int i = 0; i < n; ++i) z += (p[i] = std::exp(scale * normal_at(seed, 8, i)));
  for (double& v : p) v /= z;
  return p;
}

TEST(Theta, ClosedForms) {
  EXPECT_EQ(theta(std::vector<double>{1, 0, 0}).value, 0.0);         // one-hot: J = 0
  EXPECT_DOUBLE_EQ(theta(std::vector<double>{0.5, 0.5}).value, 1.0); // a tie splits into halves
  for (int n : {2, 3, 4, 7, 10, 31, 64, 65}) {                      // uniform: 1 for even n, 1 - 1/n^2 for odd
    const Theta t = theta(std::vector<double>(n, 1.0 / n));
    const double want = n % 2 ? 1 - 1.0 / (double(n) * n) : 1.0;
    EXPECT_LE(t.value, want + 1e-12) << n;
    EXPECT_GE(t.upper, want - 1e-12) << n;
    if (n <= 24) EXPECT_NEAR(t.value, want, 1e-12) << n;
  }
  const Theta peaked = theta(std::vector<double>{0.9, 0.05, 0.05});  // p_max >= 1/2: 4 p (1 - p)
  EXPECT_DOUBLE_EQ(peaked.value, 4 * 0.9 * 0.1);
  EXPECT_TRUE(peaked.exact);
}

TEST(Theta, ExactAgainstAllSubsets) {
  for (int n : {2, 3, 5, 9, 14, 18})
    for (double scale : {0.3, 1.0, 3.0}) {
      const std::vector<double> p = random_row(n, 100 + n, scale);
      const Theta t = theta(p);
      EXPECT_TRUE(t.exact);
      EXPECT_NEAR(t.value, brute_force(p), 1e-14) << n << " " << scale;
    }
}

// An independent exact oracle for up to 40 entries: both halves' subset sums sorted, then two pointers.
double two_pointer_exact(const std::vector<double>& p) {
  auto sums = [](std::vector<double> v) {
    std::vector<double> s{0.0};
    for (double x : v)
      for (std::size_t i = 0, n = s.size(); i < n; ++i) s.push_back(s[i] + x);
    std::sort(s.begin(), s.end());
    return s;
  };
  const std::vector<double> a = sums({p.begin(), p.begin() + p.size() / 2}), b = sums({p.begin() + p.size() / 2, p.end()});
  double best = 0;
  std::size_t j = b.size();
  for (double x : a) {  // a ascending: the partner index only moves down
    while (j > 0 && x + b[j - 1] > 0.5) --j;
    for (std::size_t k : {j, j > 0 ? j - 1 : j})
      if (k < b.size()) best = std::max(best, 4 * (x + b[k]) * (1 - x - b[k]));
  }
  return best;
}

TEST(Theta, LongRowBoundsBracketTheExactValue) {
  for (int n : {25, 31, 38})
    for (double scale : {0.5, 1.5, 3.0}) {
      const std::vector<double> p = random_row(n, 7 * n, scale);
      const Theta t = theta(p);
      const double exact = two_pointer_exact(p);
      EXPECT_LE(t.value, exact + 1e-14) << n << " " << scale;  // attained by a subset
      EXPECT_GE(t.upper, exact - 1e-14) << n << " " << scale;  // proven bound
      EXPECT_LT(t.upper - t.value, 1e-3) << n << " " << scale;
    }
}

}  // namespace
}  // namespace lpsim
