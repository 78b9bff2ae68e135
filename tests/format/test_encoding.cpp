// Bit patterns: exhaustive over every format of at most 16 bits, checked against oracles that do not use lpsim's
// decoder: the compiler's _Float16, bfloat16 as the top half of a float, and values read off the OCP tables.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "lpsim/format/encoding.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim {
namespace {

std::vector<Format> small_formats() {
  std::vector<Format> v;
  for (const Format& f : named_formats())
    if (f.spec.width() <= 16) v.push_back(f);
  for (const char* extra : {"e3m4", "e6m5", "e4m3fnuz:sat", "e3m3fn", "e5m10:sat", "e2m5fo"}) v.push_back(parse_format(extra));
  return v;
}

TEST(Encoding, EveryPatternDecodesAndEncodesToItself) {
  for (const Format& f : small_formats()) {
    int bad = 0;
    for (std::uint64_t b = 0; b < (std::uint64_t{1} << f.spec.width()); ++b) {
      const double x = decode(b, f.spec);
      if (encode(x, f.spec) != b && ++bad < 4) ADD_FAILURE() << f.name << " pattern " << b << " -> " << x;
    }
    EXPECT_EQ(bad, 0) << f.name;
  }
}

TEST(Encoding, ValuesAreFixedPointsOfEveryRoundingAndIncreaseWithThePattern) {
  for (const Format& f : small_formats()) {
    double previous = -1;
    for (std::uint64_t b = 0; b < (std::uint64_t{1} << (f.spec.width() - 1)); ++b) {  // positive half
      const double x = decode(b, f.spec);
      if (std::isnan(x)) continue;
      if (std::isinf(x) && f.spec.overflow == Overflow::saturate) {  // saturation clamps inf, as SATFINITE does
        EXPECT_EQ(round_to(x, f.spec, Rounding::nearest_even), f.spec.max_finite()) << f.name;
        continue;
      }
      for (Rounding m : all_roundings)
        ASSERT_EQ(std::bit_cast<std::uint64_t>(round_to(x, f.spec, m, 12345)), std::bit_cast<std::uint64_t>(x))
            << f.name << " " << b << " " << short_name(m);
      ASSERT_GT(x, previous) << f.name << " pattern " << b;
      previous = x;
    }
  }
}

TEST(Encoding, Fp16AgreesWithTheCompilersFloat16) {
  const FormatSpec fp16 = parse_format("fp16").spec;
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const double mine = decode(b, fp16);
    const double theirs = static_cast<double>(std::bit_cast<_Float16>(static_cast<std::uint16_t>(b)));
    ASSERT_TRUE(std::isnan(mine) ? std::isnan(theirs) : mine == theirs && std::signbit(mine) == std::signbit(theirs)) << b;
    const Class c = classify_bits(b, fp16);
    const int fpc = std::fpclassify(theirs);
    const Class expected = fpc == FP_NAN ? Class::nan : fpc == FP_INFINITE ? Class::infinite : fpc == FP_ZERO ? Class::zero
                         : std::fabs(theirs) < 0x1p-14 ? Class::subnormal : Class::normal;
    ASSERT_EQ(c, expected) << b;
  }
}

TEST(Encoding, Bf16IsTheTopHalfOfAFloat) {
  const FormatSpec bf16 = parse_format("bf16").spec;
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float theirs = std::bit_cast<float>(b << 16);
    const double mine = decode(b, bf16);
    ASSERT_TRUE(std::isnan(theirs) ? std::isnan(mine) : mine == theirs && std::signbit(mine) == std::signbit(theirs)) << b;
    const int fpc = std::fpclassify(theirs);  // the C library classifies the float that holds the same value
    const Class expected = fpc == FP_NAN ? Class::nan : fpc == FP_INFINITE ? Class::infinite : fpc == FP_ZERO ? Class::zero
                         : fpc == FP_SUBNORMAL ? Class::subnormal : Class::normal;
    ASSERT_EQ(classify_bits(b, bf16), expected) << b;
    if (std::isnan(theirs)) {
      ASSERT_EQ(std::bit_cast<std::uint64_t>(mine) >> 45 & 0x7f, b & 0x7f) << "NaN payload";
    }
  }
}

