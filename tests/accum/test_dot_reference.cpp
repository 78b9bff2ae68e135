// The reference against results derived by hand (stagnation of a narrow accumulator, the tensor-core model's
// truncation, orders), against lp<> (an independent exact implementation) and IEEE special values.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lpsim/accum/dot_reference.hpp"
#include "lpsim/accum/gemm.hpp"
#include "lpsim/format/lp.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "support/mpfr_oracle.hpp"

namespace lpsim {
namespace {

double ref(const std::string& policy, const std::vector<double>& a, const std::vector<double>& b) {
  return reference_dot(parse_policy(policy), a, b);
}

TEST(DotReference, NarrowAccumulatorStagnates) {
  const std::vector<double> ones(4096, 1.0);
  // fp16 has 11 bits: 2048 + 1 is a tie and goes to the even 2048, for ever.
  EXPECT_EQ(ref("in=fp16,acc=fp16", ones, ones), 2048);
  EXPECT_EQ(ref("in=fp16,acc=fp32", ones, ones), 4096);
  // Rounding up, each +1 becomes one ulp: +2 in [2048, 4096) (1024 steps), +4 above (the remaining 1024).
  EXPECT_EQ(ref("in=fp16,acc=fp16,round=ru", ones, ones), 8192);
  // Sums of equal powers of two are exact in pairwise and in blocks of 64.
  EXPECT_EQ(ref("in=fp16,acc=fp16,order=pairwise", ones, ones), 4096);
  EXPECT_EQ(ref("in=fp16,acc=fp16,order=blocked:64", ones, ones), 4096);
  EXPECT_EQ(ref("in=fp16,acc=fp16,order=splitk:2", ones, ones), 4096);  // 2048 + 2048
  EXPECT_EQ(ref("in=fp16,acc=exact,out=fp32", ones, ones), 4096);
}

TEST(DotReference, OrdersDifferWhereTheyShould) {
  const std::vector<double> a = {0x1p30, 1.0, -0x1p30}, b = {1.0, 1.0, 1.0};
  EXPECT_EQ(ref("fp32", a, b), 0.0);                 // (2^30 + 1) rounds to 2^30
  EXPECT_EQ(ref("fp32,order=pairwise", a, b), 0.0);  // 2^30 + (1 - 2^30), the inner sum rounds to -2^30
  EXPECT_EQ(ref("fp32,order=blocked:2", a, b), 0.0);
  EXPECT_EQ(ref("fp32,acc=exact,out=fp32", a, b), 1.0);
  const std::vector<double> c = {1.0, 0x1p30, -0x1p30};  // pairwise: 1 + (2^30 - 2^30) = 1
  EXPECT_EQ(ref("fp32", c, b), 0.0);
  EXPECT_EQ(ref("fp32,order=pairwise", c, b), 1.0);
}

TEST(DotReference, ProductRounding) {
  // (1 + 2^-11)^2 = 1 + 2^-10 + 2^-22: rounded to fp16 first it loses 2^-22, and 1 - that product cancels to -2^-10.
  const double x = 1 + 0x1p-11;
  const std::vector<double> a = {1.0, x}, b = {1.0, -x};
  EXPECT_EQ(ref("in=fp32,acc=fp32,nofma,prod=fp16", a, b), -0x1p-10);
  EXPECT_EQ(ref("in=fp32,acc=fp32", a, b), -(0x1p-10 + 0x1p-22));
}

TEST(DotReference, TensorCoreAlignmentByOperandExponentsKeepsOneMoreBit) {
  // 1.5 * 1.5 = 2.25 has exponent 1 but its operands' exponents sum to 0. With 20 bits kept the quantum is
  // 2^(1-19) aligned by the product and 2^(0-19) aligned by the operands: 2^-19 is cut by the first, kept by the second.
  const std::vector<double> a = {1.5, 0x1p-19}, b = {1.5, 1.0};
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=20", a, b), 2.25);
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=20,tcexp=operands", a, b), 2.25 + 0x1p-19);
  // The generic kernel agrees.
  std::vector<double> c(1);
  gemm(parse_policy("in=fp32,acc=fp32,tc=2,tcbits=20,tcexp=operands,out=fp32"), 1, 1, 2, a, b, c);
  EXPECT_EQ(c[0], 2.25 + 0x1p-19);
}

TEST(DotReference, TensorCoreModelTruncatesAfterAlignment) {
  const std::vector<double> a = {1.0, 0x1p-24, 0x1p-24, 0x1p-24}, b(4, 1.0);
  // Exact sum 1 + 1.5 * 2^-23. Sequential fp32: each 1 + 2^-24 is a tie to even, so 1.
  EXPECT_EQ(ref("fp32", a, b), 1.0);
  EXPECT_EQ(ref("fp32,acc=exact,out=fp32", a, b), 1 + 0x1p-22);  // the exact 1.5 ulp: a tie, to even
  // 24 bits kept below 1's leading bit: quantum 2^-23, each 2^-24 is cut to 0.
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=4,tcbits=24", a, b), 1.0);
  // 26 bits: all exact, 1 + 1.5 * 2^-23 rounded toward zero.
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=4,tcbits=26", a, b), 1 + 0x1p-23);
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=4,tcbits=26,tcround=rne", a, b), 1 + 0x1p-22);
  // The small terms first: in steps of 2 they meet each other (exact 2^-23) before they meet 1; in one step of 4
  // they are aligned to 1 and cut away.
  const std::vector<double> small_first = {0x1p-24, 0x1p-24, 1.0, 0.0};
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=24", small_first, b), 1 + 0x1p-23);
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=4,tcbits=24", small_first, b), 1.0);
}

TEST(DotReference, TensorCoreCutIsTowardZeroForNegativeTerms) {
  const std::vector<double> a = {1.0, -0x1p-25}, b = {1.0, 1.0};
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=24", a, b), 1.0);  // -2^-25 / 2^-23 = -0.25 -> 0
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=24,tcalign=rne", a, b), 1.0);
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=26", a, b), 1 - 0x1p-24);  // exact 1 - 2^-25, toward zero
  const std::vector<double> d = {1.0, -0x1p-24 - 0x1p-25}, e = {1.0, 1.0};
  // -1.5 * 2^-24 at quantum 2^-24 (25 bits): cut to -2^-24 (trunc) or -2^-23 (rne: -1.5 -> -2).
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=25", d, e), 1 - 0x1p-24);
  EXPECT_EQ(ref("in=fp32,acc=fp32,tc=2,tcbits=25,tcalign=rne", d, e), 1 - 0x1p-23);
}

TEST(DotReference, SpecialValues) {
  const double inf = INFINITY;
  EXPECT_TRUE(std::isnan(ref("fp32", {inf, 1.0}, {0.0, 1.0})));  // inf * 0
  EXPECT_EQ(ref("fp32", {inf, 1.0}, {1.0, 1.0}), inf);
  EXPECT_TRUE(std::isnan(ref("fp32", {inf, inf}, {1.0, -1.0})));
  // Overflow of a narrow accumulator is sticky with inf, and recoverable when it saturates.
  EXPECT_EQ(ref("in=fp16,acc=fp16", {60000, 60000, -60000}, {1, 1, 1}), inf);
  EXPECT_EQ(ref("in=fp16,acc=fp16:sat", {60000, 60000, -60000}, {1, 1, 1}), 65504 - 60000);
  EXPECT_TRUE(std::isnan(ref("in=fp16,acc=fp32,tc=4", {inf, -inf, 1, 1}, {1, 1, 1, 1})));
  // Zeros: -0 only when every term is -0; an empty sum is +0.
  EXPECT_TRUE(std::signbit(ref("fp32", {-0.0, 0.0}, {1.0, -1.0})));
  EXPECT_FALSE(std::signbit(ref("fp32", {-0.0, 0.0}, {1.0, 1.0})));
  EXPECT_FALSE(std::signbit(ref("fp32", {}, {})));
  EXPECT_THROW(ref("in=fp16", {0.1}, {1.0}), std::invalid_argument);  // 0.1 is no fp16 value
}

// lp<> is exact by error-free transforms and the rounding core; the reference by MPFR: they must agree.
template <FormatSpec F, Rounding R>
void agrees_with_lp(const std::string& policy, bool fused) {
  SCOPED_TRACE(policy);
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> mant(-2, 2);
  std::uniform_int_distribution<int> expo(-6, 6);
  const AccumPolicy p = parse_policy(policy);
  for (int trial = 0; trial < 200; ++trial) {
    const int k = 1 + trial % 40;
    std::vector<double> a(k), b(k);
    for (int t = 0; t < k; ++t) {
      a[t] = round_to(std::ldexp(mant(gen), expo(gen)), p.input.spec, Rounding::nearest_even);
      b[t] = round_to(std::ldexp(mant(gen), expo(gen)), p.input.spec, Rounding::nearest_even);
    }
    using T = lp<F, R>;
    T s = T(a[0]) * T(b[0]);
    for (int t = 1; t < k; ++t) s = fused ? fma(T(a[t]), T(b[t]), s) : s + T(a[t]) * T(b[t]);
    const double r = reference_dot(p, a, b);
    ASSERT_TRUE(test::same_value(r, s.value())) << "trial " << trial << ": " << r << " vs " << s.value();
  }
}

TEST(DotReference, AgreesWithNumberType) {
  agrees_with_lp<formats::fp16, Rounding::nearest_even>("in=fp16,acc=fp16", true);
  agrees_with_lp<formats::fp16, Rounding::toward_zero>("in=fp16,acc=fp16,round=rz", true);
  agrees_with_lp<formats::bf16, Rounding::nearest_even>("in=bf16,acc=bf16,nofma", false);
  agrees_with_lp<formats::fp32, Rounding::upward>("in=fp16,acc=fp32,round=ru,out=fp32", true);
  agrees_with_lp<formats::e4m3, Rounding::nearest_even>("in=e4m3,acc=e4m3,nofma", false);
  agrees_with_lp<formats::tf32, Rounding::to_odd>("in=fp16,acc=tf32,round=odd", true);
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// dot() takes direct paths for single dot products (a float loop for binary32 reductions, the portable exact
// kernel otherwise): both must give the reference's bits, on cancellation-heavy and overflowing operands.
TEST(DotDirect, MatchesReferenceForReductionPolicies) {
  std::mt19937_64 gen(17);
  std::lognormal_distribution<double> mag(0.0, 3.0);
  for (const char* text : {"in=fp32,acc=fp32,out=fp32", "in=fp32,acc=fp32,out=fp32,nofma", "in=fp16,acc=fp16",
                           "in=bf16,acc=fp32,out=bf16", "in=fp32,acc=fp32,out=fp32,order=pairwise"}) {
    const AccumPolicy p = parse_policy(text);
    for (int k : {1, 2, 7, 64, 300}) {
      std::vector<double> a(k), b(k);
      for (int i = 0; i < k; ++i) {
        a[i] = round_to((i % 2 ? -1 : 1) * mag(gen), p.input.spec, Rounding::nearest_even);
        b[i] = round_to(mag(gen), p.input.spec, Rounding::nearest_even);
      }
      const double want = reference_dot(p, a, b);
      const double got = dot(p, a, b);
      EXPECT_TRUE(got == want || (got != got && want != want)) << text << " k=" << k << ": " << got << " vs " << want;
    }
  }
}

}  // namespace
}  // namespace lpsim
