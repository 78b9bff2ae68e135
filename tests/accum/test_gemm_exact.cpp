// Every kernel against the MPFR reference, bit for bit: every order, accumulator format, rounding mode, fused or
// not, the tensor-core model, on moderate, wide-range and adversarial operands (cancellation, overflow,
// subnormals, inf, NaN). Then the AVX-512 kernels against the portable one on sizes that exercise every tile edge.
#include <gtest/gtest.h>

#include <tuple>

#include <fmt/format.h>
#include <vector>

#include "lpsim/accum/dot_reference.hpp"
#include "lpsim/accum/gemm.hpp"
#include "support/dot_inputs.hpp"
#include "support/mpfr_oracle.hpp"

namespace lpsim {
namespace {

using test::DotInputs;
using test::same_value;

struct Operands {
  std::vector<double> a, b;
};

Operands operands(const AccumPolicy& p, int m, int n, int k, DotInputs kind, std::uint64_t seed) {
  return {test::dot_operands(p.input.spec, size_t(m) * k, kind, seed),
          test::dot_operands(p.input.spec, size_t(k) * n, kind, seed + 1)};
}

// Compares two results element by element; reports the first few differences.
::testing::AssertionResult same_results(const std::vector<double>& expected, const std::vector<double>& got) {
  int bad = 0;
  std::string report;
  for (size_t i = 0; i < expected.size(); ++i)
    if (!same_value(expected[i], got[i]) && bad++ < 3)
      report += fmt::format(" [{}] expected {:a} got {:a};", i, expected[i], got[i]);
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << expected.size() << " differ:" << report;
}

std::vector<std::string> scalar_policies() {
  const char* accs[] = {"fp32", "fp16", "bf16", "tf32", "e5m2", "fp16:sat", "fp64", "e4m3"};
  const char* inputs[] = {"fp16", "bf16", "e4m3", "fp32", "tf32"};
  const char* orders[] = {"seq", "pairwise", "blocked:8", "splitk:3"};
  const char* modes[] = {"rne", "rz", "ru", "rd", "rna", "odd", "sr"};
  std::vector<std::string> v;
  int i = 0;
  for (const char* acc : accs)
    for (const char* order : orders)
      for (const char* mode : modes)
        for (const char* fused : {"fma", "nofma"}) {
          if (std::string(acc) == "fp64" && std::string(mode) == "sr") continue;  // needs <= 51 bits
          v.push_back(fmt::format("in={},acc={},round={},order={},{}", inputs[i++ % 5], acc, mode, order, fused));
        }
  v.push_back("in=fp16,acc=fp32,nofma,prod=bf16,prodround=rz");
  v.push_back("in=fp32,acc=fp32,nofma,prod=fp16,prodround=sr");
  v.push_back("in=fp64,acc=fp64");
  v.push_back("in=fp64,acc=fp64,order=pairwise,nofma");
  v.push_back("in=fp16,acc=fp32,outround=sr,out=e4m3");
  return v;
}

std::vector<std::string> tensor_core_policies() {
  std::vector<std::string> v;
  const char* inputs[] = {"fp16", "bf16", "e4m3", "e5m2"};
  const char* rounds[] = {"rz", "rne", "ru", "sr"};
  const char* orders[] = {"seq", "blocked:16", "splitk:2"};
  int i = 0;
  for (int k : {2, 4, 16})
    for (int bits : {11, 24, 25, 36})
      for (const char* align : {"trunc", "rne"})
        for (const char* order : orders) {
          v.push_back(fmt::format("in={},acc=fp32,tc={},tcbits={},tcalign={},tcround={},order={},tcexp={}", inputs[i % 4],
                                  k, bits, align, rounds[(i / 4) % 4], order, (i / 16) % 2 ? "operands" : "product"));
          ++i;
        }
  for (const auto& preset : policy_presets())
    if (preset.name.find("tc") != std::string::npos) v.push_back(preset.name);
  v.push_back("in=fp16,acc=fp16,tc=4,tcbits=14");
  v.push_back("in=bf16,acc=bf16,tc=8,tcbits=12,tcround=rne,order=blocked:32");
  // Hopper's fp8 paths: operands unpacked to fp16, terms dealt to the steps, a narrower tensor-core accumulator
  v.push_back("fp8e4m3-mma");
  v.push_back("fp8e5m2-mma");
  v.push_back("in=e4m3,acc=fp32,tc=4,tcbits=11,tcdeal=2,order=blocked:8,tcunpack=fp16,tcexp=operands,tcround=sr");
  v.push_back("in=e5m2,acc=fp32,tc=4,tcbits=14,tcacc=e8m13,order=blocked:12,tcdeal=1,tcexp=operands");
  v.push_back("in=fp16,acc=fp32,tc=2,tcbits=20,tcacc=e5m6,order=splitk:2,tcround=ru");
  v.push_back("in=e5m2,acc=fp32,tc=16,tcbits=29,tcexp=operands");  // int32 sums widened after every pair
  v.push_back("in=bf16,acc=fp32,tc=32,tcbits=29,tcalign=rne,tcround=rd");
  return v;
}

void check_against_reference(const std::vector<std::string>& policies) {
  const int m = 2, n = 3, k = 21;
  for (const auto& text : policies) {
    SCOPED_TRACE(text);
    const AccumPolicy p = parse_policy(text);
    for (DotInputs kind : {DotInputs::moderate, DotInputs::wide, DotInputs::adversarial, DotInputs::full_range}) {
      SCOPED_TRACE(int(kind));
      const Operands x = operands(p, m, n, k, kind, 11 + int(kind));
      const StochasticStream sr{3, 5, 0};
      std::vector<double> expected(size_t(m) * n), portable(expected.size()), best(expected.size());
      reference_gemm(p, m, n, k, x.a, x.b, expected, sr);
      gemm(p, m, n, k, x.a, x.b, portable, {sr, Isa::portable});
      gemm(p, m, n, k, x.a, x.b, best, {sr, Isa::best});
      EXPECT_TRUE(same_results(expected, portable)) << "portable kernel";
      EXPECT_TRUE(same_results(expected, best)) << path_name(gemm_path(p, Isa::best, false));
    }
  }
}

TEST(GemmExact, EveryOrderAccumulatorAndModeMatchesReference) { check_against_reference(scalar_policies()); }

TEST(GemmExact, TensorCoreModelMatchesReference) { check_against_reference(tensor_core_policies()); }

// D = A B + C (flash attention's P V update): the portable kernel against the MPFR definition, from initial values
// of the accumulator drawn like the operands (zeros, subnormals, huge values, cancellations, Inf and NaN).
TEST(GemmExact, AccumulatingIntoGivenValuesMatchesReference) {
  const int m = 2, n = 3, k = 21;
  std::vector<std::string> policies = scalar_policies();
  for (const auto& t : tensor_core_policies()) policies.push_back(t);
  for (const auto& text : policies) {
    SCOPED_TRACE(text);
    const AccumPolicy p = parse_policy(text);
    if (!p.acc) continue;
    for (DotInputs kind : {DotInputs::moderate, DotInputs::wide, DotInputs::adversarial}) {
      SCOPED_TRACE(int(kind));
      const Operands x = operands(p, m, n, k, kind, 21 + int(kind));
      const StochasticStream sr{3, 7, 0};
      std::vector<double> c0 = test::dot_operands(p.acc->spec, size_t(m) * n, kind, 5 + int(kind));
      std::vector<double> expected(c0.size()), got = c0;
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          std::vector<double> column(k);
          for (int t = 0; t < k; ++t) column[t] = x.b[size_t(t) * n + j];
          expected[size_t(i) * n + j] = reference_accumulate_dot(
              p, c0[size_t(i) * n + j], std::span<const double>(x.a).subspan(size_t(i) * k, k), column, sr,
              std::uint64_t(i) * n + j);
        }
      accumulate_gemm(p, m, n, k, x.a, x.b, got, {sr});
      EXPECT_TRUE(same_results(expected, got));
    }
  }
}

// A chain of tensor-core steps split in two, the second half continuing from the first half's accumulator, is the
// whole chain: what lets a flash kernel accumulate P V tile by tile. Checked against the one-call reference.
TEST(GemmExact, TensorCoreChainContinuesAcrossCalls) {
  for (const char* text : {"fp16-tc", "bf16-tc", "in=fp16,acc=fp32,tc=16,tcbits=24", "fp16-fp32acc"}) {
    SCOPED_TRACE(text);
    AccumPolicy p = parse_policy(text);
    p.output = *p.acc;  // compare accumulators
    const int k = 64;
    const std::vector<double> a = test::dot_operands(p.input.spec, k, DotInputs::wide, 3),
                              b = test::dot_operands(p.input.spec, k, DotInputs::wide, 4);
    const double whole = reference_dot(p, a, b);
    const std::span<const double> as(a), bs(b);
    const double first = reference_accumulate_dot(p, 0.0, as.first(32), bs.first(32));
    EXPECT_TRUE(same_value(whole, reference_accumulate_dot(p, first, as.last(32), bs.last(32))));
  }
}

TEST(GemmExact, EmptyInnerDimensionGivesZero) {
  std::vector<double> a, b, c(6, 7.0);
  gemm(parse_policy("fp16-fp16acc"), 2, 3, 0, a, b, c);
  for (double v : c) EXPECT_TRUE(v == 0 && !std::signbit(v));
}

TEST(GemmExact, RejectsOperandsOutsideTheInputFormat) {
  std::vector<double> a = {1.0, 0.1}, b = {1.0, 1.0}, c(1);
  try {
    gemm(parse_policy("in=fp16,acc=fp32"), 1, 1, 2, a, b, c);
    FAIL() << "0.1 is not an fp16 value";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("A[0,1]"), std::string::npos) << e.what();
  }
}

