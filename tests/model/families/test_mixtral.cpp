// Mixtral as a family description (src/model/families/mixtral.cpp) and the mixture-of-experts layer it brings:
// config.json onto the recipe, checkpoints one expert at a time and stacked as transformers 5 holds them, the layer
// in float64 against an independent oracle (Eigen), and router flips under bf16 found and measured.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/reference/route_compare.hpp"
#include "support/eigen_transformer.hpp"
#include "support/hf_config_dir.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

std::filesystem::path scratch(const std::string& name) { return test::scratch_dir("mixtral_" + name); }

const std::string config_json = R"({"model_type": "mixtral", "hidden_size": 64, "num_attention_heads": 4,
  "num_key_value_heads": 2, "intermediate_size": 80, "num_hidden_layers": 2, "vocab_size": 128,
  "num_local_experts": 4, "num_experts_per_tok": 2, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
  "sliding_window": null, "tie_word_embeddings": false, "max_position_embeddings": 64})";

ModelConfig toml_mixtral(int tokens = 12) {
  ModelConfig c = parse_model_config(R"([model]
arch = "mixtral"
width = 64
heads = 4
kv_heads = 2
ffn = 80
depth = 2
vocab = 128
experts = 4
experts_per_token = 2
)", "mixtral.toml");
  c.tokens = tokens;
  return c;
}

TEST(Mixtral, ConfigJsonAndCheckpointNamesRoundTrip) {
  const auto dir = scratch("dir");
  std::ofstream(dir / "config.json") << config_json;
  ModelConfig made = toml_mixtral(32);
  const Weights<double> w = make_weights(made, 3);
  save_safetensors_weights((dir / "model.safetensors").string(), made, w);
  const auto names = read_safetensors((dir / "model.safetensors").string());
  EXPECT_EQ(names.at("layers.1.block_sparse_moe.gate.weight").shape, (std::vector<std::int64_t>{4, 64}));
  EXPECT_EQ(names.at("layers.0.block_sparse_moe.experts.3.w1.weight").shape, (std::vector<std::int64_t>{80, 64}));
  EXPECT_EQ(names.at("layers.0.block_sparse_moe.experts.3.w2.weight").shape, (std::vector<std::int64_t>{64, 80}));
  EXPECT_FALSE(names.contains("layers.0.mlp.gate_proj.weight"));

  const ModelConfig c = load_model_config(dir.string());
  EXPECT_EQ(c.arch, "mixtral");
  EXPECT_EQ(c.experts, 4);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.expert_width(), 80);
  EXPECT_TRUE(c.router_renormalize);
  EXPECT_FALSE(c.router_weights_cast);
  const Weights<double> back = make_weights(c, 0);
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(back.layers[l].router.data, w.layers[l].router.data);
    ASSERT_EQ(back.layers[l].experts.size(), 4u);
    for (int e = 0; e < 4; ++e) {
      EXPECT_EQ(back.layers[l].experts[e].w1.data, w.layers[l].experts[e].w1.data);
      EXPECT_EQ(back.layers[l].experts[e].w3.data, w.layers[l].experts[e].w3.data);
      EXPECT_EQ(back.layers[l].experts[e].w2.data, w.layers[l].experts[e].w2.data);
    }
  }
}

// transformers 5 stacks the experts: gate_up_proj [E, 2f, width] (gate rows, then up), down_proj [E, width, f],
// the router as mlp.gate. The same weights written that way read back the same.
TEST(Mixtral, StackedExpertsReadAsOneByOne) {
  const auto dir = scratch("fused");
  std::ofstream(dir / "config.json") << config_json;
  ModelConfig made = toml_mixtral(32);
  const Weights<double> w = make_weights(made, 4);
  save_safetensors_weights((dir / "model.safetensors").string(), made, w);
  std::map<std::string, Tensor> t = read_safetensors((dir / "model.safetensors").string());
  const int E = 4, f = 80, d = 64;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    Tensor gate_up{"F32", {E, 2 * f, d}, std::vector<double>(std::size_t(E) * 2 * f * d)};
    Tensor down{"F32", {E, d, f}, std::vector<double>(std::size_t(E) * d * f)};
    for (int e = 0; e < E; ++e) {
      const std::string q = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
      const Tensor &w1 = t.at(q + "w1.weight"), &w3 = t.at(q + "w3.weight"), &w2 = t.at(q + "w2.weight");
      std::copy(w1.values.begin(), w1.values.end(), gate_up.values.begin() + std::size_t(e) * 2 * f * d);
      std::copy(w3.values.begin(), w3.values.end(), gate_up.values.begin() + std::size_t(e) * 2 * f * d + std::size_t(f) * d);
      std::copy(w2.values.begin(), w2.values.end(), down.values.begin() + std::size_t(e) * d * f);
      t.erase(q + "w1.weight"), t.erase(q + "w3.weight"), t.erase(q + "w2.weight");
    }
    t[p + "mlp.experts.gate_up_proj"] = gate_up, t[p + "mlp.experts.down_proj"] = down;
    t[p + "mlp.gate.weight"] = t.at(p + "block_sparse_moe.gate.weight");
    t.erase(p + "block_sparse_moe.gate.weight");
  }
  write_safetensors((dir / "model.safetensors").string(), t);
  const Weights<double> back = make_weights(load_model_config(dir.string()), 0);
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(back.layers[l].router.data, w.layers[l].router.data);
    for (int e = 0; e < E; ++e) {
      EXPECT_EQ(back.layers[l].experts[e].w1.data, w.layers[l].experts[e].w1.data);
      EXPECT_EQ(back.layers[l].experts[e].w3.data, w.layers[l].experts[e].w3.data);
      EXPECT_EQ(back.layers[l].experts[e].w2.data, w.layers[l].experts[e].w2.data);
    }
  }
}

