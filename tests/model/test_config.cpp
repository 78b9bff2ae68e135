// Model and plan files: what they say reaches the config, and every mistake is named with file, line and key.
#include <gtest/gtest.h>

#include <filesystem>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {
namespace {

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ShippedModelsLoad) {
  for (const auto& entry : std::filesystem::directory_iterator(std::string(LPSIM_SOURCE_DIR) + "/models")) {
    if (entry.path().extension() != ".toml") continue;
    const ModelConfig c = load_model_config(entry.path().string());
    EXPECT_EQ(validate(c), "") << entry.path();
  }
  const ModelConfig vit = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/tiny-vit.toml");
  EXPECT_EQ(vit.tokens, 65);  // 8 x 8 patches and the class token
  EXPECT_EQ(vit.patch_dim(), 48);
}

TEST(ModelConfig, FamiliesSetDefaultsAndKeysOverride) {
  const ModelConfig d = parse_model_config("[model]\narch = \"decoder002\"\ndepth = 3\n", "d.toml");
  EXPECT_EQ(d.norm, NormKind::rmsnorm);
  EXPECT_EQ(d.activation, Activation::relu);
  EXPECT_EQ(d.heads, 1);
  EXPECT_TRUE(d.causal);
  EXPECT_FALSE(d.bias);
  EXPECT_EQ(d.depth, 3);
  const ModelConfig g = parse_model_config("[model]\narch = \"gpt2\"\nnorm = \"rmsnorm\"\n", "g.toml");
  EXPECT_EQ(g.activation, Activation::gelu_tanh);
  EXPECT_EQ(g.norm, NormKind::rmsnorm);
}

TEST(ModelConfig, MistakesNameFileLineAndKey) {
  EXPECT_EQ(error_of([] { parse_model_config("[model]\nwidth = 64\nwidht = 32\n", "m.toml"); }),
            "m.toml line 3: key 'model.widht' is unknown (did you mean 'width'?)");
  EXPECT_EQ(error_of([] { parse_model_config("[model]\nwidth = \"wide\"\n", "m.toml"); }),
            "m.toml line 2: key 'model.width' must be an integer");
  EXPECT_EQ(error_of([] { parse_model_config("[model]\nnorm = \"rmsnrom\"\n", "m.toml"); }),
            "m.toml line 2: key 'model.norm' = 'rmsnrom' is not one of layernorm, rmsnorm (did you mean 'rmsnorm'?)");
  EXPECT_EQ(error_of([] { parse_model_config("[model]\nwidth = 10\nheads = 4\n", "m.toml"); }),
            "m.toml line 1: model.width = 10 is not divisible by model.heads = 4");
  EXPECT_EQ(error_of([] { parse_model_config("[model]\n[init]\nkappa_v = 0.5\n", "m.toml"); }),
            "m.toml line 3: key 'init.kappa_v' must be 0 (as drawn) or >= 1");
  EXPECT_EQ(error_of([] { parse_model_config("[model]\n[init]\nstorage = \"fp17\"\n", "m.toml"); }).substr(0, 40),
            "m.toml line 3: key 'init.storage' unknow");
  EXPECT_NE(error_of([] { parse_model_config("[model\n", "m.toml"); }).find("m.toml line 1"), std::string::npos);
  EXPECT_EQ(error_of([] { parse_model_config("[modle]\n", "m.toml"); }), "m.toml: table [model] is missing");
}

