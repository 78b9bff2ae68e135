// The worst-case dot-product bound (accum/error_bound.hpp) must hold for every kernel policy on moderate,
// same-signed and cancelling inputs: |fl(a . b) - a . b| <= theta sum |a_i b_i|, the exact side summed in MPFR.
#include <gtest/gtest.h>
#include <mpfr.h>

#include <cmath>
#include <vector>

#include "lpsim/accum/error_bound.hpp"
#include "lpsim/accum/gemm.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

// sum a_i b_i and sum |a_i b_i| exactly (products of doubles are exact in 106 bits; 4096 terms in 2048 bits).
std::pair<double, double> exact_dot(const std::vector<double>& a, const std::vector<double>& b) {
  mpfr_t s, t, p;
  mpfr_inits2(2048, s, t, p, (mpfr_ptr)nullptr);
  mpfr_set_zero(s, 1), mpfr_set_zero(t, 1);
  for (std::size_t i = 0; i < a.size(); ++i) {
    mpfr_set_d(p, a[i], MPFR_RNDN);
    mpfr_mul_d(p, p, b[i], MPFR_RNDN);
    mpfr_add(s, s, p, MPFR_RNDN);
    mpfr_abs(p, p, MPFR_RNDN);
    mpfr_add(t, t, p, MPFR_RNDN);
  }
  const std::pair<double, double> r{mpfr_get_d(s, MPFR_RNDN), mpfr_get_d(t, MPFR_RNDN)};
  mpfr_clears(s, t, p, (mpfr_ptr)nullptr);
  return r;
}

TEST(ErrorBound, GammaByHand) {
  EXPECT_DOUBLE_EQ(gamma_n(3, 0x1p-11), 3 * 0x1p-11 / (1 - 3 * 0x1p-11));
  EXPECT_TRUE(std::isinf(gamma_n(2048, 0x1p-11)));
  // Exact accumulation: only the output rounding.
  EXPECT_DOUBLE_EQ(worst_case_dot_error(parse_policy("exact"), 1000), 0x1p-53);
}

TEST(ErrorBound, HoldsForEveryKernelPolicy) {
  const char* policies[] = {"fp32", "fp16-fp32acc", "bf16-fp32acc", "fp16-fp16acc", "bf16-bf16acc", "fp16-tc", "bf16-tc",
                            "fp8e4m3-tc", "fp8e4m3-tc-promote", "fp8e4m3-mma", "in=fp16,acc=fp16,order=pairwise",
                            "in=fp16,acc=fp32,tc=8,tcbits=20,tcacc=e5m6,order=blocked:64",
                            "in=bf16,acc=bf16,order=blocked:32", "in=fp16,acc=fp16,round=rz",
                            "in=bf16,acc=bf16,order=splitk:4"};
  int checked = 0;
  for (const char* name : policies) {
    const AccumPolicy p = parse_policy(name);
    for (int k : {1, 7, 64, 1000, 4096})
      for (int kind = 0; kind < 3; ++kind) {  // 0: normal, 1: all positive, 2: cancelling pairs
        std::vector<double> a(k), b(k);
        for (int i = 0; i < k; ++i) {
          double x = normal_at(kind, std::uint64_t(k), 2 * i), y = normal_at(kind, std::uint64_t(k), 2 * i + 1);
          if (kind == 1) x = std::fabs(x), y = std::fabs(y);
          if (kind == 2 && i % 2) x = -a[i - 1] * (1 + 0x1p-6), y = b[i - 1];
          a[i] = round_to(x, p.input.spec, Rounding::nearest_even), b[i] = round_to(y, p.input.spec, Rounding::nearest_even);
        }
        const auto [exact, abs_sum] = exact_dot(a, b);
        const double got = dot(p, a, b), theta = worst_case_dot_error(p, k);
        if (!std::isfinite(got) || std::isinf(theta)) continue;  // overflow, or a bound that says nothing
        EXPECT_LE(std::fabs(got - exact), theta * abs_sum * (1 + 1e-12) + 1e-300)
            << name << " k " << k << " kind " << kind << ": error " << std::fabs(got - exact) << " theta " << theta;
        ++checked;
      }
  }
  EXPECT_GT(checked, 150);
}

}  // namespace
}  // namespace lpsim
