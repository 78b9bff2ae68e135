#pragma once
// E4M3 (fn) by its table, independent of lpsim's rounding code: the 127 finite non-negative values by encoding, and
// round to nearest with ties to the even code, saturating at +-448 (NVIDIA's SATFINITE).
#include <algorithm>
#include <cmath>
#include <vector>

namespace lpsim::test {

inline const std::vector<double>& e4m3_values() {
  static const std::vector<double> values = [] {
    std::vector<double> t;
    for (int code = 0; code < 127; ++code) {
      const int e = code >> 3, m = code & 7;
      t.push_back(e == 0 ? std::ldexp(double(m), -9) : std::ldexp(1.0 + m / 8.0, e - 7));
    }
    return t;
  }();
  return values;
}

inline double e4m3_nearest(double v) {
  const std::vector<double>& values = e4m3_values();
  const double a = std::min(std::fabs(v), 448.0);
  const auto hi = std::lower_bound(values.begin(), values.end(), a);
  double r;
  if (*hi == a || hi == values.begin()) {
    r = *hi;
  } else {
    const auto lo = hi - 1;
    const double dlo = a - *lo, dhi = *hi - a;
    r = dlo < dhi ? *lo : dhi < dlo ? *hi : ((lo - values.begin()) % 2 == 0 ? *lo : *hi);
  }
  return std::copysign(r, v);
}

}  // namespace lpsim::test
