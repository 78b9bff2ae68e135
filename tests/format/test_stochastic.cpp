// Stochastic rounding: always one of the two neighbours, unbiased in expectation (a z-test with a fixed seed),
// and reproducible whatever the thread count and however the array is split.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <vector>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/lp.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim {
namespace {

// Fraction of ups for x between two neighbours of the format, over n distinct stream positions.
double up_fraction(float x, const FormatSpec& f, std::size_t n, std::uint64_t seed) {
  std::vector<float> in(n, x), out(n);
  round_array(in, out, f, Rounding::stochastic, {seed, 0, 0});
  const double down = round_to(x, f, Rounding::downward), up = round_to(x, f, Rounding::upward);
  std::size_t ups = 0;
  for (float y : out) {
    EXPECT_TRUE(y == down || y == up) << y;
    ups += y == up;
  }
  return static_cast<double>(ups) / static_cast<double>(n);
}

TEST(Stochastic, UnbiasedInExpectation) {
  const std::size_t n = 1 << 20;
  struct Case {
    const char* format;
    float x;
    double p;  // exact probability of rounding up: (x - down) / (up - down)
  };
  const Case cases[] = {
      {"fp16", 1.0f + 0.3f * 0x1p-10f, double(1.0f + 0.3f * 0x1p-10f - 1.0f) / 0x1p-10},
      {"bf16", -(1.0f + 0x1p-9f), 0.75},                        // up (toward +inf) shrinks the magnitude: 3/4
      {"e4m3", 0.1f, (double(0.1f) - 0.09375) / 0.0078125},     // between 0.09375 and 0.1015625
      {"fp16", 0x1p-26f, 0.25},                                  // a quarter of the smallest subnormal
      {"e4m3", 0x1p-12f, 0x1p-12 / 0x1p-9},                      // deep below the smallest subnormal: 1/8
  };
  for (const Case& c : cases) {
    const FormatSpec f = parse_format(c.format).spec;
    const double got = up_fraction(c.x, f, n, 2024);
    const double sigma = std::sqrt(c.p * (1 - c.p) / double(n));
    EXPECT_NEAR(got, c.p, 5 * sigma) << c.format << " x=" << c.x;  // 5 sigma: a false alarm once in 3.5 million
  }
}

TEST(Stochastic, ReproducibleAcrossThreadsAndSplits) {
  const FormatSpec f = parse_format("bf16").spec;
  std::vector<float> in(300000);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.001f * float(i)) * 3.0f;
  std::vector<float> one(in.size()), two(in.size()), split(in.size());
  omp_set_num_threads(1);
  round_array(in, one, f, Rounding::stochastic, {9, 4, 0});
  omp_set_num_threads(2);
  round_array(in, two, f, Rounding::stochastic, {9, 4, 0});
  const std::size_t cut = 123457;  // two calls, the second one told where it starts
  round_array(std::span(in).first(cut), std::span(split).first(cut), f, Rounding::stochastic, {9, 4, 0});
  round_array(std::span(in).subspan(cut), std::span(split).subspan(cut), f, Rounding::stochastic, {9, 4, cut});
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, split);
  std::vector<float> other_seed(in.size());
  round_array(in, other_seed, f, Rounding::stochastic, {10, 4, 0});
  EXPECT_NE(one, other_seed);
}

TEST(Stochastic, NumberTypeUsesItsThreadStream) {
  using S = lp<formats::fp16, Rounding::stochastic>;
  const double third = 1.0 / 3.0;
  auto run = [&] {
    set_stochastic_stream(5, 1);
    std::vector<double> v;
    for (int i = 0; i < 1000; ++i) v.push_back((S(1.0) / S(3.0)).value());
    return v;
  };
  const auto a = run(), b = run();
  EXPECT_EQ(a, b);
  const double down = round_to(third, formats::fp16, Rounding::downward);
  const double up = round_to(third, formats::fp16, Rounding::upward);
  double mean = 0;
  for (double x : a) {
    ASSERT_TRUE(x == down || x == up);
    mean += x / 1000;
  }
  EXPECT_NEAR(mean, third, 5 * (up - down) * 0.5 / std::sqrt(1000.0));
}

}  // namespace
}  // namespace lpsim
