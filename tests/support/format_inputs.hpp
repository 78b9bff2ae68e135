#pragma once
// Inputs that stress a rounding: every value of small formats with its midpoints and their neighbours, the
// overflow threshold, the subnormal edges, and a strided walk over all float32 bit patterns.
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lpsim/format/encoding.hpp"

namespace lpsim::test {

inline void add_with_neighbours(std::vector<double>& v, double x) {
  for (double s : {1.0, -1.0}) {
    v.push_back(s * x);
    v.push_back(s * std::nextafter(x, 0.0));
    v.push_back(s * std::nextafter(x, INFINITY));
    v.push_back(s * static_cast<double>(std::nextafter(static_cast<float>(x), 0.0f)));
    v.push_back(s * static_cast<double>(std::nextafter(static_cast<float>(x), INFINITY)));
  }
}

// Positive finite values of a format of at most 16 bits, in increasing order (decoded from every pattern).
inline std::vector<double> positive_values(const FormatSpec& f) {
  std::vector<double> vals;
  for (std::uint64_t b = 0; b < (std::uint64_t{1} << (f.width() - 1)); ++b) {
    const double x = decode(b, f);
    if (std::isfinite(x)) vals.push_back(x);
  }
  return vals;
}

inline std::vector<double> edge_inputs(const FormatSpec& f) {
  std::vector<double> v = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1.0, 1.0 / 3.0, 0.1, 1e300, 1e-300, 5e-324};
  const double max = f.max_finite(), ulp_max = std::ldexp(1.0, f.emax - f.precision + 1);
  for (double x : {max, max + ulp_max / 2, max + ulp_max, 2 * max, f.min_normal(), f.min_subnormal(),
                   f.min_subnormal() / 2, f.min_subnormal() / 4, f.min_subnormal() * 0.75, f.min_normal() / 2,
                   f.min_normal() * (1 - 0x1p-30)})
    add_with_neighbours(v, x);
  if (f.encodable() && f.width() <= 16) {
    const auto vals = positive_values(f);
    for (std::size_t i = 0; i + 1 < vals.size(); ++i) {
      add_with_neighbours(v, vals[i]);
      add_with_neighbours(v, (vals[i] + vals[i + 1]) / 2);  // exact: a midpoint needs one more bit
      v.push_back(vals[i] + (vals[i + 1] - vals[i]) * 0.25);
      v.push_back(-(vals[i] + (vals[i + 1] - vals[i]) * 0.75));
    }
  }
  return v;
}

// Every stride-th float32 bit pattern (a prime stride visits all exponents and mantissa bits).
inline std::vector<float> strided_floats(std::uint64_t stride) {
  std::vector<float> v;
  for (std::uint64_t b = 0; b < (std::uint64_t{1} << 32); b += stride) v.push_back(std::bit_cast<float>(std::uint32_t(b)));
  return v;
}

inline std::vector<float> exact_floats(const std::vector<double>& xs) {
  std::vector<float> v;
  for (double x : xs)
    if (std::isnan(x) || static_cast<double>(static_cast<float>(x)) == x) v.push_back(static_cast<float>(x));
  return v;
}

}  // namespace lpsim::test
