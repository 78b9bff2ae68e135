// The KV cache (plan.hpp, KvCache; emulation/kv_cache_store.hpp): the cache's conversion against an independent
// E4M3 oracle (nearest value of the format's table, ties to the even code) on every bf16 value in range, hand-computed
// scales and saturations, NVFP4's per-tensor scale over the layer's heads, the insertion point in the forward
// against an Eigen oracle (keys after QK-norm and rotation, values, nothing else), and the plan's fields refused by
// name.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/emulation/kv_cache_store.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "support/e4m3_table.hpp"
#include "support/eigen_transformer.hpp"

namespace lpsim {
namespace {

KvCache fp8_cache(KvCache::Scale scale, double fixed = 1) {
  KvCache c;
  c.format = parse_format("e4m3");
  c.scale = scale;
  c.fixed_scale = fixed;
  return c;
}

const auto identity = [](double v) { return v; };

TEST(KvCache, Fp8ElementsAreTheNearestE4m3OnEveryBf16Value) {
  // Scale 1: every bf16 value of magnitude below 512 (all of E4M3's range and beyond its largest), both signs.
  std::vector<double> x;
  for (std::uint32_t bits = 0; bits < 0x8000; ++bits) {
    const float f = std::bit_cast<float>(bits << 16);
    if (std::fabs(f) < 512) x.push_back(f), x.push_back(-f);
  }
  std::vector<Matrix<double>> heads{Matrix<double>(1, int(x.size()))};
  heads[0].data.assign(x.begin(), x.end());
  const long saturated = kv_cache_roundtrip(fp8_cache(KvCache::Scale::fixed), heads, identity);
  long expect_saturated = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(heads[0].data[i], test::e4m3_nearest(x[i])) << x[i];
    expect_saturated += std::fabs(x[i]) >= 464;  // where RNE would pass 448 (half its ulp of 32 above)
  }
  EXPECT_EQ(saturated, expect_saturated);
  EXPECT_GT(saturated, 0);
}

TEST(KvCache, ScalesPerLayerOrPerHeadAndSpecialValues) {
  // Two heads: amax 896 and 8. Per layer: s = 896 / 448 = 2 for both; per head: 2 and 8 / 448.
  std::vector<Matrix<double>> layer{Matrix<double>(1, 3), Matrix<double>(1, 3)};
  layer[0].data = {896, 3.3, -0.01};
  layer[1].data = {8, 0.3, 0};
  auto per_head = layer;
  kv_cache_roundtrip(fp8_cache(KvCache::Scale::tensor), layer, identity);
  EXPECT_EQ(layer[0].data[0], 896.0);
  EXPECT_EQ(layer[0].data[1], 3.25);        // 3.3 / 2 = 1.65 -> 1.625
  EXPECT_EQ(layer[1].data[1], 0.3125);      // 0.15 -> E4M3's 0.15625 (step 2^-6 in [0.125, 0.25))
  EXPECT_EQ(layer[0].data[2], -0.01171875);  // 0.005 = 2.56 * 2^-9 -> the subnormal 3 * 2^-9
  kv_cache_roundtrip(fp8_cache(KvCache::Scale::head), per_head, identity);
  const double s1 = double(float(8.0f / 448.0f));
  EXPECT_EQ(per_head[1].data[0], double(float(test::e4m3_nearest(double(float(8 / s1))) * s1)));
  EXPECT_EQ(per_head[1].data[1], double(float(test::e4m3_nearest(double(float(0.3 / s1))) * s1)));
  // Fixed scale 1: beyond the range saturates (counted), infinity too, NaN stays NaN.
  std::vector<Matrix<double>> special{Matrix<double>(1, 4)};
  special[0].data = {450, 500, -std::numeric_limits<double>::infinity(), std::nan("")};
  EXPECT_EQ(kv_cache_roundtrip(fp8_cache(KvCache::Scale::fixed), special, identity), 2);
  EXPECT_EQ(special[0].data[0], 448.0);
  EXPECT_EQ(special[0].data[1], 448.0);
  EXPECT_EQ(special[0].data[2], -448.0);
  EXPECT_TRUE(std::isnan(special[0].data[3]));
}

// NVFP4's per-tensor scale covers the layer's heads together: a head of ones beside a head of 100s is dequantised
// to 6 * 4.5 * 100 / 2688 (block scale e4m3(1 * (2688 / 100) / 6) = 4.5, element e2m1(1 / (4.5 / 26.88)) = 6), not to
// the 1 it would give alone.
TEST(KvCache, Nvfp4ScalesTheLayerAsOneTensor) {
  KvCache c;
  c.blocks = block_scheme("nvfp4");
  std::vector<Matrix<double>> heads{Matrix<double>(2, 16), Matrix<double>(2, 16)};
  std::fill(heads[0].data.begin(), heads[0].data.end(), 1.0);
  std::fill(heads[1].data.begin(), heads[1].data.end(), 100.0);
  auto alone = std::vector<Matrix<double>>{heads[0]};
  kv_cache_roundtrip(c, heads, identity);
  EXPECT_EQ(heads[0](1, 7), double(float(6 * 4.5 * 100 / 2688.0)));
  kv_cache_roundtrip(c, alone, identity);
  EXPECT_EQ(alone[0](1, 7), 1.0);
}

ModelConfig qwen3_shape() {
  return parse_model_config(R"([model]
arch = "qwen3"
width = 64
heads = 4
kv_heads = 2
head_dim = 32
ffn = 96
depth = 1
vocab = 128
tokens = 12
[init]
norm_gain = 1.0
)", "qwen3.toml");
}

Matrix<double> attention_tap(const PrecisionPlan& plan, const ModelConfig& c, const Weights<double>& w,
                             const ModelInput<double>& in) {
  EmulatedBackend be(plan);
  Matrix<double> out;
  forward(be, c, w, in, TapSink<double>([&](int layer, Tap t, const Matrix<double>& m) {
    if (layer == 0 && t == Tap::attn) out = m;
  }));
  return out;
}

// fp64 with an E4M3 cache (one scale per key/value head) against Eigen: keys after QK-norm and rotation and values
// go through the cache, queries do not (a cache before the rotation or on the queries would miss the oracle).
TEST(KvCache, TheForwardCachesRotatedKeysAndValuesOnly) {
  const ModelConfig c = qwen3_shape();
  const Weights<double> w = make_weights(c, 5);
  const ModelInput<double> in = make_input(c, 6);
  PrecisionPlan plan = plan_preset("fp64");
  plan.kv_cache = fp8_cache(KvCache::Scale::head);
  using M = test::Mat;
  using test::to_eigen;
  const int n = c.tokens, dh = 32;
  auto rms = [&](const M& x, const NormWeights<double>& g) { return test::layer_norm(x, g, c.norm_eps, true); };
  auto rotate = [&](const M& x) { return test::rotary(x, w.rope_cos, w.rope_sin); };
  auto cache = [](M x) {  // the oracle's cache: fp32(e4m3(fp32(x / s)) * s), s = fp32(amax / 448)
    const double s = double(float(float(x.cwiseAbs().maxCoeff()) / 448.0f));
    for (int i = 0; i < x.rows(); ++i)
      for (int j = 0; j < x.cols(); ++j) x(i, j) = double(float(test::e4m3_nearest(double(float(x(i, j) / s))) * s));
    return x;
  };
  M x(n, c.width);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < c.width; ++j) x(i, j) = w.wte(in.ids[i], j);
  const auto& lw = w.layers[0];
  const M h = rms(x, lw.norm1);
  const M q = h * to_eigen(lw.wq), k = h * to_eigen(lw.wk), v = h * to_eigen(lw.wv);
  M heads(n, 4 * dh);
  for (int head = 0; head < 4; ++head) {
    const int g = head / 2;
    const M qh = rotate(rms(q.middleCols(head * dh, dh), lw.q_norm));
    const M kh = cache(rotate(rms(k.middleCols(g * dh, dh), lw.k_norm)));
    const M s = qh * kh.transpose() / std::sqrt(double(dh));
    heads.middleCols(head * dh, dh) = test::softmax(s, true) * cache(v.middleCols(g * dh, dh));
  }
  const Matrix<double> want = test::from_eigen(heads * to_eigen(lw.wo)), got = attention_tap(plan, c, w, in);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    num += (got.data[i] - want.data[i]) * (got.data[i] - want.data[i]), den += want.data[i] * want.data[i];
  EXPECT_LT(std::sqrt(num / den), 1e-13);
  // Without the cache the branch differs by the cache's error (about 2^-4 relative), so the oracle can fail.
  const Matrix<double> plain = attention_tap(plan_preset("fp64"), c, w, in);
  double d = 0;
  for (std::size_t i = 0; i < got.size(); ++i) d += (got.data[i] - plain.data[i]) * (got.data[i] - plain.data[i]);
  EXPECT_GT(std::sqrt(d / den), 1e-3);
}

