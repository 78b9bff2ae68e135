// Rounding checked against MPFR, the independent oracle: every named format, every deterministic mode, three
// faces of the core (scalar double, float arrays on each instruction set, double arrays).
#include <gtest/gtest.h>

#include <bit>
#include <fmt/format.h>
#include <random>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "support/format_inputs.hpp"
#include "support/mpfr_oracle.hpp"

namespace lpsim {
namespace {

using test::oracle_round;
using test::same_value;

const Rounding deterministic_modes[] = {Rounding::nearest_even, Rounding::toward_zero, Rounding::upward,
                                        Rounding::downward,     Rounding::nearest_away, Rounding::to_odd};

// Formats that the oracle checks: every named one plus customs that exercise the odd corners.
std::vector<Format> formats_under_test() {
  std::vector<Format> v = named_formats();
  for (const char* extra : {"fp16:nosub", "bf16:nosub", "e4m3:nosub", "e3m4", "e6m5:sat", "p5:emax3:emin-4",
                            "e5m10:sat", "e9m7", "e11m30", "p20:emax100:emin-90"})
    v.push_back(parse_format(extra));
  return v;
}

std::vector<Isa> isas() {
  std::vector<Isa> v = {Isa::portable};
  if (isa_available(Isa::avx512)) v.push_back(Isa::avx512);
  return v;
}

class RoundOracle : public ::testing::TestWithParam<Format> {};

// Reports the first few mismatches with enough detail to reproduce them.
struct Mismatches {
  int count = 0;
  void check(const char* path, double x, double got, double want, const Format& f, Rounding m) {
    if (same_value(got, want)) return;
    if (++count <= 5)
      ADD_FAILURE() << path << " " << f.name << " " << short_name(m) << ": x=" << fmt::format("{:a}", x)
                    << " got " << fmt::format("{:a}", got) << " want " << fmt::format("{:a}", want);
  }
};

TEST_P(RoundOracle, ScalarMatchesMpfrOnEdgeAndRandomDoubles) {
  const Format& f = GetParam();
  std::vector<double> xs = test::edge_inputs(f.spec);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 4000; ++i) {  // random doubles around the format's range
    const int e = f.spec.emin - f.spec.precision - 3 + int(rng() % unsigned(f.spec.emax - f.spec.emin + f.spec.precision + 6));
    const double m = 1 + double(rng() >> 11) * 0x1p-53;
    xs.push_back((rng() & 1 ? -1 : 1) * std::ldexp(m, e));
  }
  Mismatches bad;
  for (Rounding m : deterministic_modes)
    for (double x : xs) bad.check("round_to", x, round_to(x, f.spec, m), oracle_round(x, f.spec, m), f, m);
  EXPECT_EQ(bad.count, 0);
}

TEST_P(RoundOracle, FloatArraysMatchMpfrOnStridedFloat32AndEdges) {
  const Format& f = GetParam();
  std::vector<float> xs = test::strided_floats(65537 * 3 + 2);  // about 21800 patterns
  for (float x : test::exact_floats(test::edge_inputs(f.spec))) xs.push_back(x);
  std::vector<float> out(xs.size());
  for (Isa isa : isas())
    for (Rounding m : deterministic_modes) {
      round_array(xs, out, f.spec, m, {}, isa);
      Mismatches bad;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        double want = oracle_round(xs[i], f.spec, m);
        if (!carrier_holds<float>(f.spec)) want = static_cast<float>(want);  // documented: float storage of wide formats
        bad.check(isa == Isa::avx512 ? "float/avx512" : "float/portable", xs[i], out[i], want, f, m);
      }
      EXPECT_EQ(bad.count, 0) << isa_name(isa) << " " << short_name(m);
    }
}

TEST_P(RoundOracle, DoubleArraysMatchScalar) {
  const Format& f = GetParam();
  std::vector<double> xs = test::edge_inputs(f.spec);
  std::vector<double> out(xs.size());
  for (Isa isa : isas())
    for (Rounding m : deterministic_modes) {
      round_array(xs, out, f.spec, m, {}, isa);
      Mismatches bad;
      for (std::size_t i = 0; i < xs.size(); ++i) bad.check("double array", xs[i], out[i], oracle_round(xs[i], f.spec, m), f, m);
      EXPECT_EQ(bad.count, 0);
    }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RoundOracle, ::testing::ValuesIn(formats_under_test()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// Facts measured on ml_dtypes, PyTorch and the H100 (docs/SOURCES.md): the conversions lpsim must reproduce.
TEST(RoundFacts, OverflowOfRealConversions) {
  const auto e4m3 = parse_format("e4m3").spec, e4m3sat = parse_format("e4m3:sat").spec;
  const auto e5m2 = parse_format("e5m2").spec, fp16 = parse_format("fp16").spec;
  EXPECT_EQ(round_to(448, e4m3, Rounding::nearest_even), 448);
  EXPECT_EQ(round_to(464, e4m3, Rounding::nearest_even), 448);
  EXPECT_TRUE(std::isnan(round_to(465, e4m3, Rounding::nearest_even)));
  EXPECT_EQ(round_to(1e9, e4m3sat, Rounding::nearest_even), 448);
  EXPECT_EQ(round_to(61440, e5m2, Rounding::nearest_even), INFINITY);
  EXPECT_EQ(round_to(61439, e5m2, Rounding::nearest_even), 57344);
  EXPECT_EQ(round_to(65519.99, fp16, Rounding::nearest_even), 65504);
  EXPECT_EQ(round_to(65520, fp16, Rounding::nearest_even), INFINITY);
  EXPECT_EQ(round_to(1e9, fp16, Rounding::toward_zero), 65504);
  EXPECT_EQ(round_to(-1e9, fp16, Rounding::upward), -65504);
}

}  // namespace
}  // namespace lpsim
