#include "lpsim/accum/policy.hpp"
#include "util/suggest.hpp"

#include <algorithm>
#include <charconv>
#include <fmt/format.h>

namespace lpsim {

namespace {

// Tensor-core parameters of the presets are the public reports' leads (docs/SOURCES.md), not yet fitted to
// the H100: issue 7 measures them.
const std::vector<PolicyPreset> presets = {
    {"fp64", "in=fp64,acc=fp64", "binary64 throughout, sequential fma"},
    {"fp32", "in=fp32,acc=fp32", "binary32 throughout, sequential fma (a CPU sgemm's inner loop)"},
    {"tf32-fp32acc", "in=tf32,acc=fp32,out=fp32", "TF32 operands, fp32 sequential fma"},
    {"fp16-fp32acc", "in=fp16,acc=fp32,out=fp16", "half operands, fp32 sequential fma, half output"},
    {"bf16-fp32acc", "in=bf16,acc=fp32,out=bf16", "bfloat16 operands, fp32 sequential fma, bfloat16 output"},
    {"fp16-fp16acc", "in=fp16,acc=fp16", "half operands, every partial sum rounded to half (HFMA)"},
    {"bf16-bf16acc", "in=bf16,acc=bf16", "bfloat16 operands, every partial sum rounded to bfloat16"},
    {"fp16-tc", "in=fp16,acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,out=fp16",
     "H100 tensor cores for half (mma.sync, cuBLAS), fitted bit for bit: 16 products per step aligned by operand "
     "exponents, 26 bits kept, truncated, normalised toward zero"},
    {"bf16-tc", "in=bf16,acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,out=bf16",
     "H100 tensor cores for bfloat16, fitted bit for bit (as fp16-tc)"},
    {"fp8e4m3-tc", "in=e4m3,acc=fp32,tc=32,tcbits=14,tcalign=trunc,tcround=rz,tcexp=operands,tcacc=e8m13,out=bf16",
     "H100/H200 fp8 e4m3 GEMM with fast accumulation (cuBLASLt, wgmma): 32 products per step, 14 bits kept, the "
     "accumulator register truncated to 13 fraction bits (MMA-Sim's model); 100% of outputs bit-identical"},
    {"fp8e5m2-tc", "in=e5m2,acc=fp32,tc=32,tcbits=14,tcalign=trunc,tcround=rz,tcexp=operands,tcacc=e8m13,out=bf16",
     "Hopper fp8 e5m2 wgmma, as fp8e4m3-tc (from MMA-Sim; not measured here: PyTorch has no e5m2 x e5m2 product)"},
    {"fp8e4m3-tc-promote",
     "in=e4m3,acc=fp32,tc=32,tcbits=14,tcalign=trunc,tcround=rz,tcexp=operands,tcacc=e8m13,order=blocked:128,out=bf16",
     "cuBLASLt's default fp8 GEMM on Hopper (and DeepSeek-V3's promotion): chunks of 128 terms on the wgmma model "
     "from zero, each added to an fp32 register (RNE); 100% of outputs bit-identical"},
    {"fp8e4m3-mma",
     "in=e4m3,acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,tcunpack=fp16,tcdeal=2,order=blocked:32,"
     "out=fp32",
     "Hopper mma.sync.m16n8k32 e4m3 as sm_90 compiles it (fp16 unpacks, two fp16 HMMA steps from zero on the pairs "
     "k mod 4 < 2 and the rest, an fp32 FADD per 32 terms): 100% of the H100/H200 probe outputs bit-identical"},
    {"fp8e5m2-mma",
     "in=e5m2,acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,tcunpack=fp16,tcdeal=2,order=blocked:32,"
     "out=fp32",
     "Hopper mma.sync.m16n8k32 e5m2, as fp8e4m3-mma (100% bit-identical)"},
    // Blackwell (B200, tcgen05.mma) from MMA-Sim's published model (Xie et al., arXiv 2511.10909): one fused sum per
    // instruction (k = 16 for f16 kinds, 32 for f8f6f4) with 25 fraction bits, normalised toward zero into fp32.
    {"b200-fp16-tc", "in=fp16,acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,out=fp16",
     "Blackwell B200 tcgen05.mma for half, from the literature (MMA-Sim), not measured here"},
    {"b200-bf16-tc", "in=bf16,acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,out=bf16",
     "Blackwell B200 tcgen05.mma for bfloat16, from the literature (MMA-Sim), not measured here"},
    {"b200-fp8e4m3-tc", "in=e4m3,acc=fp32,tc=32,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,out=bf16",
     "Blackwell B200 tcgen05.mma kind::f8f6f4 for e4m3: 32 products per step with 25 fraction bits (no 13-bit "
     "accumulator as on Hopper), from the literature (MMA-Sim), not measured here"},
    {"exact", "in=fp64,acc=exact,out=fp64", "exact sum, one rounding at the output"},
};

const char* const known_keys = "in, prod, prodround, acc, round, order, fma, nofma, tc, tcbits, tcalign, tcround, tcexp, tcunpack, tcacc, tcdeal, out, outround";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string suggestion(std::string_view word) {
  static const char* const candidates[] = {"in", "prod", "prodround", "acc", "round", "order", "fma", "nofma",
                                           "tc", "tcbits", "tcalign", "tcround", "tcexp", "out", "outround"};
  std::string best;
  int best_d = 3;
  for (const char* c : candidates)
    if (int d = edit_distance(word, c); d < best_d) best_d = d, best = c;
  for (const auto& p : presets)
    if (int d = edit_distance(word, p.name); d < best_d) best_d = d, best = p.name;
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

int parse_positive(std::string_view policy, std::string_view key, std::string_view v, int max) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size() || n < 1 || n > max)
    throw PolicyError(fmt::format("policy '{}': {}: '{}' is not an integer in 1..{}", policy, key, v, max));
  return n;
}

// What the user set explicitly; defaults that depend on other keys are filled in after parsing.
struct Seen {
  bool product = false, output = false;
};

void apply(AccumPolicy& p, Seen& seen, std::string_view policy, std::string_view item, bool allow_preset);

const PolicyPreset* find_preset(std::string_view name) {
  for (const auto& p : presets)
    if (p.name == name) return &p;
  return nullptr;
}

void apply_all(AccumPolicy& p, Seen& seen, std::string_view policy, std::string_view text, bool allow_preset) {
  size_t index = 0;
  for (std::string_view rest = text;;) {
    const auto comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    if (item.empty()) throw PolicyError(fmt::format("policy '{}': empty field at position {}", policy, index + 1));
    apply(p, seen, policy, item, allow_preset && index == 0);
    ++index;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
}

Format format_field(std::string_view policy, std::string_view key, std::string_view v) {
  try {
    return parse_format(v);
  } catch (const FormatError& e) {
    throw PolicyError(fmt::format("policy '{}': {}: {}", policy, key, e.what()));
  }
}

Rounding rounding_field(std::string_view policy, std::string_view key, std::string_view v) {
  try {
    return parse_rounding(v);
  } catch (const FormatError& e) {
    throw PolicyError(fmt::format("policy '{}': {}: {}", policy, key, e.what()));
  }
}

void apply(AccumPolicy& p, Seen& seen, std::string_view policy, std::string_view item, bool allow_preset) {
  const auto eq = item.find('=');
  const std::string_view key = trim(item.substr(0, eq));
  const std::string_view v = eq == std::string_view::npos ? std::string_view{} : trim(item.substr(eq + 1));
  if (eq == std::string_view::npos) {
    if (key == "fma") { p.fma = true; return; }
    if (key == "nofma") { p.fma = false; return; }
    if (const PolicyPreset* preset = find_preset(key)) {
      if (!allow_preset)
        throw PolicyError(fmt::format("policy '{}': preset '{}' must come first", policy, key));
      apply_all(p, seen, policy, preset->definition, false);
      return;
    }
    throw PolicyError(fmt::format("policy '{}': '{}' is neither a preset nor key=value{} (presets: `lpsim dot "
                                  "--list`; keys: {})", policy, key, suggestion(key), known_keys));
  }
  if (v.empty()) throw PolicyError(fmt::format("policy '{}': {}: no value after '='", policy, key));
  if (key == "in") {
    p.input = format_field(policy, key, v);
  } else if (key == "prod") {
    seen.product = true;
    if (v == "exact") p.product.reset();
    else p.product = format_field(policy, key, v);
  } else if (key == "prodround") {
    p.product_rounding = rounding_field(policy, key, v);
  } else if (key == "acc") {
    if (v == "exact") p.acc.reset();
    else p.acc = format_field(policy, key, v);
  } else if (key == "round") {
    p.acc_rounding = rounding_field(policy, key, v);
  } else if (key == "order") {
    const auto colon = v.find(':');
    const std::string_view name = v.substr(0, colon);
    const std::string_view arg = colon == std::string_view::npos ? std::string_view{} : v.substr(colon + 1);
    if (name == "seq" || name == "sequential") p.order = Order::sequential, p.block = 0;
    else if (name == "pairwise") p.order = Order::pairwise, p.block = 0;
    else if (name == "blocked") p.order = Order::blocked;
    else if (name == "splitk") p.order = Order::splitk;
    else
      throw PolicyError(fmt::format("policy '{}': order: unknown order '{}' (known: seq, pairwise, blocked:L, "
                                    "splitk:S)", policy, v));
    const bool needs_arg = p.order == Order::blocked || p.order == Order::splitk;
    if (needs_arg != !arg.empty())
      throw PolicyError(fmt::format("policy '{}': order: '{}' {}", policy, v,
                                    needs_arg ? "needs a length, e.g. blocked:32 or splitk:4" : "takes no argument"));
    if (needs_arg) p.block = parse_positive(policy, "order", arg, 1 << 30);
  } else if (key == "fma") {
    if (v == "yes" || v == "true" || v == "1") p.fma = true;
    else if (v == "no" || v == "false" || v == "0") p.fma = false;
    else throw PolicyError(fmt::format("policy '{}': fma: '{}' is not yes or no", policy, v));
  } else if (key == "tc") {
    p.tc.k = v == "0" || v == "off" ? 0 : parse_positive(policy, key, v, 64);
  } else if (key == "tcbits") {
    p.tc.bits = parse_positive(policy, key, v, 46);
  } else if (key == "tcalign") {
    if (v == "trunc" || v == "rz") p.tc.align_truncates = true;
    else if (v == "rne") p.tc.align_truncates = false;
    else throw PolicyError(fmt::format("policy '{}': tcalign: '{}' is not trunc or rne", policy, v));
  } else if (key == "tcexp") {
    if (v == "product") p.tc.align_operands = false;
    else if (v == "operands") p.tc.align_operands = true;
    else throw PolicyError(fmt::format("policy '{}': tcexp: '{}' is not product or operands", policy, v));
  } else if (key == "tcunpack") {
    p.tc.unpack = format_field(policy, key, v);
  } else if (key == "tcacc") {
    p.tc.acc = format_field(policy, key, v);
  } else if (key == "tcdeal") {
    p.tc.deal = parse_positive(policy, key, v, 64);
  } else if (key == "tcround") {
    p.tc.rounding = rounding_field(policy, key, v);
  } else if (key == "out") {
    seen.output = true;
    p.output = format_field(policy, key, v);
  } else if (key == "outround") {
    p.output_rounding = rounding_field(policy, key, v);
  } else {
    throw PolicyError(fmt::format("policy '{}': unknown key '{}'{} (keys: {})", policy, key, suggestion(key), known_keys));
  }
}

}  // namespace

std::string_view order_name(Order o) {
  switch (o) {
    case Order::sequential: return "seq";
    case Order::pairwise: return "pairwise";
    case Order::blocked: return "blocked";
    case Order::splitk: return "splitk";
  }
  return "?";
}

AccumPolicy parse_policy(std::string_view text) {
  const std::string_view policy = trim(text);
  if (policy.empty()) throw PolicyError("empty accumulation policy (e.g. fp16-fp32acc or in=fp16,acc=fp32)");
  AccumPolicy p;
  p.input = parse_format("fp32");
  p.acc = parse_format("fp32");
  Seen seen;
  apply_all(p, seen, policy, policy, true);
  if (!seen.output) p.output = p.acc ? *p.acc : parse_format("fp64");
  if (!seen.product && !p.fma && p.acc) p.product = p.acc;
  if (std::string bad = validate(p); !bad.empty()) throw PolicyError(fmt::format("policy '{}': {}", policy, bad));
  return p;
}

std::string validate(const AccumPolicy& p) {
  if (p.fma && p.product)
    return fmt::format("prod: a product rounded to {} cannot be fused; write nofma, or drop prod", p.product->name);
  if ((p.order == Order::blocked || p.order == Order::splitk) && p.block < 1)
    return fmt::format("order: {} needs a positive length", order_name(p.order));
  if (p.tc.k > 0) {
    if (!p.acc) return "tc: the tensor-core model needs an accumulator format (acc=exact has none)";
    if (p.order == Order::pairwise) return "tc: the tensor-core model chains its steps; order=pairwise does not apply";
    if (p.product) return "tc: tensor cores form exact products; drop prod";
    if (p.tc.k > 64) return fmt::format("tc: {} products per step is more than the 64 supported", p.tc.k);
    if (p.tc.bits < 2 || p.tc.bits > 46) return fmt::format("tcbits: {} is outside 2..46", p.tc.bits);
    if (p.tc.deal > 0 && p.order != Order::blocked)
      return "tcdeal: dealing terms to the steps of a chunk needs order=blocked:L";
    if (p.tc.deal > 0 && p.tc.k % p.tc.deal != 0)
      return fmt::format("tcdeal: runs of {} do not divide the {} products of a step", p.tc.deal, p.tc.k);
    if (p.tc.unpack) {
      const FormatSpec &u = p.tc.unpack->spec, &in = p.input.spec;
      const auto lowest = [](const FormatSpec& f) { return f.subnormals ? f.emin - f.precision + 1 : f.emin; };
      if (u.precision < in.precision || u.emin > in.emin || u.emax < in.emax || lowest(u) > lowest(in))
        return fmt::format("tcunpack: {} does not hold every value of the input format {}", p.tc.unpack->name,
                           p.input.name);
    }
  } else if (p.tc != TensorCoreModel{}) {
    return "tcbits/tcalign/tcround/tcexp/tcunpack/tcacc/tcdeal: these set the tensor-core model; give tc=K too";
  }
  // Stochastic rounding draws on the value rounded to odd at 53 bits: formats of at most 51 bits.
  const auto sr_too_wide = [](const std::optional<Format>& f, Rounding r) {
    return f && r == Rounding::stochastic && f->spec.precision > 51;
  };
  if (sr_too_wide(p.product, p.product_rounding)) return "prodround: stochastic rounding needs a format of <= 51 bits";
  if (sr_too_wide(p.acc, p.acc_rounding)) return "round: stochastic rounding needs a format of <= 51 bits";
  if (sr_too_wide(p.tc.acc, p.tc.rounding)) return "tcround: stochastic rounding needs a format of <= 51 bits";
  if (sr_too_wide(p.acc, p.tc.rounding)) return "tcround: stochastic rounding needs a format of <= 51 bits";
  if (sr_too_wide(p.output, p.output_rounding)) return "outround: stochastic rounding needs a format of <= 51 bits";
  return "";
}

std::uint32_t tensor_core_acc_mask(const AccumPolicy& p) {
  if (!p.tc.acc || p.tc.acc->spec == formats::fp32) return ~std::uint32_t{0};
  const FormatSpec& f = p.tc.acc->spec;
  if (p.tc.rounding != Rounding::toward_zero || f.emax != formats::fp32.emax || f.emin != formats::fp32.emin ||
      !f.subnormals || f.encoding != Encoding::ieee || f.overflow != Overflow::infinity || f.precision > 24 ||
      f.precision < 2)
    return 0;
  return ~((std::uint32_t{1} << (24 - f.precision)) - 1);
}

std::string to_string(const AccumPolicy& p) {
  std::string s = fmt::format("in={}", p.input.name);
  if (p.product) s += fmt::format(",prod={},prodround={}", p.product->name, short_name(p.product_rounding));
  else s += ",prod=exact";
  s += fmt::format(",acc={},round={}", p.acc ? p.acc->name : "exact", short_name(p.acc_rounding));
  s += fmt::format(",order={}", order_name(p.order));
  if (p.order == Order::blocked || p.order == Order::splitk) s += fmt::format(":{}", p.block);
  s += p.fma ? ",fma" : ",nofma";
  if (p.tc.k > 0)
    s += fmt::format(",tc={},tcbits={},tcalign={},tcround={}{}", p.tc.k, p.tc.bits, p.tc.align_truncates ? "trunc" : "rne",
                     short_name(p.tc.rounding), p.tc.align_operands ? ",tcexp=operands" : "");
  if (p.tc.unpack) s += fmt::format(",tcunpack={}", p.tc.unpack->name);
  if (p.tc.acc) s += fmt::format(",tcacc={}", p.tc.acc->name);
  if (p.tc.deal > 0) s += fmt::format(",tcdeal={}", p.tc.deal);
  s += fmt::format(",out={},outround={}", p.output.name, short_name(p.output_rounding));
  return s;
}

const std::vector<PolicyPreset>& policy_presets() { return presets; }

}  // namespace lpsim
