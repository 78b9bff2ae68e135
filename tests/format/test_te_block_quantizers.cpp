// NVFP4 and the MX round-up (RCEIL) scale against Transformer Engine's own definitions, restated here in plain fp32
// arithmetic with independent conversions: E4M3 by searching the table of its 127 finite values, E2M1 by the
// threshold list of TE's cast_to_fp4x2, E8M0's round-up by TE's float_to_e8m0 bit manipulation. Sources:
// transformer_engine/pytorch/custom_recipes/quantization_nvfp4.py (NVFP4QuantizerRef._quantize_blockwise_reference
// and qgemm) and transformer_engine/common/util/ptx.cuh (float_to_e8m0), NVIDIA/TransformerEngine on GitHub.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/accum/policy.hpp"
#include "lpsim/format/block_scale.hpp"
#include "support/e4m3_table.hpp"

namespace lpsim {
namespace {

// E4M3 by its table (v in [0, 448] after TE's clamp), as a float.
float e4m3_table(float v) { return float(test::e4m3_nearest(v)); }

// TE's cast_to_fp4x2 thresholds, as values (x already clamped to [-6, 6]).
float e2m1_thresholds(float x) {
  const float a = std::fabs(x);
  float v;
  if (a <= 0.25f) v = 0;
  else if (a < 0.75f) v = 0.5f;
  else if (a <= 1.25f) v = 1;
  else if (a < 1.75f) v = 1.5f;
  else if (a <= 2.5f) v = 2;
  else if (a < 3.5f) v = 3;
  else if (a <= 5.0f) v = 4;
  else v = 6;
  return std::copysign(v, x);
}

struct TeNvfp4 {
  float amax = 0, encode = 0;
  std::vector<float> scales, elements;
  std::vector<float> old_rule_elements;  // with lpsim's former multiplier fp32(S / s), to show the test's power
};

// NVFP4QuantizerRef with 1 x 16 tiles on one row-major matrix, blocks along rows.
TeNvfp4 te_nvfp4(const std::vector<float>& x, int rows, int cols) {
  TeNvfp4 t;
  for (float v : x) t.amax = std::max(t.amax, std::fabs(v));
  const float e4m3_max = 448.0f, e2m1_max = 6.0f;
  float S = std::min((e4m3_max * e2m1_max) / t.amax, FLT_MAX);
  if (S == 0.0f) S = 1.0f;
  t.encode = S;
  const float decode = 1.0f / S, multiplier = S * (1.0f / e2m1_max);
  t.elements.resize(x.size()), t.old_rule_elements.resize(x.size());
  for (int r = 0; r < rows; ++r)
    for (int b = 0; b < cols; b += 16) {
      float vmax = 0;
      for (int c = b; c < std::min(cols, b + 16); ++c) vmax = std::max(vmax, std::fabs(x[std::size_t(r) * cols + c]));
      const float sd = std::clamp(std::min(vmax * multiplier, FLT_MAX), -e4m3_max, e4m3_max);
      const float s = e4m3_table(sd);
      t.scales.push_back(s);
      const float enc = std::min(1.0f / (s * decode), FLT_MAX);
      const float old_enc = s == 0 ? 0.0f : S / s;
      for (int c = b; c < std::min(cols, b + 16); ++c) {
        const std::size_t i = std::size_t(r) * cols + c;
        t.elements[i] = e2m1_thresholds(std::clamp(x[i] * enc, -e2m1_max, e2m1_max));
        t.old_rule_elements[i] = e2m1_thresholds(std::clamp(x[i] * old_enc, -e2m1_max, e2m1_max));
      }
    }
  return t;
}

// Values with few significant bits (bf16-like, as activations are) over several binades: many land on E2M1's
// midpoints after scaling, where the two multipliers' last bit decides.
std::vector<float> test_tensor(int n, std::uint64_t seed, float scale) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x(n);
  for (float& v : x) {
    const float y = normal(g) * scale;
    v = std::bit_cast<float>(std::bit_cast<std::uint32_t>(y) & 0xffff0000u);  // bf16 by truncation
  }
  return x;
}

void expect_matches_te(const std::vector<float>& xf, int rows, int cols, long* old_rule_differences = nullptr) {
  const std::vector<double> x(xf.begin(), xf.end());
  const BlockQuantized q = quantize_blocks(block_scheme("nvfp4"), x, rows, cols, 1);
  const TeNvfp4 t = te_nvfp4(xf, rows, cols);
  EXPECT_EQ(q.tensor_scale, double(t.encode));
  EXPECT_EQ(q.tensor_amax, double(t.amax));
  ASSERT_EQ(q.scales.size(), t.scales.size());
  for (std::size_t b = 0; b < q.scales.size(); ++b) ASSERT_EQ(q.scales[b], double(t.scales[b])) << "block " << b;
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(q.elements[i], double(t.elements[i])) << i << ": x = " << x[i];
    ASSERT_FALSE(std::isnan(q.value(int(i) / cols, int(i) % cols)));
    if (old_rule_differences) *old_rule_differences += t.elements[i] != t.old_rule_elements[i];
  }
}

TEST(TransformerEngine, Nvfp4ElementsAndScalesMatchTheReferenceQuantiser) {
  long differences = 0;
  for (float scale : {1e-3f, 0.5f, 1.0f, 3.0f, 1e3f}) {
    SCOPED_TRACE(scale);
    expect_matches_te(test_tensor(64 * 96, 11, scale), 64, 96, &differences);
  }
  // Grids of quarter-integers: E2M1 midpoints before scaling.
  std::vector<float> q(32 * 32);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = float(int(i * 7919 % 49) - 24) * 0.25f;
  expect_matches_te(q, 32, 32, &differences);
  // The inputs include elements where the former multiplier fp32(S / s) rounds to another E2M1 value (ties):
  // without them this test could not tell the two rules apart.
  EXPECT_GT(differences, 0);
}

