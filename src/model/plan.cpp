#include "lpsim/model/plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/toml_fields.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/model_config.hpp"
#include "util/read_text.hpp"

namespace lpsim {

std::string_view op_name(Op op) {
  static constexpr std::string_view names[op_count] = {"embed", "qkv", "score",  "scale",    "softmax", "pv",
                                                       "out_proj", "ffn_up", "ffn_down", "act", "norm", "residual",
                                                       "rope", "lm_head", "router", "route"};
  return names[static_cast<int>(op)];
}

bool is_gemm(Op op) {
  return op == Op::embed || op == Op::qkv || op == Op::score || op == Op::pv || op == Op::out_proj ||
         op == Op::ffn_up || op == Op::ffn_down || op == Op::lm_head || op == Op::router;
}
bool has_reduction(Op op) { return op == Op::softmax || op == Op::norm || op == Op::route; }

double PrecisionPlan::unit_roundoff() const {
  double u = 0;
  for (Op op : all_ops)
    if (is_gemm(op)) u = std::max(u, (*this)[op].gemm->input.spec.unit_roundoff());
  return u;
}

namespace {

// The reduction policy of a compute format: sequential, fma, accumulator = compute (what a CUDA kernel's
// per-thread loop does), input and output set to compute.
AccumPolicy reduction_policy(const Format& compute, std::string_view text) {
  AccumPolicy p = parse_policy(text);
  p.input = compute;
  p.output = compute;
  return p;
}

std::string default_reduce(const Format& compute) { return fmt::format("in={0},acc={0},out={0}", compute.name); }

struct PresetSpec {
  const char* name;
  const char* gemm;         // policy of every GEMM class (its `out` is replaced by the class's storage)
  const char* attn_gemm;    // score and PV GEMMs
  const char* compute;
  const char* gemm_out;     // storage of GEMM results
  const char* softmax_out;
  const char* norm_out;
  const char* act_out;      // activation and the 1/sqrt(d) scaling (elementwise on GEMM outputs)
  const char* residual_out;
  bool fp8_scaling;                  // linear layers (not embed, lm_head) scaled: per tensor, or by blocks below
  const char* blocks = nullptr;      // block scheme of the linear layers' activations (and weights)
  const char* weight_blocks = nullptr;
  const char* weight_only = nullptr;  // weight-only quantisation of the linear layers (not embed, lm_head, router)
};

// What real systems do (docs/SOURCES.md): autocast runs matmuls in half with fp32 accumulation and returns half,
// softmax and layer_norm in fp32 returning fp32, elementwise ops on half tensors computed in fp32 and rounded to
// half, and a float32 residual stream by type promotion. pure-*: model.half(): every tensor half, maths inside
// kernels in fp32. fp8-e4m3: Transformer Engine style linear layers (saturating e4m3 operands, per-tensor
// scale, fp32 accumulation, bf16 out), attention matmuls in bf16, bf16 activations.
constexpr PresetSpec preset_specs[] = {
    {"fp64", "fp64", "fp64", "fp64", "fp64", "fp64", "fp64", "fp64", "fp64", false},
    {"fp32", "fp32", "fp32", "fp32", "fp32", "fp32", "fp32", "fp32", "fp32", false},
    {"autocast-fp16", "fp16-fp32acc", "fp16-fp32acc", "fp32", "fp16", "fp32", "fp32", "fp16", "fp32", false},
    {"autocast-bf16", "bf16-fp32acc", "bf16-fp32acc", "fp32", "bf16", "fp32", "fp32", "bf16", "fp32", false},
    {"pure-fp16", "fp16-fp32acc", "fp16-fp32acc", "fp32", "fp16", "fp16", "fp16", "fp16", "fp16", false},
    {"pure-bf16", "bf16-fp32acc", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", false},
    {"fp8-e4m3", "in=e4m3:sat,acc=fp32,out=bf16", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", true},
    // Block-scaled linear layers, the rest as fp8-e4m3. The accumulation inside a block is binary32 in order for
    // MX and NVFP4 (Blackwell's block-scaled MMA is not measured here), Hopper's fitted fp8 tensor core for
    // DeepSeek's recipe, whose 128-element blocks are its promotion interval.
    {"mxfp8", "in=e4m3,acc=fp32", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", true, "mxfp8-e4m3"},
    {"mxfp4", "in=e2m1,acc=fp32", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", true, "mxfp4"},
    {"nvfp4", "in=e2m1,acc=fp32", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", true, "nvfp4"},
    {"fp8-deepseek", "fp8e4m3-tc", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", true, "fp8-1x128",
     "fp8-128x128"},
    // Weight-only serving (vLLM, TGI, transformers with GPTQ/AWQ/MXFP4/FP8 checkpoints): the model in bf16 as
    // pure-bf16, the linear layers' weights quantised and dequantised to bf16 before a bf16 GEMM with fp32
    // accumulation (Marlin's and the dequantise-then-GEMM kernels' arithmetic; docs/MODELS.md).
    {"w4a16-int4-g128", "bf16-fp32acc", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", false, nullptr,
     nullptr, "int4-g128"},
    {"w4a16-mxfp4", "bf16-fp32acc", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", false, nullptr,
     nullptr, "mxfp4"},
    {"w4a16-nvfp4", "bf16-fp32acc", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", false, nullptr,
     nullptr, "nvfp4"},
    {"w8a16-fp8", "bf16-fp32acc", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", false, nullptr,
     nullptr, "fp8-128x128"},
    // W8A8 int8 as vLLM serves SmoothQuant/compressed-tensors checkpoints: activations quantised per token on the
    // fly, weights per output channel, int8 x int8 summed exactly (int32; fp64 holds every such sum below 2^53),
    // CUTLASS's scaled_mm epilogue, bf16 out; the rest as pure-bf16.
    {"w8a8-int8", "in=fp16,acc=fp64", "bf16-fp32acc", "fp32", "bf16", "bf16", "bf16", "bf16", "bf16", true,
     "int8-rowwise"},
};

PrecisionPlan build(const PresetSpec& s) {
  PrecisionPlan plan;
  plan.name = s.name;
  const Format compute = parse_format(s.compute);
  for (Op op : all_ops) {
    OpPrecision& p = plan[op];
    p.compute = compute;
    switch (op) {
      case Op::softmax: p.out = parse_format(s.softmax_out); break;
      case Op::norm: p.out = parse_format(s.norm_out); break;
      case Op::act:
      case Op::scale: p.out = parse_format(s.act_out); break;
      case Op::residual: p.out = parse_format(s.residual_out); break;
      case Op::route: p.out = compute; break;  // router_logits.float(): the preset's fp32 (fp64 in fp64)
      case Op::rope:  // on the stream's dtype: fp32 under autocast (q * fp32 cos promotes), half when pure
        p.out = parse_format(s.residual_out);
        p.compute = p.out;
        break;
      default: p.out = parse_format(s.gemm_out);
    }
    if (is_gemm(op)) {
      const bool attention = op == Op::score || op == Op::pv;
      // The embedding stays out of fp8 as Transformer Engine recipes keep the first layer in higher precision.
      // So does the LM head (Transformer Engine leaves the output layer in bf16).
      // The router likewise (its decisions are discrete; Transformer Engine recipes and DeepSeek-V3's keep it out).
      const bool first_or_last = op == Op::embed || op == Op::lm_head || op == Op::router;
      const bool linear = !attention && !first_or_last;  // qkv, out_proj, ffn_up, ffn_down
      const bool linear_fp8 = s.fp8_scaling && linear;
      p.gemm = parse_policy(attention || (s.fp8_scaling && first_or_last) ? s.attn_gemm : s.gemm);
      p.gemm->output = p.out;
      p.scaling = linear_fp8 && !s.blocks;
      if (linear_fp8 && s.blocks) {
        p.blocks = block_scheme(s.blocks);
        if (s.weight_blocks) p.weight_blocks = block_scheme(s.weight_blocks);
      }
      if (s.weight_only && linear) p.weight_only = block_scheme(s.weight_only);
    }
    if (has_reduction(op)) p.reduce = reduction_policy(compute, default_reduce(compute));
  }
  // model.half(): a chained activation's every op runs on half tensors; under autocast torch.pow promotes the
  // chain to fp32, one rounding at the end as a fused activation has.
  plan[Op::act].composite = std::string_view(s.name).starts_with("pure-");
  if (std::string_view(s.name).starts_with("pure-") || s.fp8_scaling || s.weight_only) plan.params = parse_format(s.residual_out);
  return plan;
}

}  // namespace

const std::vector<std::string>& plan_preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& s : preset_specs) v.push_back(s.name);
    return v;
  }();
  return names;
}

// The flash kernel keeps S and the output in accumulators: the score and pv classes need accumulator formats and
// no per-tensor scaling. Returns a message naming the field, or "".
static std::string attention_problem(const PrecisionPlan& plan) {
  if (plan.attention.kind != AttentionKernel::Kind::flash) return "";
  if (plan.attention.block_k < 1 || plan.attention.block_k > 4096)
    return fmt::format("attention_block_k = {} is outside 1..4096", plan.attention.block_k);
  for (Op op : {Op::score, Op::pv}) {
    const OpPrecision& p = plan[op];
    if (p.scaling || p.blocks) return fmt::format("{}.scaling: the flash kernel takes unscaled operands", op_name(op));
    if (!p.gemm->acc) return fmt::format("{}.policy: the flash kernel keeps an accumulator; acc=exact has none", op_name(op));
  }
  return "";
}

// The KV cache suffixes of a preset name (plan.hpp): the suffix and the cache it sets.
static const std::vector<std::pair<std::string, KvCache>>& kv_suffixes() {
  static const std::vector<std::pair<std::string, KvCache>> list = [] {
    KvCache tensor, head, unit, nvfp4;
    tensor.format = head.format = unit.format = parse_format("e4m3");
    head.scale = KvCache::Scale::head;
    unit.scale = KvCache::Scale::fixed;
    nvfp4.blocks = block_scheme("nvfp4");
    return std::vector<std::pair<std::string, KvCache>>{
        {"+kv-fp8", tensor}, {"+kv-fp8-head", head}, {"+kv-fp8-unit", unit}, {"+kv-nvfp4", nvfp4}};
  }();
  return list;
}

PrecisionPlan plan_preset(std::string_view name) {
  for (const auto& [suffix, cache] : kv_suffixes())
    if (name.ends_with(suffix)) {
      PrecisionPlan plan = plan_preset(name.substr(0, name.size() - suffix.size()));
      plan.name = std::string(name);
      plan.kv_cache = cache;
      return plan;
    }
  if (name.ends_with("+flash")) {
    PrecisionPlan plan = plan_preset(name.substr(0, name.size() - 6));
    plan.name = std::string(name);
    plan.attention.kind = AttentionKernel::Kind::flash;
    if (std::string bad = attention_problem(plan); !bad.empty())
      throw ConfigError(fmt::format("plan '{}': {}", name, bad));
    return plan;
  }
  for (const auto& s : preset_specs)
    if (name == s.name) return build(s);
  std::string list;
  for (const auto& n : plan_preset_names()) list += (list.empty() ? "" : ", ") + n;
  std::vector<std::string> suffixes{"+flash"};
  for (const auto& [suffix, cache] : kv_suffixes()) suffixes.push_back(suffix);
  if (const auto plus = name.rfind('+'); plus != std::string_view::npos)  // a preset with a suffix lpsim lacks
    throw ConfigError(fmt::format("plan '{}': '{}' is not a preset suffix ({}){}", name, name.substr(plus),
                                  fmt::join(suffixes, ", "), did_you_mean_part(name.substr(plus), suffixes)));
  throw ConfigError(fmt::format("plan '{}' is neither a preset ({}; each with the suffixes {}) nor a file{}", name, list,
                                fmt::join(suffixes, ", "), did_you_mean_part(name, plan_preset_names())));
}

namespace {

Format format_field(TomlFields& f, std::string_view key, const Format& fallback) {
  const auto text = f.optional<std::string>(key);
  if (!text) return fallback;
  try {
    return parse_format(*text);
  } catch (const FormatError& e) {
    f.fail(key, e.what());
  }
}

// [plan.kv_cache]: format = "e4m3" with scale = "tensor" | "head" | "fixed" (and fixed_scale), or scheme = "<block
// scheme>"; format = "none" switches a preset's cache off.
void parse_kv_cache(const toml::table& table, const std::string& file, KvCache& kv) {
  TomlFields k(table, file, "plan.kv_cache.");
  const auto format = k.optional<std::string>("format");
  const auto scheme = k.optional<std::string>("scheme");
  if (format && scheme) k.fail("scheme", "and format do not go together (a block scheme has its own element format)");
  if (format) {
    kv = KvCache{};
    if (*format != "none") try {
      kv.format = parse_format(*format);
    } catch (const FormatError& e) {
      k.fail("format", e.what());
    }
  }
  if (scheme) {
    kv = KvCache{};
    try {
      kv.blocks = block_scheme(*scheme);
    } catch (const ConfigError& e) {
      k.fail("scheme", e.what());
    }
    if (kv.blocks->stochastic) k.fail("scheme", fmt::format("= '{}': a KV cache is written once, rounded to nearest", *scheme));
  }
  if (const auto sc = k.optional<std::string>("scale")) {
    if (!kv.format) k.fail("scale", "needs format = \"<format>\" (a block scheme has its own scales)");
    if (*sc != "tensor" && *sc != "head" && *sc != "fixed") k.fail("scale", fmt::format("= '{}' is not one of tensor, head, fixed", *sc));
    kv.scale = *sc == "tensor" ? KvCache::Scale::tensor : *sc == "head" ? KvCache::Scale::head : KvCache::Scale::fixed;
  }
  if (const auto v = k.optional<double>("fixed_scale")) {
    if (kv.scale != KvCache::Scale::fixed) k.fail("fixed_scale", "needs scale = \"fixed\"");
    if (!(*v > 0) || !std::isfinite(*v)) k.fail("fixed_scale", fmt::format("= {} is not a positive finite number", *v));
    kv.fixed_scale = *v;
  }
  k.finish();
}

}  // namespace

PrecisionPlan parse_plan(std::string_view text, const std::string& file) {
  const toml::table root = parse_toml(text, file);
  const toml::table* table = root["plan"].as_table();
  if (!table) throw ConfigError(fmt::format("{}: table [plan] is missing", file));
  TomlFields f(*table, file, "plan.");
  PrecisionPlan plan = plan_preset(f.get_choice("preset", "fp32", plan_preset_names()));
  plan.name = f.get<std::string>("name", std::filesystem::path(file).stem().string());
  if (const auto p = f.optional<std::string>("params")) {
    if (*p == "none") plan.params.reset();
    else try {
      plan.params = parse_format(*p);
    } catch (const FormatError& e) {
      f.fail("params", e.what());
    }
  }
  if (const auto a = f.optional<std::string>("attention")) {
    if (*a != "math" && *a != "flash") f.fail("attention", fmt::format("= '{}' is not one of math, flash", *a));
    plan.attention.kind = *a == "flash" ? AttentionKernel::Kind::flash : AttentionKernel::Kind::math;
  }
  if (const auto b = f.optional<std::int64_t>("attention_block_k")) {
    if (*b < 1 || *b > 4096) f.fail("attention_block_k", fmt::format("= {} is outside 1..4096", *b));
    plan.attention.block_k = int(*b);
  }
  if (const auto t = f.optional<std::string>("attention_tiles")) {
    if (*t != "forward" && *t != "reverse") f.fail("attention_tiles", fmt::format("= '{}' is not one of forward, reverse", *t));
    plan.attention.reverse = *t == "reverse";
  }
  if (const auto r = f.optional<std::string>("rounding")) {
    try {
      const Rounding mode = parse_rounding(*r);
      for (Op op : all_ops) plan[op].rounding = mode;
    } catch (const std::exception& e) {
      f.fail("rounding", e.what());
    }
  }
  if (const toml::table* kv = f.subtable("kv_cache")) parse_kv_cache(*kv, file, plan.kv_cache);
  for (Op op : all_ops) {
    const toml::table* sub = f.subtable(op_name(op));
    if (!sub) continue;
    TomlFields o(*sub, file, fmt::format("plan.{}.", op_name(op)));
    OpPrecision& p = plan[op];
    p.compute = format_field(o, "compute", p.compute);
    p.out = format_field(o, "out", p.out);
    if (const auto r = o.optional<std::string>("rounding")) {
      try {
        p.rounding = parse_rounding(*r);
      } catch (const std::exception& e) {
        o.fail("rounding", e.what());
      }
    }
    if (is_gemm(op)) {
      if (const auto text = o.optional<std::string>("policy")) {
        try {
          p.gemm = parse_policy(*text);
        } catch (const PolicyError& e) {
          o.fail("policy", e.what());
        }
      }
      p.gemm->output = p.out;
      if (const auto s = o.optional<std::string>("scaling")) {
        p.scaling = *s == "tensor";
        p.blocks.reset(), p.weight_blocks.reset();
        if (*s != "tensor" && *s != "none") try {
          p.blocks = block_scheme(*s);
        } catch (const ConfigError& e) {
          o.fail("scaling", fmt::format("= '{}' is neither tensor, none nor a block scheme: {}", *s, e.what()));
        }
      }
      if (const auto s = o.optional<std::string>("weight_scaling")) {
        if (!p.blocks) o.fail("weight_scaling", "needs scaling = \"<block scheme>\" for the activations");
        try {
          p.weight_blocks = block_scheme(*s);
        } catch (const ConfigError& e) {
          o.fail("weight_scaling", e.what());
        }
      }
      for (const auto* b : {&p.blocks, &p.weight_blocks})
        if (*b && !(representable((*b)->element.spec.max_finite(), p.gemm->input.spec) &&
                    representable((*b)->element.spec.min_subnormal(), p.gemm->input.spec)))
          o.fail("policy", fmt::format("in = {} cannot hold the {} elements of scheme {}", p.gemm->input.name,
                                       (*b)->element.name, (*b)->name));
      if (const auto s = o.optional<std::string>("weight_only")) {
        p.weight_only.reset();
        if (*s != "none") try {
          p.weight_only = block_scheme(*s);
        } catch (const ConfigError& e) {
          o.fail("weight_only", fmt::format("= '{}' is neither none nor a block scheme: {}", *s, e.what()));
        }
      }
      if (p.weight_only && (op == Op::score || op == Op::pv))
        o.fail("weight_only", "applies to classes with weights (qkv, out_proj, ffn_up, ffn_down, embed, lm_head, router)");
      if (p.weight_only && (p.blocks || p.scaling))
        o.fail("weight_only", "and scaling of the activations do not go together (weight-only keeps activations as they are)");
      if (p.blocks && p.weight_blocks && p.blocks->block != p.weight_blocks->block)
        o.fail("weight_scaling", fmt::format("blocks of {} along k differ from the activations' {}",
                                             p.weight_blocks->block, p.blocks->block));
      if (const std::string bad = validate(*p.gemm); !bad.empty()) o.fail("policy", bad);
    }
    if (const auto c = o.optional<bool>("composite")) {
      if (op != Op::act) o.fail("composite", "applies to the act class only");
      p.composite = *c;
    }
    if (const auto sc = o.optional<std::string>("out_scaling")) {
      if (is_gemm(op)) o.fail("out_scaling", "applies to elementwise classes (scale, softmax, act, norm, residual)");
      const std::string v = *sc;
      if (v == "none" || v == "current" || v == "delayed" || v == "geometry") {
        p.out_scaling = v == "none" ? OutputScaling::none : v == "current" ? OutputScaling::current
                        : v == "delayed" ? OutputScaling::delayed : OutputScaling::geometry;
      } else {
        try {  // a block scheme: the stored tensor in blocks along its rows, elements of the scheme's format
          p.blocks = block_scheme(v);
          p.out_scaling = OutputScaling::blocks;
          p.out = p.blocks->element;
        } catch (const ConfigError&) {
          o.fail("out_scaling", fmt::format("= '{}' is not one of none, current, delayed, geometry or a block scheme", v));
        }
      }
    }
    if (has_reduction(op)) {
      const auto text = o.optional<std::string>("reduce");
      try {
        p.reduce = reduction_policy(p.compute, text ? *text : default_reduce(p.compute));
      } catch (const std::exception& e) {
        o.fail(text ? "reduce" : "compute", e.what());
      }
    }
    o.finish();
  }
  f.finish();
  if (std::string bad = attention_problem(plan); !bad.empty()) f.fail("attention", bad);
  return plan;
}

bool has_plan_table(std::string_view text, const std::string& file) {
  return parse_toml(text, file).contains("plan");
}

PrecisionPlan load_plan(const std::string& spec) {
  const bool is_preset = std::find(plan_preset_names().begin(), plan_preset_names().end(), spec) != plan_preset_names().end();
  if (is_preset) return plan_preset(spec);
  if (!std::filesystem::exists(spec)) return plan_preset(spec);  // throws with the preset list and a suggestion
  return parse_plan(read_text(spec, "plan file"), spec);
}

std::string plan_model_problem(const ModelConfig& cfg, const PrecisionPlan& plan) {
  if (plan.attention.kind == AttentionKernel::Kind::flash && cfg.rescaled_scores())
    return fmt::format("plan {} runs the flash kernel, which has no score scalar or soft-capping (model {}; "
                       "transformers runs Gemma eager): use a plan without +flash", plan.name, cfg.name);
  if (plan.kv_cache.blocks && plan.kv_cache.blocks->block > 0 && cfg.head_width() % plan.kv_cache.blocks->block != 0)
    return fmt::format("plan {}: kv_cache.scheme {} has blocks of {} and model {} heads of {}; a block would span two "
                       "heads", plan.name, plan.kv_cache.blocks->name, plan.kv_cache.blocks->block, cfg.name,
                       cfg.head_width());
  return "";
}

std::string describe(const PrecisionPlan& plan) {
  std::string s = fmt::format("plan {}{}\n", plan.name,
                              plan.params ? fmt::format(" (parameters outside GEMMs in {})", plan.params->name) : "");
  if (plan.attention.kind == AttentionKernel::Kind::flash)
    s += fmt::format("  attention: flash kernel, tiles of {} keys, {}\n", plan.attention.block_k,
                     plan.attention.reverse ? "last tile first" : "first tile first");
  if (const KvCache& kv = plan.kv_cache; kv.blocks)
    s += fmt::format("  kv cache: keys and values in {}\n", kv.blocks->name);
  else if (kv.format)
    s += fmt::format("  kv cache: keys and values in {}, {}\n", kv.format->name,
                     kv.scale == KvCache::Scale::fixed  ? fmt::format("scale {}", kv.fixed_scale)
                     : kv.scale == KvCache::Scale::head ? std::string("one scale per key/value head")
                                                        : std::string("one scale per layer"));
  for (Op op : all_ops) {
    const OpPrecision& p = plan[op];
    s += fmt::format("  {:<9} compute {:<6} out {:<9} round {}", op_name(op), p.compute.name, p.out.name,
                     short_name(p.rounding));
    if (p.gemm) s += fmt::format("  gemm {}{}", to_string(*p.gemm), p.scaling ? " (per-tensor scaling)" : "");
    if (p.blocks) s += fmt::format(" (block scaling {}{})", p.blocks->name,
                                   p.weight_blocks ? ", weights " + p.weight_blocks->name : std::string());
    if (p.weight_only) s += fmt::format(" (weights only: {})", p.weight_only->name);
    if (p.reduce) s += fmt::format("  reduce {}", to_string(*p.reduce));
    if (p.composite) s += "  composite";
    s += "\n";
  }
  return s;
}

}  // namespace lpsim
