// `lpsim compare` runs several plans against one reference: each plan's taps, events and reference check must be
// what a study of that plan alone gives (run_study computes its own reference), for every reference kind.
#include <gtest/gtest.h>

#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim {
namespace {

TEST(ComparePlans, EachPlanAsItsOwnStudyGivesIt) {
  const ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/llama-tiny.toml");
  const std::vector<PrecisionPlan> plans = {plan_preset("autocast-bf16"), plan_preset("fp8-e4m3"), plan_preset("nvfp4")};
  for (const std::string reference : {"mpfr", "dd", "fp64"}) {
    StudyOptions o;
    o.reference = reference, o.seed = 3;
    o.check_reference = reference == "dd";  // the MPFR checks take most of the time and are plan-independent
    const std::vector<StudyResult> together = compare_plans(cfg, plans, o);
    ASSERT_EQ(together.size(), plans.size());
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const StudyResult alone = run_study(cfg, plans[i], o);
      ASSERT_EQ(together[i].taps.size(), alone.taps.size());
      for (std::size_t t = 0; t < alone.taps.size(); ++t) {
        EXPECT_EQ(together[i].taps[t].rel_fro, alone.taps[t].rel_fro) << reference << " " << plans[i].name << " tap " << t;
        EXPECT_EQ(together[i].taps[t].overflows, alone.taps[t].overflows);
        if (alone.taps[t].tap == Tap::logits)  // nan on every other row
          EXPECT_EQ(together[i].taps[t].kl_mean, alone.taps[t].kl_mean) << reference << " " << plans[i].name;
      }
      EXPECT_EQ(together[i].reference.fro_rel, alone.reference.fro_rel) << reference;
      EXPECT_EQ(together[i].reference.adequate, alone.reference.adequate) << reference;
    }
    // And the plans differ from each other (a table of one plan repeated would pass the loop above).
    EXPECT_NE(together[0].taps.back().rel_fro, together[1].taps.back().rel_fro);
  }
}

}  // namespace
}  // namespace lpsim