struct Known {
  const char* format;
  std::uint64_t bits;
  double value;
};
// From the OCP 8-bit floating point specification (v1.0), the OCP MX specification (v1.0) and the FNUZ
// definitions of ml_dtypes / AMD: each value written out by hand, not computed.
const Known known_values[] = {
    {"e4m3", 0x38, 1.0},          {"e4m3", 0x7e, 448.0},         {"e4m3", 0x01, 0.001953125},  {"e4m3", 0x07, 0.013671875},
    {"e4m3", 0x08, 0.015625},     {"e4m3", 0xfe, -448.0},        {"e4m3", 0x80, -0.0},         {"e5m2", 0x3c, 1.0},
    {"e5m2", 0x7b, 57344.0},      {"e5m2", 0x7c, INFINITY},      {"e5m2", 0x01, 1.52587890625e-05}, {"e5m2", 0x04, 6.103515625e-05},
    {"e4m3fnuz", 0x40, 1.0},      {"e4m3fnuz", 0x7f, 240.0},     {"e4m3fnuz", 0x01, 0.0009765625}, {"e5m2fnuz", 0x40, 1.0},
    {"e5m2fnuz", 0x7f, 57344.0},  {"e5m2fnuz", 0x01, 7.62939453125e-06}, {"e2m1", 0x1, 0.5},   {"e2m1", 0x2, 1.0},
    {"e2m1", 0x3, 1.5},           {"e2m1", 0x4, 2.0},            {"e2m1", 0x5, 3.0},           {"e2m1", 0x6, 4.0},
    {"e2m1", 0x7, 6.0},           {"e2m1", 0xf, -6.0},           {"e2m3", 0x01, 0.125},        {"e2m3", 0x1f, 7.5},
    {"e3m2", 0x01, 0.0625},       {"e3m2", 0x1f, 28.0},          {"fp16", 0x3c00, 1.0},        {"fp16", 0x7bff, 65504.0},
    {"fp16", 0x0001, 5.9604644775390625e-08}, {"bf16", 0x3f80, 1.0}, {"bf16", 0x7f7f, 3.3895313892515355e+38},
};

TEST(Encoding, KnownValuesFromTheSpecifications) {
  for (const Known& k : known_values) {
    const FormatSpec f = parse_format(k.format).spec;
    EXPECT_EQ(decode(k.bits, f), k.value) << k.format << " " << k.bits;
    EXPECT_EQ(encode(k.value, f), k.bits) << k.format << " " << k.value;
  }
  const FormatSpec tf32 = parse_format("tf32").spec;  // 1 + 8 + 10 bits: 1.0 is 0 01111111 0000000000
  EXPECT_EQ(encode(1.0, tf32), 0x1fc00u);
  EXPECT_EQ(decode(0x1fc00u, tf32), 1.0);
}

TEST(Encoding, SpecialsAndNanPatterns) {
  const FormatSpec e4m3 = parse_format("e4m3").spec, fnuz = parse_format("e4m3fnuz").spec;
  const FormatSpec e2m1 = parse_format("e2m1").spec;
  EXPECT_EQ(classify_bits(0x7f, e4m3), Class::nan);
  EXPECT_EQ(classify_bits(0xff, e4m3), Class::nan);
  EXPECT_EQ(classify_bits(0x7e, e4m3), Class::normal);
  EXPECT_EQ(classify_bits(0x80, fnuz), Class::nan);
  EXPECT_EQ(encode(-0.0, fnuz), 0x00u);  // no negative zero
  EXPECT_THROW(encode(NAN, e2m1), FormatError);
  EXPECT_THROW(encode(INFINITY, e4m3), FormatError);
  EXPECT_THROW(encode(0.3, e4m3), FormatError);
  EXPECT_THROW(decode(0x100, e4m3), FormatError);
  int nans = 0, infs = 0;
  const FormatSpec e5m2 = parse_format("e5m2").spec;
  for (std::uint64_t b = 0; b < 256; ++b) nans += classify_bits(b, e5m2) == Class::nan, infs += classify_bits(b, e5m2) == Class::infinite;
  EXPECT_EQ(nans, 6);
  EXPECT_EQ(infs, 2);
  // Class counts of every 8-bit format, from the OCP and FNUZ definitions: {zero, subnormal, normal, inf, nan}.
  struct Counts {
    const char* format;
    int zero, subnormal, normal, inf, nan;
  };
  for (const Counts& c : {Counts{"e4m3", 2, 14, 238, 0, 2}, Counts{"e5m2", 2, 6, 240, 2, 6},
                          Counts{"e4m3fnuz", 1, 14, 240, 0, 1}, Counts{"e5m2fnuz", 1, 6, 248, 0, 1}}) {
    const FormatSpec f = parse_format(c.format).spec;
    int n[5] = {};
    for (std::uint64_t b = 0; b < 256; ++b) ++n[int(classify_bits(b, f))];
    EXPECT_EQ(n[int(Class::zero)], c.zero) << c.format;
    EXPECT_EQ(n[int(Class::subnormal)], c.subnormal) << c.format;
    EXPECT_EQ(n[int(Class::normal)], c.normal) << c.format;
    EXPECT_EQ(n[int(Class::infinite)], c.inf) << c.format;
    EXPECT_EQ(n[int(Class::nan)], c.nan) << c.format;
  }
}

}  // namespace
}  // namespace lpsim
