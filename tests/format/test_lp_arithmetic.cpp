// The number type: + - * / sqrt fma against MPFR (correctly rounded in the format, every deterministic mode),
// and the double-rounding traps that "compute in double, then round" falls into.
#include <gtest/gtest.h>

#include <bit>
#include <fmt/format.h>
#include <random>

#include "lpsim/format/encoding.hpp"
#include "lpsim/format/lp.hpp"
#include "support/mpfr_oracle.hpp"

namespace lpsim {
namespace {

using test::Mpfr;
using test::oracle_round;
using test::same_value;

enum class Op { add, sub, mul, div, sqrt, fma };
const char* op_name(Op op) {
  const char* names[] = {"add", "sub", "mul", "div", "sqrt", "fma"};
  return names[int(op)];
}

// The exact result, or its round-to-odd at 201 bits where it is not finite (div, sqrt): either may stand in
// for the exact value when rounding to p <= 26 bits.
double oracle(Op op, double a, double b, double c, const FormatSpec& f, Rounding mode) {
  Mpfr z(1200), x(64), y(64), w(64);
  mpfr_set_d(x, a, MPFR_RNDN);
  mpfr_set_d(y, b, MPFR_RNDN);
  mpfr_set_d(w, c, MPFR_RNDN);
  switch (op) {
    case Op::add: mpfr_add(z, x, y, MPFR_RNDN); break;  // exact at 1200 bits
    case Op::sub: mpfr_sub(z, x, y, MPFR_RNDN); break;
    case Op::mul: mpfr_mul(z, x, y, MPFR_RNDN); break;
    case Op::fma: mpfr_fma(z, x, y, w, MPFR_RNDN); break;
    case Op::div:
    case Op::sqrt: {
      Mpfr t(200);
      const int inexact = op == Op::div ? mpfr_div(t, x, y, MPFR_RNDZ) : mpfr_sqrt(t, x, MPFR_RNDZ);
      mpfr_set(z, t, MPFR_RNDN);
      if (inexact && mpfr_number_p(t)) {  // move half a 200-bit ulp away from zero: the odd 201-bit neighbour
        mpfr_prec_round(z, 201, MPFR_RNDN);
        if (mpfr_sgn(z.get()) > 0) mpfr_nextabove(z); else if (mpfr_sgn(z.get()) < 0) mpfr_nextbelow(z);
        else mpfr_set_d(z, 0x1p-1070, MPFR_RNDN);  // cannot happen for these ranges; keeps the sign test honest
      }
      break;
    }
  }
  return oracle_round(z.get(), f, mode);
}

// Operands: random values of the format (small formats: random bit patterns; others: random floats rounded),
// plus the specials.
template <FormatSpec F>
std::vector<double> operands(std::mt19937_64& rng, int n) {
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, F.max_finite(), F.min_subnormal(), -F.min_normal()};
  if (F.has_inf()) v.push_back(INFINITY);
  while (static_cast<int>(v.size()) < n) {
    double x;
    if (F.encodable() && F.width() <= 16) x = decode(rng() & ((1u << F.width()) - 1), F);
    else x = round_to(std::bit_cast<float>(static_cast<std::uint32_t>(rng())), F, Rounding::nearest_even);
    if (!std::isnan(x)) v.push_back(x);
  }
  return v;
}

template <FormatSpec F, Rounding R>
void check_all_ops(const char* name, int n) {
  using T = lp<F, R>;
  std::mt19937_64 rng(7);
  const auto a = operands<F>(rng, n), b = operands<F>(rng, n), c = operands<F>(rng, n);
  int bad = 0;
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::sqrt, Op::fma})
    for (std::size_t i = 0; i < a.size(); ++i) {
      const T x = T::from_value(a[i]), y = T::from_value(b[i]), z = T::from_value(c[i]);
      T r;
      switch (op) {
        case Op::add: r = x + y; break;
        case Op::sub: r = x - y; break;
        case Op::mul: r = x * y; break;
        case Op::div: r = x / y; break;
        case Op::sqrt: r = sqrt(abs(x)); break;
        case Op::fma: r = fma(x, y, z); break;
      }
      const double want = oracle(op, op == Op::sqrt ? std::fabs(a[i]) : a[i], b[i], c[i], F, R);
      if (!same_value(r.value(), want) && ++bad <= 5)
        ADD_FAILURE() << name << " " << short_name(R) << " " << op_name(op) << fmt::format("({:a}, {:a}, {:a})", a[i], b[i], c[i])
                      << fmt::format(" got {:a} want {:a}", r.value(), want);
    }
  EXPECT_EQ(bad, 0) << name << " " << short_name(R);
}