TEST(TransformerEngine, Nvfp4ZeroBlocksHugeElementsAndTinyTensors) {
  std::vector<float> x(64, 0.0f);
  x[20] = 3e4f;  // one huge element: block 1 scale 448, the others' elements flush to 0
  x[21] = 0.5f;
  expect_matches_te(x, 1, 64);
  expect_matches_te(std::vector<float>(32, 0.0f), 1, 32);  // a zero tensor: S = FLT_MAX, every element 0
  // amax below 2688 / FLT_MAX (about 7.9e-36): S = 2688 / amax would be infinite and the elements NaN; TE caps S at
  // FLT_MAX and so does lpsim. Every value stays finite.
  std::vector<float> tiny(32, 0.0f);
  tiny[0] = 1e-37f, tiny[1] = -4e-38f, tiny[17] = 2e-39f;
  expect_matches_te(tiny, 1, 32);
  const std::vector<double> td(tiny.begin(), tiny.end());
  const BlockQuantized q = quantize_blocks(block_scheme("nvfp4"), td, 1, 32, 1);
  EXPECT_EQ(q.tensor_scale, double(FLT_MAX));
  for (int c = 0; c < 32; ++c) EXPECT_TRUE(std::isfinite(q.value(0, c))) << c;
}

// TE's qgemm: per 16-block, fp32(outer(sx, sw) * partial) added in fp32, then alpha = fp32(fp32(A_x A_w) / 2688^2).
// With E2M1 elements and E4M3 scales every partial and product is exact in fp32, so the only roundings are the
// additions and the final scaling: the oracle below is the loop itself in fp32.
TEST(TransformerEngine, Nvfp4ProductAppliesTheAmaxFactor) {
  const int m = 5, n = 7, k = 64;
  const std::vector<float> af = test_tensor(m * k, 21, 2.0f), bf = test_tensor(n * k, 22, 0.05f);  // b as N x K
  const TeNvfp4 ta = te_nvfp4(af, m, k), tb = te_nvfp4(bf, n, k);
  // lpsim's B is K x N, quantised along its columns: the transpose of TE's N x K weight.
  std::vector<double> a(af.begin(), af.end()), b(std::size_t(k) * n);
  for (int j = 0; j < n; ++j)
    for (int t = 0; t < k; ++t) b[std::size_t(t) * n + j] = bf[std::size_t(j) * k + t];
  const BlockScheme s = block_scheme("nvfp4");
  const BlockQuantized qa = quantize_blocks(s, a, m, k, 1), qb = quantize_blocks(s, b, k, n, 0);
  const std::vector<double> c = block_scaled_gemm(parse_policy("in=e2m1,acc=fp32"), qa, qb);
  const float alpha = (ta.amax * tb.amax) / (6.0f * 6.0f * 448.0f * 448.0f);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float y = 0;
      for (int blk = 0; blk < k / 16; ++blk) {
        float partial = 0;
        for (int t = blk * 16; t < blk * 16 + 16; ++t)
          partial += ta.elements[std::size_t(i) * k + t] * tb.elements[std::size_t(j) * k + t];
        y += (ta.scales[std::size_t(i) * (k / 16) + blk] * tb.scales[std::size_t(j) * (k / 16) + blk]) * partial;
      }
      EXPECT_EQ(c[std::size_t(i) * n + j], double(alpha * y)) << i << "," << j;
    }
}

// TE's float_to_e8m0: the biased exponent of v rounded up (a nonzero mantissa adds one, except into 0xFF and for
// v <= 2^-127 held in exponent 0), 0 for v = 0.
int float_to_e8m0(float v) {
  if (v == 0.0f) return 0;
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(v);
  int exponent = int(bits >> 23);
  const std::uint32_t mantissa = bits & 0x7fffff;
  if (mantissa > 0 && exponent != 0xfe && !(exponent == 0 && mantissa <= 0x400000)) ++exponent;
  return exponent;
}

TEST(TransformerEngine, RceilScalesFollowFloatToE8m0) {
  for (const char* name : {"mxfp8-e4m3-rceil", "mxfp8-e5m2-rceil", "mxfp6-e2m3-rceil", "mxfp6-e3m2-rceil", "mxfp4-rceil"}) {
    SCOPED_TRACE(name);
    const BlockScheme s = block_scheme(name);
    const float rcp = 1.0f / float(s.element.spec.max_finite());
    long checked = 0;
    // amax over every 2^13-th fp32 pattern below FLT_MAX: subnormals, both ends of the range, every binade.
    for (std::uint64_t bits = 1; bits < 0x7f800000u; bits += 8191) {
      const float amax = std::bit_cast<float>(std::uint32_t(bits));
      std::vector<double> x(32, 0.0);
      x[3] = -double(amax);
      const BlockQuantized q = quantize_blocks(s, x, 1, 32, 1);
      const int e = float_to_e8m0(amax * rcp);
      ASSERT_EQ(q.scales[0], std::ldexp(1.0, e - 127)) << amax;
      ++checked;
    }
    EXPECT_GT(checked, 200000);
  }
}

}  // namespace
}  // namespace lpsim
