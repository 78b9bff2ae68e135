// W8A8 int8 (int8-rowwise, the w8a8-int8 preset) against vLLM's definitions restated in plain fp32 arithmetic:
// dynamic_scaled_int8_quant's scale = amax / 127.0f and codes float_to_int8_rn(x * (127.0f / amax)) (nearbyint,
// clamped to [-128, 127]); CUTLASS's scaled_mm epilogue D = s_a * (s_b * float(acc)) with acc the exact int32 sum.
// Sources: vllm/csrc/quantization/compressed_tensors/int8_quant_kernels.cu and
// vllm/csrc/quantization/cutlass_w8a8/c3x/scaled_mm_epilogues_c3x.hpp (ScaledEpilogue), on GitHub.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/accum/policy.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {
namespace {

struct Rowwise {
  std::vector<float> scales;
  std::vector<int> codes;  // row-major like the input
};

// One scale per line of `len` values, lines `count` apart by `stride` (rows: stride len; columns: stride 1).
Rowwise vllm_quant(const std::vector<float>& x, int lines, int len, bool along_rows) {
  Rowwise r;
  r.codes.resize(x.size());
  auto at = [&](int line, int t) { return along_rows ? std::size_t(line) * len + t : std::size_t(t) * lines + line; };
  for (int line = 0; line < lines; ++line) {
    float amax = 0;
    for (int t = 0; t < len; ++t) amax = std::max(amax, std::fabs(x[at(line, t)]));
    r.scales.push_back(amax / 127.0f);
    const float tmp = 127.0f / amax;
    for (int t = 0; t < len; ++t) {
      const float q = std::nearbyint(x[at(line, t)] * tmp);
      r.codes[at(line, t)] = int(std::clamp(q, -128.0f, 127.0f));
    }
  }
  return r;
}

std::vector<float> normal(int n, std::uint64_t seed, float scale) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0, scale);
  std::vector<float> x(n);
  for (float& v : x) v = d(g);
  return x;
}

TEST(Int8Rowwise, CodesAndScalesAreVllmsPerTokenAndPerChannel) {
  const int m = 7, k = 300, n = 9;
  const std::vector<float> a = normal(m * k, 1, 3.0f), b = normal(k * n, 2, 0.02f);
  const BlockScheme s = block_scheme("int8-rowwise");
  const BlockQuantized qa = quantize_blocks(s, std::vector<double>(a.begin(), a.end()), m, k, 1);
  const BlockQuantized qb = quantize_blocks(s, std::vector<double>(b.begin(), b.end()), k, n, 0);
  const Rowwise ra = vllm_quant(a, m, k, true), rb = vllm_quant(b, n, k, false);
  ASSERT_EQ(qa.scales.size(), std::size_t(m));
  ASSERT_EQ(qb.scales.size(), std::size_t(n));
  for (int i = 0; i < m; ++i) EXPECT_EQ(qa.scales[i], double(ra.scales[i])) << i;
  for (int j = 0; j < n; ++j) EXPECT_EQ(qb.scales[j], double(rb.scales[j])) << j;
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(qa.elements[i], double(ra.codes[i])) << i;
  for (std::size_t i = 0; i < b.size(); ++i) ASSERT_EQ(qb.elements[i], double(rb.codes[i])) << i;
  // Hand-computed: amax 127 gives the scale 1 and the codes the rounded values; ties to even (2.5 -> 2, 3.5 -> 4).
  const BlockQuantized h = quantize_blocks(s, std::vector<double>{127, 2.5, 3.5, -0.5, 0}, 1, 5, 1);
  EXPECT_EQ(h.scales[0], 1.0);
  EXPECT_EQ(h.elements, (std::vector<double>{127, 2, 4, -0.0, 0}));
  // A zero row: codes 0 (vLLM would divide by zero; lpsim takes the scale 1), its values 0.
  const BlockQuantized z = quantize_blocks(s, std::vector<double>(4, 0.0), 1, 4, 1);
  EXPECT_EQ(z.value(0, 2), 0.0);
}

TEST(Int8Rowwise, ProductIsTheScaledMmEpilogueOfTheExactSum) {
  const int m = 7, k = 300, n = 9;
  const std::vector<float> a = normal(m * k, 3, 3.0f), b = normal(k * n, 4, 0.02f);
  const BlockScheme s = block_scheme("int8-rowwise");
  const BlockQuantized qa = quantize_blocks(s, std::vector<double>(a.begin(), a.end()), m, k, 1);
  const BlockQuantized qb = quantize_blocks(s, std::vector<double>(b.begin(), b.end()), k, n, 0);
  const Rowwise ra = vllm_quant(a, m, k, true), rb = vllm_quant(b, n, k, false);
  const AccumPolicy p = parse_policy("in=fp16,acc=fp64");
  const std::vector<double> fast = block_scaled_gemm(p, qa, qb), ref = reference_block_scaled_gemm(p, qa, qb);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      std::int64_t acc = 0;
      for (int t = 0; t < k; ++t) acc += std::int64_t(ra.codes[std::size_t(i) * k + t]) * rb.codes[std::size_t(t) * n + j];
      const float d = ra.scales[i] * (rb.scales[j] * float(acc));
      EXPECT_EQ(fast[std::size_t(i) * n + j], double(d)) << i << "," << j;
      EXPECT_EQ(ref[std::size_t(i) * n + j], double(d)) << i << "," << j;
    }
  // An int8-rowwise operand with another scheme's is refused.
  const BlockQuantized mx = quantize_blocks(block_scheme("mxfp8-e4m3"), std::vector<double>(b.begin(), b.end()), k, n, 0);
  EXPECT_THROW(block_scaled_gemm(parse_policy("in=fp16,acc=fp64"), qa, mx), std::invalid_argument);
}

TEST(Int8Rowwise, PresetRunsTheLinearLayersAsW8a8) {
  const PrecisionPlan plan = plan_preset("w8a8-int8");
  for (Op op : {Op::qkv, Op::out_proj, Op::ffn_up, Op::ffn_down}) EXPECT_EQ(plan[op].blocks->name, "int8-rowwise");
  for (Op op : {Op::embed, Op::lm_head, Op::router, Op::score, Op::pv}) EXPECT_FALSE(plan[op].blocks.has_value());
  const int m = 5, k = 96, n = 11;
  const std::vector<float> xf = normal(m * k, 5, 1.0f), wf = normal(k * n, 6, 0.05f);
  Matrix<double> x(m, k), w(k, n);
  for (int i = 0; i < m * k; ++i) x.data[i] = round_to(xf[i], formats::bf16, Rounding::nearest_even);
  for (int i = 0; i < k * n; ++i) w.data[i] = round_to(wf[i], formats::bf16, Rounding::nearest_even);
  std::vector<float> xb(x.data.begin(), x.data.end()), wb(w.data.begin(), w.data.end());
  const Rowwise rx = vllm_quant(xb, m, k, true), rw = vllm_quant(wb, n, k, false);
  EmulatedBackend be(plan);
  const Matrix<double> got = be.linear(Op::ffn_up, x, w, nullptr);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      std::int64_t acc = 0;
      for (int t = 0; t < k; ++t) acc += std::int64_t(rx.codes[std::size_t(i) * k + t]) * rw.codes[std::size_t(t) * n + j];
      const float d = rx.scales[i] * (rw.scales[j] * float(acc));
      EXPECT_EQ(got(i, j), round_to(d, formats::bf16, Rounding::nearest_even)) << i << "," << j;
    }
}

}  // namespace
}  // namespace lpsim