TEST(Mixtral, ConfigFieldsAreCheckedByName) {
  const auto dir = scratch("bad");
  auto with = [&](const std::string& extra) { return test::config_error_with(dir, config_json, extra); };
  EXPECT_NE(with(R"("num_experts_per_tok": 5)").find("experts_per_token"), std::string::npos);
  EXPECT_NE(with(R"("hidden_act": "gelu")").find("'hidden_act'"), std::string::npos);
  EXPECT_EQ(with(R"("router_jitter_noise": 0.1)"), "");
}

TEST(Mixtral, TopExpertsTakeTheLowerIndexAmongEqualProbabilities) {
  const double p[] = {0.1, 0.3, 0.3, 0.2, 0.3};
  int chosen[3];
  layers::top_experts(p, 5, 3, chosen);
  EXPECT_EQ(chosen[0], 1);
  EXPECT_EQ(chosen[1], 2);
  EXPECT_EQ(chosen[2], 4);
}

// Layer 0's MoE branch in float64 against Eigen (tests/support/eigen_transformer.hpp): RMSNorm of the stream after
// attention, router logits, softmax, the two largest renormalised, and the sum of the weighted SwiGLU experts.
TEST(Mixtral, ExpertsBranchMatchesAnEigenOracle) {
  using test::to_eigen;
  const ModelConfig c = toml_mixtral();
  const Weights<double> w = make_weights(c, 5);
  const ModelInput<double> in = make_input(c, 6);
  EmulatedBackend be(plan_preset("fp64"));
  const Taps<double> taps = emulated_taps(be, c, w, in);
  ASSERT_EQ(taps.routes.size(), 2u);
  const auto& lw = w.layers[0];
  const test::Mat h = test::layer_norm(to_eigen(taps[1]), lw.norm2, c.norm_eps, true);
  const test::Mat p = test::softmax(h * to_eigen(lw.router), false);
  test::Mat want = test::Mat::Zero(h.rows(), c.width);
  auto silu = [](double x) { return test::activation(Activation::silu, x); };
  for (int t = 0; t < h.rows(); ++t) {
    std::vector<int> order(4);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p(t, a) > p(t, b); });
    const double z = p(t, order[0]) + p(t, order[1]);
    for (int r = 0; r < 2; ++r) {
      const auto& x = lw.experts[order[r]];
      const test::Vec g = h.row(t) * to_eigen(x.w1), u = h.row(t) * to_eigen(x.w3);
      const test::Vec a = g.unaryExpr(silu).cwiseProduct(u);
      want.row(t) += p(t, order[r]) / z * (a * to_eigen(x.w2));
      EXPECT_EQ(taps.routes[0].expert(t, r), order[r]);
    }
  }
  EXPECT_LT((to_eigen(taps[2]) - want).norm() / want.norm(), 1e-13);
}

