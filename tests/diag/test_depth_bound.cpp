// arXiv 2503.10251's depth bound (diag/depth_bound.hpp) on real forwards: block 0's local error, computed by a one-block
// model on the stored exact input, must equal the whole forward's block-0 error (two independent paths through the
// code); the first-order bound must hold at every depth, for small and for large residual gains; post-LN is refused.
#include <gtest/gtest.h>

#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/depth_bound.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

ModelConfig tiny(double init_scale, int depth) {
  ModelConfig c = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml");
  c.init.scale = init_scale, c.depth = depth;
  return c;
}

TEST(DepthBound, HoldsAtEveryDepthAndBlockZeroMatchesTheWholeForward) {
  for (double scale : {0.3, 1.0})
    for (const char* plan : {"autocast-bf16", "pure-fp16"}) {
      const ModelConfig c = tiny(scale, 4);
      const auto rows = depth_bound(c, load_plan(plan), make_weights(c, 2), make_input(c, 2, 0));
      ASSERT_EQ(rows.size(), 4u);
      EXPECT_DOUBLE_EQ(rows[0].observed, rows[0].local) << plan;
      for (const DepthBoundRow& r : rows) {
        EXPECT_TRUE(r.held) << plan << " scale " << scale << " layer " << r.layer << ": " << r.observed << " > " << r.bound;
        EXPECT_GE(r.alpha, 1.0);
        EXPECT_GE(r.uniform, r.bound);
        EXPECT_GT(r.local, 0.0);
      }
    }
}

// With an embedding (a token embedding plus learned positions, rounded by the plan) the observed error includes the
// embedding's own rounding; the recursion carries it, so layer 0 holds (issue 19: it was reported violated).
TEST(DepthBound, CarriesTheEmbeddingsError) {
  ModelConfig c = tiny(1.0, 3);
  c.embedding = Embedding::tokens, c.vocab = 50;
  const auto rows = depth_bound(c, load_plan("pure-fp16"), make_weights(c, 4), make_input(c, 4, 0));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_GT(rows[0].embedding, 1e-5);  // fp16 rounding of the embedded stream
  for (const DepthBoundRow& r : rows) EXPECT_TRUE(r.held) << "layer " << r.layer << ": " << r.observed << " > " << r.bound;
}

TEST(DepthBound, RefusesPostLn) {
  ModelConfig c = tiny(1.0, 2);
  c.position = NormPosition::post;
  EXPECT_THROW(depth_bound(c, load_plan("autocast-bf16"), make_weights(c, 0), make_input(c, 0, 0)), ConfigError);
}

}  // namespace
}  // namespace lpsim