template <FormatSpec F>
void check_every_mode(const char* name, int n) {
  check_all_ops<F, Rounding::nearest_even>(name, n);
  check_all_ops<F, Rounding::toward_zero>(name, n);
  check_all_ops<F, Rounding::upward>(name, n);
  check_all_ops<F, Rounding::downward>(name, n);
  check_all_ops<F, Rounding::nearest_away>(name, n);
  check_all_ops<F, Rounding::to_odd>(name, n);
}

TEST(LpArithmetic, Fp16MatchesMpfr) { check_every_mode<formats::fp16>("fp16", 3000); }
TEST(LpArithmetic, Bf16MatchesMpfr) { check_every_mode<formats::bf16>("bf16", 3000); }
TEST(LpArithmetic, Fp32MatchesMpfr) { check_every_mode<formats::fp32>("fp32", 3000); }
TEST(LpArithmetic, Tf32MatchesMpfr) { check_every_mode<formats::tf32>("tf32", 2000); }
TEST(LpArithmetic, E4m3MatchesMpfr) { check_every_mode<formats::e4m3>("e4m3", 2000); }
TEST(LpArithmetic, E4m3SatMatchesMpfr) { check_every_mode<formats::e4m3_sat>("e4m3:sat", 1000); }
TEST(LpArithmetic, E5m2MatchesMpfr) { check_every_mode<formats::e5m2>("e5m2", 2000); }
TEST(LpArithmetic, E4m3FnuzMatchesMpfr) { check_every_mode<formats::e4m3fnuz>("e4m3fnuz", 1000); }
TEST(LpArithmetic, E2m1MatchesMpfr) { check_every_mode<formats::e2m1>("e2m1", 500); }

// fma computed in double and then rounded to binary32 rounds twice: exact = 1 + 2^-23 + 2^-24 - 2^-60 lies just
// below a binary32 midpoint, the double rounding lands on the midpoint, and ties-to-even then goes the wrong way.
TEST(LpArithmetic, FmaThroughDoubleRoundsTwiceButLpDoesNot) {
  const double a = 0x1p-24 * (1 + 0x1p-18), b = 1 - 0x1p-18, c = 1 + 0x1p-23;
  using F32 = lp<formats::fp32>;
  const double naive = round_to(std::fma(a, b, c), formats::fp32, Rounding::nearest_even);
  const double want = oracle(Op::fma, a, b, c, formats::fp32, Rounding::nearest_even);
  EXPECT_EQ(want, 1 + 0x1p-23);
  EXPECT_NE(naive, want);  // the trap is real
  EXPECT_EQ(fma(F32(a), F32(b), F32(c)).value(), want);
}

// Directed rounding of a sum computed in double: 1 - 2^-100 rounds to 1 in double, and toward zero that stays 1.
TEST(LpArithmetic, DirectedSumThroughDoubleIsWrongButLpIsRight) {
  using F32z = lp<formats::fp32, Rounding::toward_zero>;
  const double naive = round_to(1.0 + -0x1p-100, formats::fp32, Rounding::toward_zero);
  const double want = oracle(Op::add, 1.0, -0x1p-100, 0, formats::fp32, Rounding::toward_zero);
  EXPECT_EQ(want, 1 - 0x1p-24);
  EXPECT_NE(naive, want);
  EXPECT_EQ((F32z(1.0) + F32z(-0x1p-100)).value(), want);
}

// Figueroa: for + - * / sqrt with round-to-nearest into p <= 24 bits, double then round is already right. Check
// the claim itself against MPFR, so the shortcut a kernel may take is known to be safe.
TEST(LpArithmetic, FigueroaDoubleRoundingIsHarmlessForBasicOpsToNearest) {
  std::mt19937_64 rng(3);
  const auto a = operands<formats::fp32>(rng, 20000), b = operands<formats::fp32>(rng, 20000);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const FormatSpec f = formats::fp32;
    const Rounding rn = Rounding::nearest_even;
    ASSERT_TRUE(same_value(round_to(a[i] + b[i], f, rn), oracle(Op::add, a[i], b[i], 0, f, rn))) << i;
    ASSERT_TRUE(same_value(round_to(a[i] * b[i], f, rn), oracle(Op::mul, a[i], b[i], 0, f, rn))) << i;
    ASSERT_TRUE(same_value(round_to(a[i] / b[i], f, rn), oracle(Op::div, a[i], b[i], 0, f, rn))) << i;
    ASSERT_TRUE(same_value(round_to(std::sqrt(std::fabs(a[i])), f, rn), oracle(Op::sqrt, std::fabs(a[i]), 0, 0, f, rn))) << i;
  }
}

}  // namespace
}  // namespace lpsim
