// Policy strings: presets, keys, canonical spelling, and errors that name the bad field.
#include <gtest/gtest.h>

#include "lpsim/accum/policy.hpp"

namespace lpsim {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_policy(text);
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "";
}

TEST(Policy, PresetsParseAndRoundTrip) {
  for (const auto& preset : policy_presets()) {
    SCOPED_TRACE(preset.name);
    const AccumPolicy p = parse_policy(preset.name);
    EXPECT_EQ(parse_policy(preset.definition), p);
    EXPECT_EQ(parse_policy(to_string(p)), p) << to_string(p);
  }
}

TEST(Policy, KeysSetWhatTheySay) {
  const AccumPolicy p = parse_policy("in=bf16,acc=fp16,round=rz,order=blocked:32,nofma,out=e4m3:sat,outround=sr");
  EXPECT_EQ(p.input.spec, formats::bf16);
  EXPECT_EQ(p.acc->spec, formats::fp16);
  EXPECT_EQ(p.acc_rounding, Rounding::toward_zero);
  EXPECT_EQ(p.order, Order::blocked);
  EXPECT_EQ(p.block, 32);
  EXPECT_FALSE(p.fma);
  ASSERT_TRUE(p.product.has_value());  // without fma the product rounds to the accumulator by default
  EXPECT_EQ(p.product->spec, formats::fp16);
  EXPECT_EQ(p.output.spec, formats::e4m3_sat);
  EXPECT_EQ(p.output_rounding, Rounding::stochastic);
}

TEST(Policy, DefaultsFollowTheAccumulator) {
  const AccumPolicy p = parse_policy("in=fp16,acc=bf16");
  EXPECT_TRUE(p.fma);
  EXPECT_FALSE(p.product.has_value());
  EXPECT_EQ(p.output.spec, formats::bf16);
  EXPECT_EQ(parse_policy("acc=exact").output.spec, formats::fp64);
  EXPECT_EQ(parse_policy("fp16-fp32acc,acc=fp16").output.spec, formats::fp16);  // the preset's out stays
}

TEST(Policy, ChunkLengths) {
  EXPECT_EQ(parse_policy("order=blocked:32").chunk_length(100), 32);
  EXPECT_EQ(parse_policy("order=splitk:3").chunk_length(100), 34);
  EXPECT_EQ(parse_policy("order=splitk:8").chunk_length(3), 1);
  EXPECT_EQ(parse_policy("order=seq").chunk_length(100), 100);
}

TEST(Policy, ErrorsNameTheField) {
  const struct {
    const char* policy;
    const char* expected;
  } cases[] = {
      {"in=fp16,acc=fq32", "acc: unknown format 'fq32'"},
      {"in=fp16,ac=fp32", "unknown key 'ac' (did you mean 'acc'?)"},
      {"fp16-fp32ac", "did you mean 'fp16-fp32acc'?"},
      {"in=fp16,prod=fp16", "prod: a product rounded to fp16 cannot be fused"},
      {"order=blocked", "order: 'blocked' needs a length"},
      {"order=blocked:0", "order: '0' is not an integer"},
      {"order=zigzag", "order: unknown order 'zigzag'"},
      {"round=nearest", "round: unknown rounding mode 'nearest'"},
      {"tc=16,order=pairwise", "tc: the tensor-core model chains its steps"},
      {"tcbits=20", "give tc=K too"},
      {"tc=16,tcbits=60", "tcbits: '60' is not an integer in 1..46"},
      {"tc=100", "tc: '100' is not an integer in 1..64"},
      {"acc=exact,tc=8", "tc: the tensor-core model needs an accumulator format"},
      {"in=fp16,,acc=fp32", "empty field at position 2"},
      {"acc=fp64,round=sr", "round: stochastic rounding needs a format of <= 51 bits"},
      {"in=fp16,fp32", "preset 'fp32' must come first"},
      {"", "empty accumulation policy"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.policy);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "policy '" << c.policy << "' gave: " << e;
  }
}

}  // namespace
}  // namespace lpsim