TEST(Plan, PresetsSayWhatAutocastDoes) {
  const PrecisionPlan p = plan_preset("autocast-fp16");
  EXPECT_EQ(p[Op::qkv].gemm->input.name, "fp16");
  EXPECT_EQ(p[Op::qkv].gemm->acc->name, "fp32");
  EXPECT_EQ(p[Op::qkv].out.name, "fp16");
  EXPECT_EQ(p[Op::softmax].out.name, "fp32");  // softmax and layer_norm are autocast to fp32
  EXPECT_EQ(p[Op::norm].out.name, "fp32");
  EXPECT_EQ(p[Op::residual].out.name, "fp32");  // half + float32 promotes
  EXPECT_EQ(p[Op::act].out.name, "fp16");
  EXPECT_EQ(p[Op::act].compute.name, "fp32");
  const PrecisionPlan f8 = plan_preset("fp8-e4m3");
  EXPECT_TRUE(f8[Op::ffn_up].scaling);
  EXPECT_EQ(f8[Op::ffn_up].gemm->input.spec, formats::e4m3_sat);
  EXPECT_FALSE(f8[Op::score].scaling);
  EXPECT_EQ(f8[Op::score].gemm->input.name, "bf16");
  EXPECT_EQ(plan_preset("pure-bf16")[Op::residual].out.name, "bf16");
  EXPECT_DOUBLE_EQ(plan_preset("pure-bf16").unit_roundoff(), 0x1p-8);
}

TEST(Plan, FilesOverrideOneOperationAtATime) {
  const PrecisionPlan p = parse_plan(R"([plan]
preset = "autocast-bf16"
[plan.softmax]
out = "bf16"
reduce = "in=fp32,acc=bf16"
[plan.score]
policy = "fp16-tc"
out = "fp16"
)", "my.toml");
  EXPECT_EQ(p.name, "my");
  EXPECT_EQ(p[Op::softmax].out.name, "bf16");
  EXPECT_EQ(p[Op::softmax].reduce->acc->name, "bf16");
  EXPECT_EQ(p[Op::score].gemm->tc.k, 16);
  EXPECT_EQ(p[Op::score].gemm->output.name, "fp16");  // the class's storage is the GEMM's output
  EXPECT_EQ(p[Op::qkv].gemm->input.name, "bf16");
}

TEST(Plan, MistakesNameFileLineAndKey) {
  EXPECT_EQ(error_of([] { parse_plan("[plan]\npreset = \"autocast-fp61\"\n", "p.toml"); }),
            "p.toml line 2: key 'plan.preset' = 'autocast-fp61' is not one of fp64, fp32, autocast-fp16, autocast-bf16, "
            "pure-fp16, pure-bf16, fp8-e4m3, mxfp8, mxfp4, nvfp4, fp8-deepseek, w4a16-int4-g128, w4a16-mxfp4, w4a16-nvfp4, "
            "w8a16-fp8, w8a8-int8 (did you mean 'autocast-fp16'?)");
  EXPECT_EQ(error_of([] { parse_plan("[plan]\n[plan.softmx]\nout = \"fp16\"\n", "p.toml"); }),
            "p.toml line 2: key 'plan.softmx' is unknown (did you mean 'softmax'?)");
  EXPECT_EQ(error_of([] { parse_plan("[plan]\n[plan.qkv]\nreduce = \"fp32\"\n", "p.toml"); }),
            "p.toml line 3: key 'plan.qkv.reduce' is unknown");
  EXPECT_NE(error_of([] { parse_plan("[plan]\n[plan.qkv]\npolicy = \"in=fp16,acc=fq32\"\n", "p.toml"); })
                .find("p.toml line 3: key 'plan.qkv.policy'"),
            std::string::npos);
  EXPECT_EQ(error_of([] { plan_preset("autocast-bf61"); }).substr(0, 38), "plan 'autocast-bf61' is neither a pres");
  EXPECT_EQ(error_of([] { parse_plan("[plan]\n[plan.qkv]\nout_scaling = \"delayed\"\n", "p.toml"); }),
            "p.toml line 3: key 'plan.qkv.out_scaling' applies to elementwise classes (scale, softmax, act, norm, residual)");
  EXPECT_EQ(error_of([] { parse_plan("[plan]\n[plan.scale]\nout_scaling = \"delayd\"\n", "p.toml"); }),
            "p.toml line 3: key 'plan.scale.out_scaling' = 'delayd' is not one of none, current, delayed, geometry or a block scheme");
  EXPECT_EQ(parse_plan("[plan]\n[plan.scale]\nout = \"e4m3\"\nout_scaling = \"delayed\"\n", "p.toml")[Op::scale].out_scaling,
            OutputScaling::delayed);
}

}  // namespace
}  // namespace lpsim
