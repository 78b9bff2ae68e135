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
#include "support/format_inputs.hpp"

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

// The AVX-512 kernel draws its random numbers eight at a time and compares only their top lane-width bits; the
// portable kernel runs the scalar core per element. The two must agree bit for bit on every format, including
// values so far below the smallest subnormal that the vector kernel hands them back to the scalar core.
TEST(Stochastic, VectorKernelMatchesScalarCore) {
  if (!isa_available(Isa::avx512)) GTEST_SKIP() << "no AVX-512 on this CPU/build";
  std::vector<Format> fs = named_formats();
  for (const char* extra : {"fp16:nosub", "e4m3:nosub", "e6m5:sat", "p5:emax3:emin-4", "e9m7", "p20:emax100:emin-90"})
    fs.push_back(parse_format(extra));
  for (const Format& f : fs) {
    std::vector<float> xs = test::strided_floats(65537 * 3 + 2);
    for (float x : test::exact_floats(test::edge_inputs(f.spec))) xs.push_back(x);
    for (int k = 0; k < 200; ++k) xs.push_back(std::ldexp(1.0f + 0.01f * float(k), f.spec.emin - 30 - k % 90));
    std::vector<float> vec(xs.size()), scal(xs.size());
    const StochasticStream sr{77, 3, 1001};  // an odd offset: the lanes' indices must not assume alignment
    round_array(xs, vec, f.spec, Rounding::stochastic, sr, Isa::avx512);
    round_array(xs, scal, f.spec, Rounding::stochastic, sr, Isa::portable);
    int bad = 0;
    for (std::size_t i = 0; i < xs.size(); ++i)
      if (std::bit_cast<std::uint32_t>(vec[i]) != std::bit_cast<std::uint32_t>(scal[i]) && ++bad <= 3)
        ADD_FAILURE() << f.name << " float x=" << xs[i] << " avx512 " << vec[i] << " scalar " << scal[i];
    EXPECT_EQ(bad, 0) << f.name;

    std::vector<double> xd = test::edge_inputs(f.spec);
    for (float x : xs) xd.push_back(double(x) * (1 + 0x1p-40));  // bits below float's precision
    std::vector<double> vd(xd.size()), sd(xd.size());
    round_array(xd, vd, f.spec, Rounding::stochastic, sr, Isa::avx512);
    round_array(xd, sd, f.spec, Rounding::stochastic, sr, Isa::portable);
    bad = 0;
    for (std::size_t i = 0; i < xd.size(); ++i)
      if (std::bit_cast<std::uint64_t>(vd[i]) != std::bit_cast<std::uint64_t>(sd[i]) && ++bad <= 3)
        ADD_FAILURE() << f.name << " double x=" << xd[i] << " avx512 " << vd[i] << " scalar " << sd[i];
    EXPECT_EQ(bad, 0) << f.name;
  }
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
