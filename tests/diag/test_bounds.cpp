// The local bound checks measure what they claim: with an all-fp64 plan the local errors sit at the double
// level (the exact and emulated sides see the same stored inputs), low-precision plans show errors of the
// order of their eps_mach, and the eps-dominated regime is recognised.
#include <gtest/gtest.h>

#include "lpsim/diag/bounds.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

ModelConfig small() {
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 32, c.depth = 2, c.tokens = 12, c.init.bias_std = 0.1;
  return c;
}

TEST(Bounds, Fp64PlanIsExactToDoubleLevel) {
  const ModelConfig c = small();
  const BoundsReport r = check_local_bounds(c, plan_preset("fp64"), make_weights(c, 1), make_input(c, 1));
  ASSERT_EQ(r.attention.size(), 4u);
  ASSERT_EQ(r.norms.size(), 4u);
  for (const auto& b : r.attention) EXPECT_LT(b.observed, 1e-14);
  for (const auto& b : r.norms) EXPECT_LT(b.observed, 1e-14);
}

TEST(Bounds, LowPrecisionErrorsAreOfTheOrderOfEpsMach) {
  const ModelConfig c = small();
  const BoundsReport r = check_local_bounds(c, plan_preset("pure-bf16"), make_weights(c, 2), make_input(c, 2));
  for (const auto& b : r.attention) {
    EXPECT_DOUBLE_EQ(b.eps_mach, 0x1p-7);
    EXPECT_GT(b.observed, 0.01 * b.eps_mach);  // scores and probabilities are stored in bf16
    EXPECT_LT(b.observed, 100 * b.eps_mach);
    EXPECT_NEAR(b.c_min, b.observed / b.bound, 1e-15 * b.c_min);
    EXPECT_GT(b.kappa_v, 1.0);
  }
  for (const auto& b : r.norms) {
    EXPECT_DOUBLE_EQ(b.eps_mach, 0x1p-7);       // the input convention: the plan's GEMM input format
    EXPECT_DOUBLE_EQ(b.eps_mach_acc, 0x1p-23);  // LayerNorm computes in fp32 (the output is then stored in bf16,
    EXPECT_GT(b.observed, 0.01 * 0x1p-8);       // which dominates the observed error)
    EXPECT_DOUBLE_EQ(b.bound_acc, b.bound * 0x1p-16);
  }
}

// One regime rule, the input convention: a norm whose sigma^2 / eps is 6e4 (Tiny-ViT's layer 0) is not
// eps-dominated under autocast-bf16 (rho_LN = 6e4 * d * 2^-7), although the fp32 compute's eps_mach would make
// rho_LN < 1 at width 16 and label it so (what `bounds` printed before).
TEST(Bounds, RegimeLabelUsesTheInputConvention) {
  ModelConfig c = small();
  c.norm_eps = 1e-5;
  c.input.scale = 0.78;  // sigma^2 ~ 0.6: sigma^2 / eps ~ 6e4
  const BoundsReport r = check_local_bounds(c, plan_preset("autocast-bf16"), make_weights(c, 3), make_input(c, 3));
  const NormBound& b = r.norms.front();
  EXPECT_GT(b.sigma2 / 1e-5, 3e4);
  EXPECT_LT(b.sigma2 / 1e-5 * c.width * b.eps_mach_acc, 1.0);  // the accumulator convention would say dominated
  EXPECT_FALSE(b.dominated);
  EXPECT_GT(b.rho_ln, 1.0);
}

TEST(Bounds, RecognisesTheEpsDominatedRegime) {
  ModelConfig c = small();
  c.norm_eps = 1.0;
  c.input.scale = 1e-3;  // sigma^2 ~ 1e-6 << eps
  const BoundsReport r = check_local_bounds(c, plan_preset("autocast-fp16"), make_weights(c, 3), make_input(c, 3));
  EXPECT_TRUE(r.norms.front().dominated);
  EXPECT_LT(r.norms.front().rho_ln, 1e-3);
  EXPECT_NEAR(r.norms.front().sigma2, 1e-6, 5e-7);
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// The worst-case forms, whose constants come from the plan alone (accum/error_bound.hpp and the normalisation's
// steps), must hold on every head and norm, for LayerNorm and RMSNorm, in the eps-dominated regime too, under
// every plan family; a derivation that forgot a rounding (the output's storage, the eps add) fails here.
TEST(Bounds, WorstCaseConstantsFromThePlanHoldEverywhere) {
  int checked = 0;
  for (NormKind norm : {NormKind::layernorm, NormKind::rmsnorm})
    for (double input_scale : {1.0, 1e-3})  // 1e-3: sigma^2 ~ 1e-6 << eps, the eps-dominated regime
      for (const char* plan : {"autocast-fp16", "autocast-bf16", "pure-bf16", "pure-fp16", "fp8-e4m3", "fp32"}) {
        ModelConfig c = small();
        c.norm = norm, c.input.scale = input_scale;
        const BoundsReport r = check_local_bounds(c, plan_preset(plan), make_weights(c, 3), make_input(c, 3));
        for (const auto& b : r.attention) {
          EXPECT_TRUE(b.held_wc) << plan << " layer " << b.layer << " head " << b.head << ": " << b.observed << " > " << b.bound_wc;
          ++checked;
        }
        for (const auto& b : r.norms) {
          EXPECT_TRUE(b.held_wc) << plan << " norm " << b.layer << "." << b.which << " scale " << input_scale << ": "
                                 << b.observed << " > " << b.bound_wc;
          ++checked;
        }
      }
  EXPECT_EQ(checked, 2 * 2 * 6 * 8);
}

}  // namespace
}  // namespace lpsim