// The vectorised kernels against the portable one: sizes that are no multiple of any tile, long K, every path.
TEST(GemmExact, FastKernelsMatchPortableOnLargeProducts) {
  if (!isa_available(Isa::avx512)) GTEST_SKIP() << "no AVX-512 on this CPU: only the portable kernel runs";
  const std::vector<std::string> policies = {
      "fp32", "fp16-fp32acc", "bf16-fp32acc", "tf32-fp32acc", "in=fp16,acc=fp32,nofma", "fp16-fp16acc",
      "in=fp16,acc=fp16,round=rz", "in=fp16,acc=fp16,round=ru", "in=fp16,acc=fp16,round=rd", "bf16-bf16acc",
      "in=fp16,acc=fp32,order=blocked:64", "in=fp16,acc=fp32,order=splitk:3", "in=fp16,acc=fp16,order=blocked:48",
      "fp16-tc", "bf16-tc", "fp8e4m3-tc", "fp8e5m2-tc", "fp8e4m3-tc-promote", "in=fp16,acc=fp32,tc=4,tcbits=24",
      "in=fp16,acc=fp32,tc=8,tcbits=30,tcalign=rne,tcround=rne", "fp8e4m3-mma", "fp8e5m2-mma", "b200-bf16-tc",
      "b200-fp8e4m3-tc", "in=bf16,acc=fp32,tc=8,tcbits=20,tcalign=rne,tcround=ru,tcexp=operands,order=splitk:3",
      "in=e4m3,acc=fp32,tc=16,tcbits=12,tcexp=operands,tcacc=e8m10,order=blocked:64,round=rd",
      "in=e5m2,acc=fp32,tc=32,tcbits=14,tcexp=operands,tcacc=e8m13,tcdeal=4,order=blocked:96",
      "in=fp16,acc=fp32,tc=16,tcbits=26,tcexp=operands,tcacc=e5m10",
      // steps longer than the int32 accumulators hold: widened to double every 3 and 6 pairs
      "in=e4m3,acc=fp32,tc=64,tcbits=28,tcexp=operands", "in=fp16,acc=fp32,tc=64,tcbits=28,order=blocked:200"};
  int fast = 0;
  // n = 53 packs B into panels; n = 64 reads whole 32-column panels of B in place.
  for (const auto& [m, n, k] : {std::tuple{37, 53, 300}, std::tuple{19, 64, 130}})
    for (const auto& text : policies) {
      SCOPED_TRACE(text + " n=" + std::to_string(n));
      const AccumPolicy p = parse_policy(text);
      fast += gemm_path(p, Isa::avx512, true) != GemmPath::generic;
      for (DotInputs kind : {DotInputs::moderate, DotInputs::wide, DotInputs::adversarial, DotInputs::full_range}) {
        const Operands x = operands(p, m, n, k, kind, 100 + int(kind));
        std::vector<double> portable(size_t(m) * n), avx(portable.size());
        gemm(p, m, n, k, x.a, x.b, portable, {{}, Isa::portable});
        gemm(p, m, n, k, x.a, x.b, avx, {{}, Isa::avx512});
        EXPECT_TRUE(same_results(portable, avx)) << "inputs " << int(kind) << ", "
                                                 << path_name(gemm_path(p, Isa::avx512, false));
      }
    }
  RecordProperty("fast_policies", fast);
  // The presets fitted to the H100 bit for bit take the vectorised tensor-core kernel.
  for (const char* preset : {"fp16-tc", "bf16-tc", "fp8e4m3-tc", "fp8e4m3-tc-promote", "fp8e4m3-mma", "fp8e5m2-mma",
                             "b200-fp16-tc", "b200-fp8e4m3-tc"})
    EXPECT_EQ(gemm_path(parse_policy(preset), Isa::avx512, true), GemmPath::tensor_core) << preset;
}

