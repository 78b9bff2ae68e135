// Block-scaled formats: hand-computed blocks (zero, one huge element, NaN/Inf, subnormal scales, amax at a power of
// two), properties every scheme must have on random data, and the block-scaled product against its MPFR definition.
#include <gtest/gtest.h>
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "support/dot_inputs.hpp"
#include "support/mpfr_oracle.hpp"

namespace lpsim {
namespace {

BlockQuantized one_row(const char* scheme, std::vector<double> x) {
  return quantize_blocks(block_scheme(scheme), x, 1, int(x.size()), 1);
}

TEST(BlockScale, ZeroBlockHasTheSmallestScaleAndZeroElements) {
  const BlockQuantized q = one_row("mxfp4", std::vector<double>(32, 0.0));
  EXPECT_EQ(q.scales[0], std::ldexp(1.0, -127));
  for (double e : q.elements) EXPECT_EQ(e, 0.0);
}

TEST(BlockScale, OneHugeElementSaturatesAndFlushesTheRest) {
  std::vector<double> x(32, 0.1);
  x[5] = 1000;  // floor(log2 1000) = 9, E2M1's emax = 2: scale 2^7; 1000 / 128 = 7.8 > 6 saturates; 0.1/128 -> 0
  const BlockQuantized q = one_row("mxfp4", x);
  EXPECT_EQ(q.scales[0], 128.0);
  EXPECT_EQ(q.elements[5], 6.0);
  EXPECT_EQ(q.elements[0], 0.0);
  EXPECT_EQ(q.saturated, 1);
  EXPECT_EQ(q.value(0, 5), 768.0);
  // The round-up rule picks 2^8 instead: 1000 / 256 = 3.9 rounds to 4, nothing saturates.
  const BlockQuantized c = one_row("mxfp4-ceil", x);
  EXPECT_EQ(c.scales[0], 256.0);
  EXPECT_EQ(c.elements[5], 4.0);
  EXPECT_EQ(c.saturated, 0);
}

TEST(BlockScale, AmaxAtAPowerOfTwoKeepsTheBlockExact) {
  std::vector<double> x(32, 0.0);
  x[0] = 4, x[1] = 1, x[2] = -3, x[3] = 0.5;  // E2M1 values; amax 4 = 2^2 = 2^emax: scale 1
  const BlockQuantized q = one_row("mxfp4", x);
  EXPECT_EQ(q.scales[0], 1.0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.elements[i], x[i]);
  const BlockQuantized e = one_row("mxfp8-e4m3", x);  // E4M3's emax is 8: scale 2^-6, elements x * 64
  EXPECT_EQ(e.scales[0], std::ldexp(1.0, -6));
  EXPECT_EQ(e.elements[0], 256.0);
}

TEST(BlockScale, NanOrInfMakesTheBlockNan) {
  for (double bad : {double(NAN), double(INFINITY)}) {
    std::vector<double> x(64, 1.0);
    x[40] = bad;  // second block only
    const BlockQuantized q = one_row("mxfp8-e5m2", x);
    EXPECT_FALSE(std::isnan(q.scales[0]));
    EXPECT_TRUE(std::isnan(q.scales[1]));
    EXPECT_TRUE(std::isnan(q.value(0, 33)));
    EXPECT_EQ(q.value(0, 0), 1.0);
  }
}

// Stochastic element rounding: the same scales as the RNE scheme; every element one of the two neighbours of
// x / scale in the element format (the enclosing pair from round-down and round-up); unbiased over many streams
// (a z-test at 5 sigma on the mean of each element); the same bits for the same stream.
TEST(BlockScale, StochasticSchemesRoundElementsToANeighbourWithoutBias) {
  for (const auto& [sr_name, rne_name] : {std::pair{"mxfp4-sr", "mxfp4"}, std::pair{"nvfp4-sr", "nvfp4"}}) {
    SCOPED_TRACE(sr_name);
    const BlockScheme s = block_scheme(sr_name), rne = block_scheme(rne_name);
    EXPECT_TRUE(s.stochastic);
    std::vector<double> x(64);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * double(i) + 0.1) * (1 + double(i % 7));
    const BlockQuantized ref = quantize_blocks(rne, x, 1, int(x.size()), 1);
    const int draws = 4000;
    std::vector<double> mean(x.size(), 0.0);
    for (int d = 0; d < draws; ++d) {
      const BlockQuantized q = quantize_blocks(s, x, 1, int(x.size()), 1, {7, std::uint64_t(d), 0});
      ASSERT_EQ(q.scales, ref.scales);
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double scaled = x[i] * ref.tensor_scale / ref.scales[ref.block_of(0, int(i))];  // exact: powers of two
        const double lo = round_to(scaled, s.element.spec, Rounding::downward),
                     hi = round_to(scaled, s.element.spec, Rounding::upward);
        const double e = q.elements[i];
        if (std::fabs(scaled) <= s.element.spec.max_finite()) {
          ASSERT_TRUE(e == lo || e == hi) << i << " " << scaled;
        }
        mean[i] += q.value(0, int(i)) / draws;
      }
    }
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double scaled = x[i] * ref.tensor_scale / ref.scales[ref.block_of(0, int(i))];
      if (std::fabs(scaled) > s.element.spec.max_finite()) continue;  // saturated: biased by definition
      const double lo = round_to(scaled, s.element.spec, Rounding::downward),
                   hi = round_to(scaled, s.element.spec, Rounding::upward);
      const double unit = ref.scales[ref.block_of(0, int(i))] / ref.tensor_scale;
      const double p = hi == lo ? 0 : (scaled - lo) / (hi - lo);
      const double sigma = (hi - lo) * unit * std::sqrt(p * (1 - p) / draws);
      EXPECT_NEAR(mean[i], x[i], 5 * sigma + 1e-12 * std::fabs(x[i])) << i;
    }
    const BlockQuantized a = quantize_blocks(s, x, 1, int(x.size()), 1, {3, 4, 0}),
                         b = quantize_blocks(s, x, 1, int(x.size()), 1, {3, 4, 0}),
                         c = quantize_blocks(s, x, 1, int(x.size()), 1, {3, 5, 0});
    EXPECT_EQ(a.elements, b.elements);
    EXPECT_NE(a.elements, c.elements);
  }
}

