// The forward errors the issue promises, on the shipped Tiny-ViT config against one MPFR reference: fp64 at the
// double-precision level, fp32 near 1e-7, fp16/bf16 plans between the unit roundoff and a few hundred unit
// roundoffs. And the reference itself: converged at 128 bits, and a float64 reference adequate for fp16 but not
// for fp64 plans.
#include <gtest/gtest.h>

#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim {
namespace {

class TinyVit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cfg_ = new ModelConfig(load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny-vit.toml"));
    w_ = new Weights<double>(make_weights(*cfg_, 0));
    in_ = new ModelInput<double>(make_input(*cfg_, 0));
    ref_ = new Taps<Real>(reference_taps(128, *cfg_, *w_, *in_));
  }
  static void TearDownTestSuite() { delete cfg_, delete w_, delete in_, delete ref_; }

  // rel_fro at every tap, in units of u.
  static std::vector<double> errors_in_u(const std::string& plan_name, double u) {
    EmulatedBackend be(plan_preset(plan_name));
    const Taps<double> taps = emulated_taps(be, *cfg_, *w_, *in_);
    std::vector<double> e;
    for (std::size_t t = 0; t < taps.size(); ++t) e.push_back(compare_tap(taps[t], (*ref_)[t]).rel_fro / u);
    return e;
  }

  static ModelConfig* cfg_;
  static Weights<double>* w_;
  static ModelInput<double>* in_;
  static Taps<Real>* ref_;
};
ModelConfig* TinyVit::cfg_;
Weights<double>* TinyVit::w_;
ModelInput<double>* TinyVit::in_;
Taps<Real>* TinyVit::ref_;

TEST_F(TinyVit, ErrorsSitBetweenOneAndAFewHundredUnitRoundoffs) {
  const struct {
    const char* plan;
    double u;
  } cases[] = {{"fp64", 0x1p-53}, {"fp32", 0x1p-24}, {"autocast-fp16", 0x1p-11}, {"autocast-bf16", 0x1p-8},
               {"pure-fp16", 0x1p-11},  {"pure-bf16", 0x1p-8}};
  for (const auto& c : cases) {
    const std::vector<double> e = errors_in_u(c.plan, c.u);
    for (std::size_t t = 0; t < e.size(); ++t) {
      EXPECT_GT(e[t], 0.1) << c.plan << " tap " << t;  // a plan that forgot to round would be far below
      EXPECT_LT(e[t], 300) << c.plan << " tap " << t;
    }
  }
}

TEST(Reference, ConvergesAndFloat64IsAdequateOnlyForLowPrecision) {
  ModelConfig c;
  c.width = 32, c.heads = 2, c.ffn = 64, c.depth = 3, c.tokens = 9;
  StudyOptions o;
  const StudyResult mpfr = run_study(c, plan_preset("fp64"), o);
  EXPECT_EQ(mpfr.reference.bits, 128);
  EXPECT_GE(mpfr.reference.check_bits, 256);
  EXPECT_LT(mpfr.reference.max_rel, 1e-30);
  EXPECT_TRUE(mpfr.reference.adequate);
  o.reference = "fp64";
  const StudyResult low = run_study(c, plan_preset("autocast-bf16"), o);
  EXPECT_TRUE(low.reference.adequate);
  EXPECT_LT(low.reference.fro_rel, 1e-14);
  const StudyResult high = run_study(c, plan_preset("fp64"), o);
  EXPECT_FALSE(high.reference.adequate);  // double cannot measure double's own errors
  // fp64 reference vs MPFR reference on the low-precision run: the same errors to many digits.
  StudyOptions m;
  const StudyResult low_mpfr = run_study(c, plan_preset("autocast-bf16"), m);
  for (std::size_t t = 0; t < low.taps.size(); ++t)
    EXPECT_NEAR(low.taps[t].rel_fro / low_mpfr.taps[t].rel_fro, 1.0, 1e-9);
}

}  // namespace
}  // namespace lpsim