// The worst case of the int32 sums: every product near the top of its binade with one sign, so each cut term is
// close to 2^(bits+1) and a step's sum close to what the lanes can hold (the widening of long steps included).
TEST(GemmExact, TensorCoreSumsOfLargestTermsStayExact) {
  const int m = 5, n = 40, k = 128;
  for (const char* text : {"fp16-tc", "bf16-tc", "b200-fp8e4m3-tc", "fp8e4m3-mma", "in=e4m3,acc=fp32,tc=64,tcbits=28,tcexp=operands",
                           "in=fp16,acc=fp32,tc=64,tcbits=28,order=blocked:128", "in=e5m2,acc=fp32,tc=16,tcbits=29,tcexp=operands"}) {
    SCOPED_TRACE(text);
    const AccumPolicy p = parse_policy(text);
    const double largest = 2 - std::ldexp(1.0, 1 - p.input.spec.precision);  // all-ones significand
    const std::vector<double> a(size_t(m) * k, largest), b(size_t(k) * n, -largest);
    std::vector<double> expected(size_t(m) * n), got(expected.size());
    reference_gemm(p, m, n, k, a, b, expected, {});
    gemm(p, m, n, k, a, b, got, {{}, Isa::best});
    EXPECT_TRUE(same_results(expected, got)) << path_name(gemm_path(p, Isa::best, false));
  }
}

}  // namespace
}  // namespace lpsim