TEST(BlockScale, TinyBlocksClampTheScaleAtTwoToMinus127) {
  std::vector<double> x(32, 0.0);
  x[0] = std::ldexp(1.0, -130);  // floor(log2) - 8 = -138, clamped to -127: the element is 2^-3
  const BlockQuantized q = one_row("mxfp8-e4m3", x);
  EXPECT_EQ(q.scales[0], std::ldexp(1.0, -127));
  EXPECT_EQ(q.elements[0], 0.125);
  EXPECT_EQ(q.value(0, 0), x[0]);
}

TEST(BlockScale, DeepSeekAndNvfp4FollowTheirReferenceQuantisers) {
  std::vector<double> x(128, 0.0);
  x[0] = 2, x[1] = -1, x[2] = 0.3;
  const BlockQuantized d = one_row("fp8-1x128", x);  // enc = 448 / 2 = 224, scale = fp32(2 / 448)
  EXPECT_EQ(d.scales[0], double(float(2.0 / 448.0)));
  EXPECT_EQ(d.elements[0], 448.0);
  EXPECT_EQ(d.elements[1], -224.0);
  EXPECT_EQ(d.elements[2], round_to(double(float(0.3 * 224)), formats::e4m3, Rounding::nearest_even));  // 67.2 -> 64
  EXPECT_EQ(d.elements[2], 64.0);
  std::vector<double> y(16, 0.0);
  y[0] = 6, y[1] = 3, y[2] = 1.5, y[3] = -0.4;  // tensor amax 6: S = 2688/6 = 448, block scale e4m3(1 * 448) = 448
  const BlockQuantized n = one_row("nvfp4", y);
  EXPECT_EQ(n.tensor_scale, 448.0);
  EXPECT_EQ(n.scales[0], 448.0);
  EXPECT_EQ(n.elements[0], 6.0);
  EXPECT_EQ(n.elements[2], 1.5);
  EXPECT_EQ(n.elements[3], -0.5);  // -0.4 rounds to E2M1's -0.5
  EXPECT_EQ(n.value(0, 1), 3.0);
}

