#include "native_adapter.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace lpsim::cuda {

namespace {

std::vector<float> floats(const std::vector<double>& v) { return {v.begin(), v.end()}; }
std::vector<float> floats(const Matrix<double>& m) { return {m.data.begin(), m.data.end()}; }

NativeFormat native_format(const Format& f, Op op, const char* field) {
  if (f.spec == formats::fp32) return NativeFormat::fp32;
  if (f.spec == formats::fp16) return NativeFormat::fp16;
  if (f.spec == formats::bf16) return NativeFormat::bf16;
  throw std::invalid_argument(fmt::format("plan.{}.{} = {}: the native kernels store fp32, fp16 or bf16",
                                          op_name(op), field, f.name));
}

}  // namespace

NativeModel to_native(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  if (cfg.arch == "llama" || cfg.mlp == Mlp::gated || cfg.rope.theta > 0 || cfg.kv_head_count() != cfg.heads ||
      cfg.head_dim || cfg.final_norm || cfg.lm_head || cfg.score_scale != ScoreScale::divide || cfg.norm_cast ||
      cfg.activation == Activation::silu || cfg.has_qkv_bias() != cfg.bias || cfg.activation_chain || cfg.qk_norm ||
      cfg.experts > 0)
    throw std::invalid_argument("the native forward has no Llama-family operations (GQA, RoPE, SwiGLU, final norm, LM head, experts)");
  NativeModel m;
  m.width = cfg.width, m.heads = cfg.heads, m.ffn = cfg.ffn, m.depth = cfg.depth, m.tokens = cfg.tokens;
  m.layernorm = cfg.norm == NormKind::layernorm, m.pre = cfg.position == NormPosition::pre, m.causal = cfg.causal;
  m.activation = cfg.activation == Activation::gelu ? 0 : cfg.activation == Activation::gelu_tanh ? 1 : 2;
  m.eps = cfg.norm_eps;
  for (const auto& l : w.layers)
    if (l.norm1.eps >= 0 || l.norm2.eps >= 0)
      throw std::invalid_argument("the native forward takes one norm_eps for every norm; these weights carry their own");
  m.embedding = cfg.embedding == Embedding::none ? 0 : cfg.embedding == Embedding::patch ? 1 : 2;
  m.class_token = cfg.class_token && cfg.embedding == Embedding::patch;
  m.patch_dim = cfg.patch_dim(), m.patches = cfg.num_patches();
  m.patch_w = floats(w.patch_w), m.patch_b = floats(w.patch_b), m.cls = floats(w.cls), m.pos = floats(w.pos);
  m.wte = floats(w.wte);
  for (const auto& l : w.layers)
    m.layers.push_back({floats(l.wq), floats(l.wk), floats(l.wv), floats(l.wo), floats(l.bq), floats(l.bk),
                        floats(l.bv), floats(l.bo), floats(l.norm1.gamma), floats(l.norm1.beta), floats(l.norm2.gamma),
                        floats(l.norm2.beta), floats(l.w1), floats(l.b1), floats(l.w2), floats(l.b2)});
  m.x = floats(in.x);
  m.ids = in.ids;
  return m;
}

NativePlan to_native(const PrecisionPlan& plan) {
  NativePlan n;
  for (Op op : all_ops) {
    // The native forward has no Llama-family or mixture-of-experts ops (to_native(cfg) refuses such models).
    if (op == Op::rope || op == Op::lm_head || op == Op::router || op == Op::route) continue;
    const OpPrecision& p = plan[op];
    auto fail = [&](const char* field, std::string why) {
      throw std::invalid_argument(fmt::format("plan {}: {}.{}: {}", plan.name, op_name(op), field, why));
    };
    if (!(p.compute.spec == formats::fp32)) fail("compute", "the native kernels compute elementwise maths in fp32");
    if (p.rounding != Rounding::nearest_even) fail("rounding", "the native conversions round to nearest even");
    if (p.out_scaling != OutputScaling::none || p.scaling) fail("scaling", "the native kernels do not scale");
    n.out[int(op)] = native_format(p.out, op, "out");
    if (p.reduce) {
      const AccumPolicy& r = *p.reduce;
      if (r.order != Order::sequential || !r.fma || r.tc.k || !r.acc || !(r.acc->spec == formats::fp32) || r.product)
        fail("reduce", "the native reductions are sequential fma in fp32");
    }
    if (!p.gemm) continue;
    const AccumPolicy& g = *p.gemm;
    if (g.order != Order::sequential || !g.fma || g.tc.k || g.product || !g.acc || g.acc_rounding != Rounding::nearest_even)
      fail("policy", fmt::format("'{}' is not a sequential fma loop with a rounded accumulator", to_string(g)));
    NativeGemm& ng = n.gemm[int(op)];
    ng.in = native_format(g.input, op, "policy in");
    if (g.acc->spec == formats::fp32) ng.accum = NativeAccum::fma_fp32;
    else if (g.acc->spec == g.input.spec && ng.in != NativeFormat::fp32) ng.accum = NativeAccum::fma_operand;
    else fail("policy", fmt::format("acc = {} is neither fp32 nor the operand format", g.acc->name));
  }
  if (plan.attention.kind == AttentionKernel::Kind::flash) {
    for (Op op : {Op::score, Op::pv})
      if (n.gemm[int(op)].accum != NativeAccum::fma_fp32)
        throw std::invalid_argument(fmt::format("plan {}: {}.policy: the native flash kernel accumulates in fp32",
                                                plan.name, op_name(op)));
    if (plan.attention.block_k > 256)
      throw std::invalid_argument(fmt::format("plan {}: attention_block_k = {}: the native flash kernel holds at most "
                                              "256 keys per tile", plan.name, plan.attention.block_k));
    n.flash = true, n.block_k = plan.attention.block_k, n.reverse = plan.attention.reverse;
  }
  return n;
}

}  // namespace lpsim::cuda
