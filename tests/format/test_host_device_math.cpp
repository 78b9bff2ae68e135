// The call-free exact helpers the CPU and GPU kernels share (lpsim/util/host_device.hpp), against the libm calls
// they replace, on normal, subnormal and boundary doubles. The oracle ldexp(trunc(ldexp(x, -q)), q) is exact while
// x 2^-q is finite: a subnormal x 2^-q is below 1 and truncates to 0 however ldexp rounded it.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "lpsim/util/host_device.hpp"

namespace lpsim {
namespace {

std::vector<double> probe_values() {
  std::vector<double> v = {1.0, -1.0, 0.75, 3.0, 0x1p-1022, 0x1p-1074, 0x1.fffffffffffffp-1023, 0x1.fffffffffffffp1023,
                           -0x1p-1060, 0x1.8p-1070, 123456.789, -0.1};
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t b = rng();
    const double x = std::bit_cast<double>(b);
    if (std::isfinite(x) && x != 0) v.push_back(x);
    // and values near 1, where the kernels work
    v.push_back(std::ldexp(1.0 + double(b >> 12) * 0x1p-52, int(b % 80) - 40) * ((b >> 7) & 1 ? -1 : 1));
  }
  return v;
}

TEST(HostDeviceMath, ExponentIsIlogb) {
  for (double x : probe_values()) ASSERT_EQ(kmath::exponent(x), std::ilogb(x)) << x;
}

TEST(HostDeviceMath, TruncToMultipleIsScaledTrunc) {
  std::mt19937 rng(7);
  for (double x : probe_values())
    for (int r = 0; r < 4; ++r) {
      // quanta around the value's own exponent, and far above and below it
      const int q = std::ilogb(x) + int(rng() % 120) - 60 + (r == 3 ? 500 : 0);
      const double expected = std::ldexp(std::trunc(std::ldexp(x, -q)), q);
      const double got = kmath::trunc_to_multiple(x, q);
      if (std::isfinite(std::ldexp(x, -q))) {  // where the oracle itself is exact (see above)
        ASSERT_EQ(std::bit_cast<std::uint64_t>(got), std::bit_cast<std::uint64_t>(expected)) << x << " q=" << q;
      }
      // always: a multiple of 2^q, toward zero, less than 2^q away
      ASSERT_LE(std::fabs(got), std::fabs(x));
      ASSERT_TRUE(std::fabs(x - got) < std::ldexp(1.0, q) || x == got);
      ASSERT_EQ(std::signbit(got), std::signbit(x));
    }
}

}  // namespace
}  // namespace lpsim