TEST(BlockScale, SquareBlocksShareOneScaleAcrossRows) {
  std::vector<double> w(256 * 3, 0.25);
  w[0] = 4;  // block (0, 0) of the 128 x 128 tiles: rows 0..127, columns 0..2
  const BlockQuantized q = quantize_blocks(block_scheme("fp8-128x128"), w, 256, 3, 0);
  EXPECT_EQ(q.block_rows, 2);
  EXPECT_EQ(q.block_cols, 1);
  EXPECT_EQ(q.scales[q.block_of(100, 2)], double(float(4.0 / 448.0)));
  EXPECT_EQ(q.scales[q.block_of(200, 2)], double(float(0.25 / 448.0)));
}

TEST(BlockScale, UnknownSchemesAreNamed) {
  try {
    block_scheme("mxfp5");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("block scaling scheme 'mxfp5' is unknown (known: mxfp8-e4m3"), std::string::npos);
  }
}

// On random data over many binades: every element is a value of the element format; the OCP scale puts amax in
// [2^emax, 2^(emax+1)) and the round-up scale in (max/2, max]; unsaturated elements are within half an element ulp.
TEST(BlockScale, EverySchemeQuantisesWithinItsDefinition) {
  std::mt19937_64 g(3);
  std::normal_distribution<double> n(0, 1);
  std::uniform_int_distribution<int> e(-20, 20);
  for (const BlockScheme& s : block_schemes()) {
    SCOPED_TRACE(s.name);
    const int rows = 5, cols = 300;
    std::vector<double> x(std::size_t(rows) * cols);
    for (double& v : x) v = std::ldexp(n(g), e(g));
    for (int axis : {0, 1}) {
      const int r = axis ? rows : cols, c = axis ? cols : rows;
      const BlockQuantized q = quantize_blocks(s, x, r, c, axis);
      const FormatSpec& f = s.element.spec;
      for (double v : q.elements) EXPECT_TRUE(representable(v, f)) << v;
      for (int i = 0; i < r; ++i)
        for (int j = 0; j < c; ++j) {
          const double scale = q.scales[q.block_of(i, j)] / q.tensor_scale, el = q.elements[std::size_t(i) * c + j];
          const double xs = x[std::size_t(i) * c + j] / scale;
          if (s.int_bits) continue;  // integer codes: IntegerGroupsTakeTheNearestPointOfTheirGrid
          if (std::fabs(xs) <= f.max_finite() && std::fabs(xs) >= f.min_normal()) {
            const double ulp = std::ldexp(1.0, std::ilogb(xs) - f.precision + 1);
            // fp32 steps add at most 2^-24; stochastic rounding goes to either neighbour, within one ulp
            EXPECT_LE(std::fabs(el - xs), (s.stochastic ? ulp : ulp / 2) * (1 + 1e-6)) << i << "," << j;
          }
        }
      for (std::size_t b = 0; b < q.scales.size(); ++b) {
        double amax = 0;
        for (int i = 0; i < r; ++i)
          for (int j = 0; j < c; ++j)
            if (q.block_of(i, j) == int(b)) amax = std::max(amax, std::fabs(x[std::size_t(i) * c + j]));
        const double ratio = amax / q.scales[b];
        if (s.rule == ScaleRule::pow2_floor) {
          EXPECT_GE(ratio, std::ldexp(1.0, f.emax));
          EXPECT_LT(ratio, std::ldexp(1.0, f.emax + 1));
        } else if (s.rule == ScaleRule::pow2_ceil || s.rule == ScaleRule::pow2_rceil) {
          EXPECT_LE(ratio, f.max_finite());
          EXPECT_GT(ratio, f.max_finite() / 2);
        }
      }
      // Only OCP's floor rule and NVFP4's rounded E4M3 block scale can leave elements beyond the largest.
      if (s.rule == ScaleRule::pow2_ceil || s.rule == ScaleRule::pow2_rceil || s.rule == ScaleRule::amax_fp32) {
        EXPECT_EQ(q.saturated, 0);
      }
    }
  }
}

