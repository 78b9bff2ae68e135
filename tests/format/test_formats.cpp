// Format descriptions: named constants against the specifications, parsing, and errors that name the culprit.
#include <gtest/gtest.h>

#include "lpsim/format/format.hpp"
#include "lpsim/format/rounding.hpp"

namespace lpsim {
namespace {

TEST(Formats, ConstantsOfTheSpecifications) {
  struct Row {
    const char* name;
    int p, emax, emin;
    double max;
  };
  const Row rows[] = {{"fp16", 11, 15, -14, 65504.0},        {"bf16", 8, 127, -126, 3.3895313892515355e38},
                      {"tf32", 11, 127, -126, 3.4011621342146535e38}, {"e4m3", 4, 8, -6, 448.0},
                      {"e5m2", 3, 15, -14, 57344.0},         {"e4m3fnuz", 4, 7, -7, 240.0},
                      {"e5m2fnuz", 3, 15, -15, 57344.0},     {"e2m1", 2, 2, 0, 6.0},
                      {"e2m3", 4, 2, 0, 7.5},                {"e3m2", 3, 4, -2, 28.0},
                      {"fp32", 24, 127, -126, 3.4028234663852886e38}};
  for (const Row& r : rows) {
    const FormatSpec s = parse_format(r.name).spec;
    EXPECT_EQ(s.precision, r.p) << r.name;
    EXPECT_EQ(s.emax, r.emax) << r.name;
    EXPECT_EQ(s.emin, r.emin) << r.name;
    EXPECT_EQ(s.max_finite(), r.max) << r.name;
  }
  EXPECT_EQ(parse_format("e4m3").spec.min_subnormal(), 0x1p-9);
  EXPECT_EQ(parse_format("fp16").spec.min_subnormal(), 0x1p-24);
  EXPECT_EQ(parse_format("fp16:nosub").spec.min_subnormal(), 0x1p-14);
  EXPECT_EQ(parse_format("bf16").spec.unit_roundoff(), 0x1p-8);
}

TEST(Formats, AliasesAndCustomSpellings) {
  EXPECT_EQ(parse_format("binary16").name, "fp16");
  EXPECT_EQ(parse_format("E5M10").name, "fp16");
  EXPECT_EQ(parse_format("float8_e4m3fn").name, "e4m3");
  EXPECT_EQ(parse_format("e4m3fn:sat").name, "e4m3:sat");
  EXPECT_EQ(parse_format("p11:emax15").name, "fp16");  // the value set of binary16, with its encoding
  EXPECT_EQ(parse_format("p5:emax3").spec, parse_format("e3m4").spec);  // a value set with an IEEE layout
  const FormatSpec p = parse_format("p5:emax3:emin-4").spec;
  EXPECT_EQ(p.precision, 5);
  EXPECT_EQ(p.emin, -4);
  EXPECT_FALSE(p.encodable());
  EXPECT_EQ(parse_format("e6m9").spec.emax, 31);
}

void expect_error_mentions(const char* text, const char* culprit) {
  try {
    parse_format(text);
    ADD_FAILURE() << text << " parsed";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(culprit), std::string::npos) << e.what();
  }
}

TEST(Formats, ErrorsNameTheCulprit) {
  expect_error_mentions("fp17", "fp17");
  expect_error_mentions("e4m3:wat", "wat");
  expect_error_mentions("e12m3", "exponent bits 12");
  expect_error_mentions("e5m60", "mantissa bits 60");
  expect_error_mentions("p70:emax15", "precision 70");
  expect_error_mentions("p11", "emax");
  expect_error_mentions("e2m1:inf", "infinit");
  expect_error_mentions("", "empty");
  // Extreme exponents (issue 20: 1 - emax overflowed int under UBSan) are refused by name.
  expect_error_mentions("p5:emax-2147483647", "emax -2147483647");
  expect_error_mentions("p5:emax2147483647", "emax 2147483647");
  expect_error_mentions("p5:emax15:emin-2147483648", "emin -2147483648");
  EXPECT_THROW(parse_rounding("nearest"), FormatError);
  EXPECT_EQ(parse_rounding("odd"), Rounding::to_odd);
  EXPECT_EQ(parse_rounding("toward-zero"), Rounding::toward_zero);
}

}  // namespace
}  // namespace lpsim