// Experts 1 and 2 with router columns a hair apart (1e-4 relative, below bf16's spacing of 2^-8): bf16 logits order
// them by their rounding, not by their values, so the router often takes the other one of the two. Those tokens
// run another expert: their error is of the order of the output itself, the others' of bf16's rounding. fp32
// (spacing 2^-23) routes like the reference.
TEST(Mixtral, RouterFlipsUnderBf16AreFoundAndTheirTokensCarryTheError) {
  ModelConfig c = toml_mixtral(32);
  c.depth = 1;
  c.experts = 3;
  Weights<double> w = make_weights(c, 7);
  Matrix<double>& router = w.layers[0].router;
  for (int i = 0; i < c.width; ++i) {
    router(i, 0) = 0;  // a logit of exactly 0: first where experts 1 and 2 are negative, the choice between them second
    router(i, 2) = round_to(router(i, 1) * (1 + 1e-4 * ((i * 7919) % 13 - 6)), formats::fp32, Rounding::nearest_even);
  }
  StudyOptions o;
  o.reference = "fp64";
  o.check_reference = false;
  o.seed = 7;
  // A study (its own weights from the seed) carries the routing columns through the reference ladder.
  const std::vector<StudyResult> results = compare_plans(c, {plan_preset("autocast-bf16"), plan_preset("fp32")}, o);
  for (const StudyResult& r : results) {
    ASSERT_EQ(r.taps[2].tap, Tap::ffn);
    EXPECT_GE(r.taps[2].route_flip, 0.0);
    EXPECT_LE(r.taps[3].route_flip, 1.0);
    EXPECT_FALSE(std::isnan(r.taps[3].kept_rel_fro));
  }
  // The flips themselves on the weights above, through the taps.
  const ModelInput<double> in = make_input(c, 8);
  const Taps<double> ref = fp64_taps(c, w, in);
  for (const char* plan : {"autocast-bf16", "fp32"}) {
    EmulatedBackend be(plan_preset(plan));
    std::vector<RangeEvents> events;
    const Taps<double> got = emulated_taps(be, c, w, in, &events);
    const std::vector<TapError> rows = tap_errors(c, got, ref, events);
    const TapError& ffn = rows[2];
    ASSERT_EQ(ffn.tap, Tap::ffn);
    EXPECT_TRUE(std::isnan(rows[0].route_flip));  // attention rows carry no routing
    const RouteComparison cmp = compare_routes(got.routes[0], ref.routes[0]);
    EXPECT_EQ(ffn.route_flip, cmp.flip);
    if (std::string(plan) == "fp32") {
      EXPECT_EQ(ffn.route_flip, 0) << plan;
      EXPECT_TRUE(std::isnan(ffn.flipped_rel_fro));
      EXPECT_LT(ffn.route_weight_err, 1e-5);
      continue;
    }
    EXPECT_GT(ffn.route_flip, 0.1) << plan;
    EXPECT_LT(ffn.route_flip, 0.9) << plan;
    EXPECT_GT(ffn.flipped_rel_fro, 20 * ffn.kept_rel_fro) << plan;
    EXPECT_LT(ffn.kept_rel_fro, 0.05) << plan;
    // every flip swaps experts 1 and 2 behind expert 0
    for (int t = 0; t < c.tokens; ++t)
      if (cmp.flipped[t]) {
        EXPECT_EQ(got.routes[0].expert(t, 0), 0);
        EXPECT_EQ(got.routes[0].expert(t, 1) + ref.routes[0].expert(t, 1), 3);
      }
  }
}

// The references route alike: the double-double forward against MPFR at 256 bits, taps and routing.
TEST(Mixtral, DoubleDoubleReferenceAgreesWithMpfrOnTapsAndRoutes) {
  const ModelConfig c = toml_mixtral();
  const Weights<double> w = make_weights(c, 9);
  const ModelInput<double> in = make_input(c, 9);
  const Taps<DD> dd = dd_taps(c, w, in, 9);
  const Taps<Real> mp = reference_taps(256, c, w, in);
  set_reference_bits(128);
  ReferenceCheck check;
  compare_references(check, dd, mp);
  EXPECT_LT(check.fro_rel, 1e-27);
  ASSERT_EQ(dd.routes.size(), 2u);
  ASSERT_EQ(mp.routes.size(), 2u);
  for (int l = 0; l < 2; ++l) {
    const RouteComparison r = compare_routes(dd.routes[l], mp.routes[l]);
    EXPECT_EQ(r.flip, 0);
    EXPECT_EQ(r.reorder, 0);
    EXPECT_LT(r.weight_err, 1e-15);
  }
}

TEST(RouteCompare, CountsFlipsReordersAndWeightMoves) {
  Routing ref{0, 4, 2, {0, 1, 2, 3, 1, 0, 2, 3}, {0.6, 0.4, 0.5, 0.5, 0.7, 0.3, 0.9, 0.1}};
  Routing got{0, 4, 2, {0, 1, 3, 2, 1, 2, 2, 3}, {0.6, 0.4, 0.52, 0.48, 0.7, 0.3, 0.9, 0.1}};
  const RouteComparison c = compare_routes(got, ref);
  EXPECT_DOUBLE_EQ(c.flip, 0.25);     // token 2: {1, 2} against {0, 1}
  EXPECT_DOUBLE_EQ(c.reorder, 0.25);  // token 1: {3, 2} against {2, 3}
  EXPECT_NEAR(c.weight_err, 0.02, 1e-15);  // expert 3 of token 1: 0.52 against 0.5
  EXPECT_EQ(c.flipped, (std::vector<char>{0, 0, 1, 0}));
  got.k = 3;
  EXPECT_THROW(compare_routes(got, ref), std::invalid_argument);
}

}  // namespace
}  // namespace lpsim