// GPTQ/AWQ-style integer groups against enumeration: each group's scale is fp16((hi - lo) / (2^bits - 1)) with lo
// and hi its range widened to hold 0, the zero point an integer code, and every value the nearest of the group's
// 2^bits grid points (code - zero) scale (ties either way), found by trying them all.
TEST(BlockScale, IntegerGroupsTakeTheNearestPointOfTheirGrid) {
  std::mt19937_64 g(5);
  std::normal_distribution<double> n(0, 1);
  for (const char* name : {"int4-g128", "int4-g32", "int8-g128"}) {
    SCOPED_TRACE(name);
    const BlockScheme s = block_scheme(name);
    const int maxq = (1 << s.int_bits) - 1, k = 2 * s.block + 9, cols = 3;
    std::vector<double> w(std::size_t(k) * cols);
    for (std::size_t i = 0; i < w.size(); ++i)  // a shifted column: its groups' ranges hold no 0 of their own
      w[i] = double(float(i % cols == 2 ? 3 + n(g) * 0.1 : n(g) * 0.02));
    const BlockQuantized q = quantize_blocks(s, w, k, cols, 0);
    ASSERT_EQ(q.zeros.size(), q.scales.size());
    for (int c = 0; c < cols; ++c)
      for (int b0 = 0; b0 < k; b0 += s.block) {
        const int b1 = std::min(k, b0 + s.block), block = q.block_of(b0, c);
        double lo = 0, hi = 0;
        for (int r = b0; r < b1; ++r) lo = std::min(lo, w[std::size_t(r) * cols + c]), hi = std::max(hi, w[std::size_t(r) * cols + c]);
        const double scale = q.scales[block], zero = q.zeros[block];
        EXPECT_EQ(scale, round_to(double(float((hi - lo) / maxq)), formats::fp16, Rounding::nearest_even));
        EXPECT_EQ(zero, std::nearbyint(zero));
        EXPECT_GE(zero, 0);
        EXPECT_LE(zero, maxq);
        for (int r = b0; r < b1; ++r) {
          const double x = w[std::size_t(r) * cols + c], got = q.value(r, c);
          double best = INFINITY;
          bool on_grid = false;
          for (int code = 0; code <= maxq; ++code) {
            const double point = (code - zero) * scale;
            best = std::min(best, std::fabs(point - x));
            on_grid |= point == got;
          }
          EXPECT_TRUE(on_grid) << r << "," << c;
          EXPECT_LE(std::fabs(got - x), best * (1 + 1e-6) + 1e-300) << r << "," << c;
        }
      }
  }
}

// The fast block-scaled product against its MPFR definition, bit for bit, for every scheme, exact and fitted
// tensor-core accumulation, ragged last blocks, and adversarial inputs (cancellation, huge, tiny, NaN).
TEST(BlockScale, ScaledProductMatchesReference) {
  const int m = 3, n = 4;
  for (const BlockScheme& s : block_schemes()) {
    const int k = s.block * 2 + 7;
    std::vector<std::string> policies = {fmt::format("in={},acc=fp32", s.element.name),
                                         fmt::format("in={},acc=fp32,order=pairwise", s.element.name)};
    if (s.element.spec == formats::e4m3) policies.push_back("fp8e4m3-tc");
    for (const std::string& text : policies)
      for (test::DotInputs kind : {test::DotInputs::moderate, test::DotInputs::wide, test::DotInputs::adversarial}) {
        SCOPED_TRACE(s.name + " " + text + " " + std::to_string(int(kind)));
        AccumPolicy p = parse_policy(text);
        const std::vector<double> a = test::dot_operands(formats::bf16, std::size_t(m) * k, kind, 7),
                                  b = test::dot_operands(formats::bf16, std::size_t(k) * n, kind, 8);
        const BlockQuantized qa = quantize_blocks(s, a, m, k, 1), qb = quantize_blocks(s, b, k, n, 0);
        const std::vector<double> fast = block_scaled_gemm(p, qa, qb), ref = reference_block_scaled_gemm(p, qa, qb);
        for (std::size_t i = 0; i < fast.size(); ++i) EXPECT_TRUE(test::same_value(ref[i], fast[i])) << i << ": " << ref[i] << " vs " << fast[i];
      }
  }
}

