// Weight-only plans (W4A16, W8A16): the presets quantise the linear layers' weights only, plan files name their
// mistakes, and a linear layer under such a plan is, bit for bit, the base plan's linear layer on the weights
// quantised and dequantised by the scheme (the activations untouched).
#include <gtest/gtest.h>

#include <random>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "support/plan_error.hpp"
#include "lpsim/format/block_scale.hpp"

namespace lpsim {
namespace {

using test::plan_error;

TEST(WeightOnlyPlans, PresetsQuantiseTheLinearLayersWeightsOnly) {
  for (auto [preset, scheme] : {std::pair{"w4a16-int4-g128", "int4-g128"}, {"w4a16-mxfp4", "mxfp4"},
                                {"w4a16-nvfp4", "nvfp4"}, {"w8a16-fp8", "fp8-128x128"}}) {
    SCOPED_TRACE(preset);
    const PrecisionPlan p = plan_preset(preset);
    for (Op op : {Op::qkv, Op::out_proj, Op::ffn_up, Op::ffn_down}) {
      ASSERT_TRUE(p[op].weight_only) << op_name(op);
      EXPECT_EQ(p[op].weight_only->name, scheme);
      EXPECT_FALSE(p[op].blocks || p[op].scaling);  // activations as pure-bf16's
      EXPECT_TRUE(p[op].gemm->input.spec == formats::bf16);
    }
    for (Op op : {Op::embed, Op::score, Op::pv, Op::lm_head, Op::router}) EXPECT_FALSE(p[op].weight_only) << op_name(op);
    EXPECT_NE(describe(p).find("weights only: " + std::string(scheme)), std::string::npos);
  }
}

TEST(WeightOnlyPlans, MistakesNameTheKey) {
  EXPECT_NE(plan_error("[plan]\npreset = \"pure-bf16\"\n[plan.qkv]\nweight_only = \"int3\"\n").find("plan.qkv.weight_only"),
            std::string::npos);
  EXPECT_NE(plan_error("[plan]\npreset = \"pure-bf16\"\n[plan.score]\nweight_only = \"int4-g128\"\n").find("plan.score.weight_only"),
            std::string::npos);
  EXPECT_NE(plan_error("[plan]\npreset = \"mxfp4\"\n[plan.qkv]\nweight_only = \"int4-g128\"\n").find("plan.qkv.weight_only"),
            std::string::npos);
  const PrecisionPlan p = parse_plan("[plan]\npreset = \"pure-fp16\"\n[plan.ffn_down]\nweight_only = \"int4-g32\"\n", "p.toml");
  EXPECT_EQ(p[Op::ffn_down].weight_only->name, "int4-g32");
  EXPECT_FALSE(p[Op::ffn_up].weight_only);
  EXPECT_FALSE(parse_plan("[plan]\npreset = \"w4a16-mxfp4\"\n[plan.qkv]\nweight_only = \"none\"\n", "p.toml")[Op::qkv].weight_only);
}

TEST(WeightOnlyPlans, LinearIsTheBasePlansLinearOnTheDequantisedWeights) {
  std::mt19937_64 g(1);
  std::normal_distribution<double> n(0, 1);
  const int rows = 5, k = 300, cols = 7;
  Matrix<double> x(rows, k), w(k, cols);
  for (double& v : x.data) v = double(float(n(g)));
  for (double& v : w.data) v = double(float(0.05 * n(g)));
  const std::vector<double> bias(cols, 0.125);
  for (auto [preset, scheme] : {std::pair{"w4a16-int4-g128", "int4-g128"}, {"w4a16-mxfp4", "mxfp4"},
                                {"w4a16-nvfp4", "nvfp4"}, {"w8a16-fp8", "fp8-128x128"}}) {
    SCOPED_TRACE(preset);
    const BlockQuantized q = quantize_blocks(block_scheme(scheme), w.data, k, cols, 0);
    Matrix<double> dequantized(k, cols);
    for (int r = 0; r < k; ++r)
      for (int c = 0; c < cols; ++c) dequantized(r, c) = q.value(r, c);
    EmulatedBackend quantized(plan_preset(preset)), base(plan_preset("pure-bf16"));
    const Matrix<double> got = quantized.linear(Op::ffn_up, x, w, &bias);
    EXPECT_EQ(got.data, base.linear(Op::ffn_up, x, dequantized, &bias).data);
    EXPECT_NE(got.data, base.linear(Op::ffn_up, x, w, &bias).data);  // the quantisation shows
    // Layers without weight-only quantisation (the scores' product) are the base plan's.
    EXPECT_EQ(quantized.gemm(Op::score, x, w, nullptr).data, base.gemm(Op::score, x, w, nullptr).data);
  }
}

}  // namespace
}  // namespace lpsim
