// Block-scaled plans: the presets say what they scale, plan files name their mistakes, and a linear layer under a
// block plan is the block-scaled product of its operands quantised as the plan says (activations 1 x block along k,
// DeepSeek's weights 128 x 128), rounded to the class's storage.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "support/plan_error.hpp"

namespace lpsim {
namespace {

using test::plan_error;

TEST(BlockPlans, PresetsScaleTheLinearLayersOnly) {
  const PrecisionPlan d = plan_preset("fp8-deepseek");
  for (Op op : {Op::qkv, Op::out_proj, Op::ffn_up, Op::ffn_down}) {
    ASSERT_TRUE(d[op].blocks) << op_name(op);
    EXPECT_EQ(d[op].blocks->name, "fp8-1x128");
    EXPECT_EQ(d[op].weight_blocks->name, "fp8-128x128");
    EXPECT_EQ(d[op].gemm->tc.k, 32);  // Hopper's fitted fp8 tensor core inside each 128-block
  }
  for (Op op : {Op::embed, Op::score, Op::pv, Op::lm_head}) EXPECT_FALSE(d[op].blocks) << op_name(op);
  EXPECT_EQ(plan_preset("mxfp4")[Op::ffn_up].blocks->name, "mxfp4");
  EXPECT_EQ(plan_preset("nvfp4")[Op::qkv].blocks->name, "nvfp4");
  EXPECT_FALSE(plan_preset("mxfp8")[Op::qkv].scaling);  // not per-tensor as well
}

TEST(BlockPlans, MistakesNameTheKey) {
  EXPECT_NE(plan_error("[plan]\n[plan.qkv]\nscaling = \"mxfp5\"\n").find("plan.qkv.scaling' = 'mxfp5' is neither tensor"),
            std::string::npos);
  EXPECT_NE(plan_error("[plan]\n[plan.qkv]\nweight_scaling = \"mxfp4\"\n").find("plan.qkv.weight_scaling' needs scaling"),
            std::string::npos);
  EXPECT_NE(plan_error("[plan]\n[plan.qkv]\npolicy = \"in=e2m1,acc=fp32\"\nscaling = \"mxfp8-e4m3\"\n")
                .find("in = e2m1 cannot hold the e4m3 elements of scheme mxfp8-e4m3"),
            std::string::npos);
  EXPECT_NE(plan_error("[plan]\n[plan.qkv]\npolicy = \"in=e4m3,acc=fp32\"\nscaling = \"mxfp8-e4m3\"\n"
                     "weight_scaling = \"fp8-128x128\"\n").find("blocks of 128 along k differ from the activations' 32"),
            std::string::npos);
  const PrecisionPlan p = parse_plan("[plan]\npreset = \"autocast-bf16\"\n[plan.ffn_up]\npolicy = \"in=e2m1,acc=fp32\"\n"
                                     "scaling = \"nvfp4\"\n", "p.toml");
  EXPECT_EQ(p[Op::ffn_up].blocks->name, "nvfp4");
}

TEST(BlockPlans, LinearLayerIsTheBlockScaledProductOfItsOperands) {
  std::mt19937_64 g(5);
  std::normal_distribution<double> n(0, 1);
  const int m = 6, k = 300, cols = 5;
  Matrix<double> x(m, k), w(k, cols);
  for (double& v : x.data) v = double(float(n(g) * 3));
  for (double& v : w.data) v = double(float(n(g) * 0.02));
  for (const char* preset : {"fp8-deepseek", "mxfp8", "nvfp4"}) {
    SCOPED_TRACE(preset);
    const PrecisionPlan plan = plan_preset(preset);
    EmulatedBackend be(plan);
    const Matrix<double> got = be.linear(Op::ffn_up, x, w, nullptr);
    const OpPrecision& p = plan[Op::ffn_up];
    const BlockQuantized qx = quantize_blocks(*p.blocks, x.data, m, k, 1);
    const BlockQuantized qw = quantize_blocks(p.weight_blocks ? *p.weight_blocks : *p.blocks, w.data, k, cols, 0);
    const std::vector<double> c = reference_block_scaled_gemm(*p.gemm, qx, qw);
    for (std::size_t i = 0; i < c.size(); ++i)
      EXPECT_EQ(got.data[i], round_to(c[i], p.out.spec, Rounding::nearest_even)) << i;
  }
}

// An elementwise class's storage block-scaled along rows (out_scaling = "<scheme>", the fp8study's block logits).
TEST(BlockPlans, StoredTensorsCanBeBlockScaledAlongRows) {
  const PrecisionPlan p = parse_plan("[plan]\npreset = \"autocast-bf16\"\n[plan.scale]\nout_scaling = \"mxfp8-e4m3\"\n", "p.toml");
  ASSERT_EQ(p[Op::scale].out_scaling, OutputScaling::blocks);
  EXPECT_EQ(p[Op::scale].out.name, "e4m3");
  Matrix<double> m(3, 40);
  for (std::size_t i = 0; i < m.size(); ++i) m.data[i] = std::ldexp(1.0 + double(i % 7) / 8, int(i % 13) - 6) * (i % 2 ? -1 : 1);
  const BlockQuantized q = quantize_blocks(block_scheme("mxfp8-e4m3"), m.data, 3, 40, 1);
  EmulatedBackend be(p);
  Matrix<double> stored = m;
  be.store(Op::scale, stored);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 40; ++j) {
      EXPECT_EQ(stored(i, j), q.value(i, j));
      EXPECT_NEAR(stored(i, j), m(i, j), std::fabs(m(i, j)) * 0.07 + q.scales[q.block_of(i, j)] * 0x1p-9);
    }
  EXPECT_EQ(be.events().saturations, q.saturated);
}

}  // namespace
}  // namespace lpsim