// The kernels with the promotion fused (every tile edge: rows and columns beyond whole tiles, a ragged last block,
// DeepSeek's 1x128 by 128x128 scales) against the MPFR definition, on operands over the whole range.
TEST(BlockScale, FusedPromotionMatchesReferenceOnWholeTiles) {
  const int m = 37, n = 53;
  const std::pair<const char*, const char*> schemes[] = {
      {"mxfp8-e4m3", "mxfp8-e4m3"}, {"mxfp4", "mxfp4"}, {"nvfp4", "nvfp4"}, {"fp8-1x128", "fp8-128x128"}};
  for (const auto& [left, right] : schemes) {
    const BlockScheme sa = block_scheme(left), sb = block_scheme(right);
    const int k = sa.block * 2 + 7;
    std::vector<std::string> policies = {fmt::format("in={},acc=fp32", sa.element.name),
                                         fmt::format("in={},acc=fp32,nofma", sa.element.name),
                                         fmt::format("in={},acc=fp16", sa.element.name)};
    if (sa.element.spec == formats::e4m3) policies.insert(policies.end(), {"fp8e4m3-tc", "in=e4m3,acc=fp32,tc=16,tcbits=26,tcexp=operands"});
    for (const std::string& text : policies)
      for (test::DotInputs kind : {test::DotInputs::moderate, test::DotInputs::full_range}) {
        SCOPED_TRACE(std::string(left) + " " + text + " " + std::to_string(int(kind)));
        const AccumPolicy p = parse_policy(text);
        const std::vector<double> a = test::dot_operands(formats::bf16, std::size_t(m) * k, kind, 17),
                                  b = test::dot_operands(formats::bf16, std::size_t(k) * n, kind, 18);
        const BlockQuantized qa = quantize_blocks(sa, a, m, k, 1), qb = quantize_blocks(sb, b, k, n, 0);
        const std::vector<double> fast = block_scaled_gemm(p, qa, qb), ref = reference_block_scaled_gemm(p, qa, qb);
        int bad = 0;
        for (std::size_t i = 0; i < fast.size(); ++i)
          if (!test::same_value(ref[i], fast[i]) && bad++ < 3) ADD_FAILURE() << i << ": " << ref[i] << " vs " << fast[i];
        EXPECT_EQ(bad, 0);
      }
  }
}

// With one block and unit scales the block-scaled product is the policy's own product (rounded to fp32).
TEST(BlockScale, OneUnitBlockIsThePlainProduct) {
  const BlockScheme s = block_scheme("mxfp8-e4m3");
  std::vector<double> a(32), b(32);
  for (int i = 0; i < 32; ++i) a[i] = std::ldexp(1.0, 8) * (1 + (i % 7) / 8.0), b[i] = std::ldexp(1.0, 8) * (1 - (i % 5) / 8.0);
  const BlockQuantized qa = quantize_blocks(s, a, 1, 32, 1), qb = quantize_blocks(s, b, 32, 1, 0);
  ASSERT_EQ(qa.scales[0], 1.0);
  ASSERT_EQ(qb.scales[0], 1.0);
  const AccumPolicy p = parse_policy("in=e4m3,acc=fp32,out=fp32");
  std::vector<double> plain(1);
  gemm(p, 1, 1, 32, qa.elements, qb.elements, plain);
  EXPECT_EQ(block_scaled_gemm(p, qa, qb)[0], plain[0]);
}

}  // namespace
}  // namespace lpsim
