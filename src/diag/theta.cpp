#include "lpsim/diag/theta.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace lpsim {

namespace {

double balanced(double m) { return 4 * m * (1 - m); }

// Every subset sum of v (2^|v| values).
std::vector<double> subset_sums(std::span<const double> v) {
  std::vector<double> sums{0.0};
  for (double x : v) {
    const std::size_t n = sums.size();
    for (std::size_t i = 0; i < n; ++i) sums.push_back(sums[i] + x);
  }
  return sums;
}

Theta meet_in_the_middle(const std::vector<double>& p) {
  const std::size_t half = p.size() / 2;
  const std::vector<double> a = subset_sums(std::span(p).first(half));
  std::vector<double> b = subset_sums(std::span(p).subspan(half));
  std::sort(b.begin(), b.end());
  double best = 0;
  for (double x : a) {  // the b closest to 1/2 - x
    const auto it = std::lower_bound(b.begin(), b.end(), 0.5 - x);
    if (it != b.end()) best = std::max(best, balanced(x + *it));
    if (it != b.begin()) best = std::max(best, balanced(x + *std::prev(it)));
  }
  return {best, best, true};
}

Theta quantised(const std::vector<double>& p) {
  constexpr int q = 1 << 16;
  const int n = int(p.size());
  std::vector<int> w(n);
  int total = 0;
  for (int i = 0; i < n; ++i) total += (w[i] = int(std::lround(p[i] * q)));
  const int words = total / 64 + 1;
  // reach[i] holds the sums reachable with the first i items, as a bitset.
  std::vector<std::vector<std::uint64_t>> reach(n + 1, std::vector<std::uint64_t>(words, 0));
  reach[0][0] = 1;
  for (int i = 0; i < n; ++i) {
    reach[i + 1] = reach[i];
    const int shift_words = w[i] / 64, shift_bits = w[i] % 64;
    for (int k = words - 1; k >= shift_words; --k) {
      std::uint64_t v = reach[i][k - shift_words] << shift_bits;
      if (shift_bits && k - shift_words - 1 >= 0) v |= reach[i][k - shift_words - 1] >> (64 - shift_bits);
      reach[i + 1][k] |= v;
    }
  }
  auto reachable = [&](int i, int s) { return s >= 0 && s <= total && (reach[i][s / 64] >> (s % 64)) & 1; };
  int best = 0;
  for (int s = 0; s <= total; ++s)
    if (reachable(n, s) && std::abs(2 * s - q) < std::abs(2 * best - q)) best = s;
  // Back to a subset: item i - 1 is in it when the sum was not reachable without it.
  double mass = 0;
  for (int i = n, s = best; i > 0; --i)
    if (!reachable(i - 1, s)) mass += p[i - 1], s -= w[i - 1];
  const double distance = std::fabs(double(best) / q - 0.5);
  const double slack = n * 0.5 / q;  // |p_i - w_i/q| <= 1/(2q) for every item of any subset
  const double closest = std::max(0.0, distance - slack);
  return {balanced(mass), std::min(1.0, 1 - 4 * closest * closest), false};
}

}  // namespace

Theta theta(std::span<const double> p) {
  std::vector<double> nz;
  double largest = 0;
  for (double v : p)
    if (v > 0) nz.push_back(v), largest = std::max(largest, v);
  if (nz.size() < 2) return {0, 0, true};
  if (largest >= 0.5) {
    const double t = balanced(largest);
    return {t, t, true};
  }
  if (nz.size() <= 24) return meet_in_the_middle(nz);
  Theta t = quantised(nz);
  if (t.upper <= t.value) t.upper = t.value, t.exact = true;
  return t;
}

}  // namespace lpsim
