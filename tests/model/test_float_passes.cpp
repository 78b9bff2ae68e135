// The emulated backend's vectorised store and cast passes (src/emulation/float_passes.hpp) against the rounding core,
// value by value, on floats, doubles no float holds, subnormals, values that overflow, infinities and NaNs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "lpsim/format/format.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "emulation/float_passes.hpp"

namespace lpsim {
namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Values of every kind, floats unless `doubles`: random bit patterns (all binades, subnormals, Inf, NaN) and the
// edges where binary32 and bf16 overflow.
std::vector<double> values(std::size_t n, bool doubles, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<double> v;
  const double flt_max = std::numeric_limits<float>::max();
  for (double x : {0.0, -0.0, inf, -inf, std::nan(""), flt_max, -flt_max, 0x1.fefffep127, 0x1.ff0000p127})
    v.push_back(x);
  if (doubles)
    for (double x : {flt_max * (1 + 0x1p-25), 1e39, -1e300, 0x1.fffffffp127, 1 + 0x1p-30, 1e-50})
      v.push_back(x);
  while (v.size() < n) {
    if (doubles && g() % 2) v.push_back(std::bit_cast<double>(g()));
    else v.push_back(double(std::bit_cast<float>(std::uint32_t(g()))));
  }
  return v;
}

bool same(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b) || (a != a && b != b); }
long made_infinite(double x, double y) { return std::isfinite(x) && !std::isfinite(y); }

TEST(FloatPasses, ToFloatIsTheCoresBinary32Rounding) {
  std::vector<double> v = values(20000, true, 1);
  const std::vector<double> x = v;
  long want = 0;
  for (double a : x) want += made_infinite(a, round_to(a, formats::fp32, Rounding::nearest_even));
  EXPECT_GT(want, 0);
  EXPECT_EQ(passes::to_float(v.data(), std::int64_t(v.size())), want);
  for (std::size_t i = 0; i < v.size(); ++i)
    ASSERT_TRUE(same(v[i], round_to(x[i], formats::fp32, Rounding::nearest_even))) << x[i];
}

TEST(FloatPasses, Bf16OfFloatsIsTheCoresRoundingAndRefusesOtherDoubles) {
  std::vector<double> v = values(20000, false, 2);
  const std::vector<double> x = v;
  long want = 0;
  for (double a : x) want += made_infinite(a, round_to(a, formats::bf16, Rounding::nearest_even));
  EXPECT_GT(want, 0);
  EXPECT_EQ(passes::bf16_of_floats(v.data(), std::int64_t(v.size())), want);
  for (std::size_t i = 0; i < v.size(); ++i)
    ASSERT_TRUE(same(v[i], round_to(x[i], formats::bf16, Rounding::nearest_even))) << x[i];
  std::vector<double> w = x;
  w[777] = 1 + 0x1p-30;  // no float holds it: the trick on its float would round twice
  EXPECT_EQ(passes::bf16_of_floats(w.data(), std::int64_t(w.size())), -1);
  w[777] = x[777];
  for (std::size_t i = 0; i < w.size(); ++i) ASSERT_TRUE(same(w[i], x[i]));  // untouched
}

TEST(FloatPasses, OperandCastCountsWhatTheBackendCounts) {
  for (const bool bf16 : {false, true})
    for (const double scale : {1.0, 0x1p-3}) {
      const std::vector<double> x = values(20000, true, 3);
      std::vector<float> out(x.size());
      const double max = bf16 ? formats::bf16.max_finite() : std::numeric_limits<float>::max();
      const passes::CastCounts c = passes::cast_operand(x.data(), out.data(), std::int64_t(x.size()), scale, bf16, max);
      long inexact = 0, beyond = 0;
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double s = x[i] * scale;
        const bool is_float = double(float(s)) == s || s != s;
        inexact += !is_float;
        beyond += std::isfinite(s) && std::fabs(s) > max;
        if (is_float)
          ASSERT_TRUE(same(out[i], round_to(s, bf16 ? formats::bf16 : formats::fp32, Rounding::nearest_even))) << s;
      }
      EXPECT_EQ(c.inexact, inexact);
      EXPECT_EQ(c.beyond, beyond);
      EXPECT_GT(beyond, 0);
    }
}

TEST(FloatPasses, CountsInfinitiesAndNans) {
  std::vector<float> v(5000, 1.5f);
  v[3] = std::numeric_limits<float>::infinity(), v[40] = -std::numeric_limits<float>::infinity();
  v[41] = std::nanf(""), v[4999] = std::numeric_limits<float>::max();
  EXPECT_EQ(passes::count_nonfinite(v.data(), std::int64_t(v.size())), 3);
}

// A product's epilogue in binary32 (per-tensor unscaling by a power of two, a bias, both or neither) and its store
// (binary32 or bf16) against the core's roundings, with the values a rounding makes infinite counted once each.
TEST(FloatPasses, EpilogueAndStoreAreTheCoresRoundings) {
  const std::vector<double> a = values(20000, false, 5);
  std::vector<double> b = values(20000, false, 6);
  b[8] = 0;  // 0x1.ff0000p127 alone: a binary32 value that overflows in bf16 (flt_max + flt_max overflows in binary32)
  std::vector<float> in(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) in[i] = float(a[i]);
  for (const double unscale : {1.0, 0x1p-3, 0x1p+4, 0x1p-140})  // the last makes subnormals and zeros of most
    for (const bool with_bias : {false, true})
      for (const bool bf16 : {false, true}) {
        SCOPED_TRACE(testing::Message() << "unscale " << unscale << (with_bias ? " bias" : "") << (bf16 ? " bf16" : ""));
        std::vector<double> out(in.size());
        long want = 0;
        std::vector<double> expected(in.size());
        for (std::size_t i = 0; i < in.size(); ++i) {
          double v = in[i];
          if (unscale != 1) {
            const double x = v * unscale;
            v = round_to(x, formats::fp32, Rounding::nearest_even), want += made_infinite(x, v);
          }
          if (with_bias) {
            const double x = v + b[i];
            v = round_to(x, formats::fp32, Rounding::nearest_even), want += made_infinite(x, v);
          }
          if (bf16) {
            const double y = round_to(v, formats::bf16, Rounding::nearest_even);
            want += made_infinite(v, y), v = y;
          }
          expected[i] = v;
        }
        if (unscale > 1 || (unscale == 1 && (with_bias || bf16))) EXPECT_GT(want, 0);
        EXPECT_EQ(passes::epilogue_store(in.data(), unscale, with_bias ? b.data() : nullptr, out.data(),
                                         std::int64_t(in.size()), bf16),
                  want);
        for (std::size_t i = 0; i < in.size(); ++i) ASSERT_TRUE(same(out[i], expected[i])) << in[i];
      }
}

TEST(FloatPasses, WideningKeepsEveryValueAndCountsInfinitiesAndNans) {
  const std::vector<double> a = values(5000, false, 7);
  std::vector<float> in(a.size());
  long want = 0;
  for (std::size_t i = 0; i < a.size(); ++i) in[i] = float(a[i]), want += !std::isfinite(in[i]);
  std::vector<double> out(in.size());
  EXPECT_GT(want, 0);
  EXPECT_EQ(passes::widen(in.data(), out.data(), std::int64_t(in.size())), want);
  for (std::size_t i = 0; i < in.size(); ++i) ASSERT_TRUE(same(out[i], double(in[i])));
}

}  // namespace
}  // namespace lpsim