TEST(KvCache, PresetsAndPlanFieldsAreCheckedByName) {
  EXPECT_TRUE(plan_preset("autocast-bf16+kv-fp8").kv_cache.format.has_value());
  EXPECT_EQ(plan_preset("pure-bf16+flash+kv-fp8-head").kv_cache.scale, KvCache::Scale::head);
  EXPECT_EQ(plan_preset("pure-bf16+flash+kv-fp8-head").attention.kind, AttentionKernel::Kind::flash);
  EXPECT_EQ(plan_preset("autocast-fp16+kv-fp8-unit").kv_cache.scale, KvCache::Scale::fixed);
  EXPECT_EQ(plan_preset("autocast-bf16+kv-nvfp4").kv_cache.blocks->name, "nvfp4");
  try {
    plan_preset("autocast-bf16+kv-fp9");
    ADD_FAILURE() << "a misspelt suffix was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'+kv-fp9' is not a preset suffix"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("did you mean '+kv-fp8'"), std::string::npos) << e.what();
  }
  auto error = [](const std::string& table) {
    try {
      parse_plan("[plan]\npreset = \"autocast-bf16\"\n[plan.kv_cache]\n" + table, "kv.toml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("format = \"e4m3\"\nscale = \"head\""), "");
  EXPECT_EQ(error("format = \"e5m2\"\nscale = \"fixed\"\nfixed_scale = 0.5"), "");
  EXPECT_NE(error("format = \"e4m3\"\nscheme = \"nvfp4\"").find("plan.kv_cache.scheme"), std::string::npos);
  EXPECT_NE(error("scheme = \"nvfp4\"\nscale = \"head\"").find("plan.kv_cache.scale"), std::string::npos);
  EXPECT_NE(error("format = \"e4m3\"\nscale = \"row\"").find("plan.kv_cache.scale"), std::string::npos);
  EXPECT_NE(error("format = \"e4m3\"\nfixed_scale = 2.0").find("plan.kv_cache.fixed_scale"), std::string::npos);
  EXPECT_NE(error("format = \"e4m3\"\nscale = \"fixed\"\nfixed_scale = -1.0").find("plan.kv_cache.fixed_scale"), std::string::npos);
  EXPECT_NE(error("scheme = \"nvfp4-sr\"").find("plan.kv_cache.scheme"), std::string::npos);
  EXPECT_NE(error("format = \"fp7\"").find("plan.kv_cache.format"), std::string::npos);
  EXPECT_NE(error("formt = \"e4m3\"").find("formt"), std::string::npos);
  // A block that would span two heads is refused before any work.
  ModelConfig c = qwen3_shape();
  c.head_dim = 24;
  EXPECT_NE(plan_model_problem(c, plan_preset("autocast-bf16+kv-nvfp4")).find("would span two heads"), std::string::npos);
  c.head_dim = 32;
  EXPECT_EQ(plan_model_problem(c, plan_preset("autocast-bf16+kv-nvfp4")), "");
}

}  // namespace
}  // namespace lpsim
