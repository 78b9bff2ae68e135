#pragma once
// A precision plan: for each operation class of the forward, where its values live and how they are computed.
//
// Semantics (the emulated backend, emulated_backend.hpp, is the executable definition; docs/MODELS.md the prose):
// - GEMM classes (embed, qkv, score, pv, out_proj, ffn_up, ffn_down): operands (activations and weights) are
//   rounded to gemm.input on entry, optionally after a per-tensor power-of-two scale (fp8); the product runs
//   under the accumulation policy `gemm`; without bias or scale its result is rounded straight to `out`, with
//   them the result is taken in `compute`, unscaled and the bias (a value of `out`) added in `compute`, then
//   rounded to `out`.
// - Elementwise maths (scaling, softmax, normalisation, activation, residual add) rounds every arithmetic step to
//   `compute`; exp, erf, tanh-GELU and 1/sqrt are modelled correctly rounded in `compute`; the op's result is then
//   rounded to `out`.
// - Sums inside softmax and normalisation run under `reduce` (its input and output are set to `compute`).
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lpsim/accum/policy.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/format.hpp"
#include "lpsim/format/rounding.hpp"

namespace lpsim {

// rope: the rotary embedding's q*cos + rotate_half(q)*sin (every step rounded to compute, as PyTorch's three
// elementwise kernels do); lm_head: the final projection onto the vocabulary. Mixture of experts: router is the
// router's GEMM (its logits), route the softmax over them, the renormalisation of the selected weights and the
// product of an expert's output with its weight (transformers takes `router_logits.float()`: fp32 in every preset
// but fp64).
enum class Op : std::uint8_t {
  embed, qkv, score, scale, softmax, pv, out_proj, ffn_up, ffn_down, act, norm, residual, rope, lm_head, router, route
};
inline constexpr int op_count = 16;
inline constexpr Op all_ops[op_count] = {Op::embed,  Op::qkv,      Op::score,    Op::scale,    Op::softmax, Op::pv,
                                         Op::out_proj, Op::ffn_up, Op::ffn_down, Op::act,      Op::norm,    Op::residual,
                                         Op::rope,   Op::lm_head,  Op::router,   Op::route};
std::string_view op_name(Op op);
bool is_gemm(Op op);
bool has_reduction(Op op);

// Scaling of an elementwise op's stored result into its format (fp8 logits, arXiv 2602.18851): y = round(v s) / s with s a
// power of two from the tensor's own amax (current), the largest amax of the same tensor (op, layer, head) in the
// last 16 forwards (delayed, Transformer Engine's recipe; the first forward uses its own), or a bound known before the data
// (geometry: set by the caller per layer, e.g. arXiv 2602.18851's logit bound).
// blocks: the stored tensor is block-scaled along its rows by OpPrecision::blocks (1 x block tiles, e.g. MXFP8 logits).
enum class OutputScaling : std::uint8_t { none, current, delayed, geometry, blocks };

// The largest power of two s with magnitude * s <= max (1 when magnitude is 0 or not finite): a per-tensor scale
// that is exact to apply and to undo.
inline double pow2_scale_within(double max, double magnitude) {
  if (!(magnitude > 0) || !std::isfinite(magnitude)) return 1;
  int e = 0;
  std::frexp(max / magnitude, &e);  // max / magnitude = m 2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 1);
}

struct OpPrecision {
  std::optional<AccumPolicy> gemm;    // GEMM classes only
  Format compute;                     // elementwise steps, bias epilogues
  Format out;                         // storage of the result
  Rounding rounding = Rounding::nearest_even;  // of compute and out roundings
  std::optional<AccumPolicy> reduce;  // softmax and normalisation sums
  bool scaling = false;               // per-tensor power-of-two scaling of the GEMM operands (fp8)
  // Block scaling of the GEMM operands (block_scale.hpp): activations (and both operands of score and pv) in 1 x block
  // tiles along k, weights by weight_blocks when set (DeepSeek's 128 x 128), else by blocks. The policy then sums
  // each block's elements (its input must hold them) and the partials are promoted in fp32 with the scales.
  std::optional<BlockScheme> blocks, weight_blocks;
  // Weight-only quantisation (W4A16, W8A16; docs/MODELS.md): the weights are quantised by this scheme along k
  // (int4 groups with fp16 scales and zero points, MXFP4, NVFP4, fp8 tiles), dequantised and cast to the policy's
  // input format, as the kernels that serve such checkpoints feed their half-precision MMA; activations as the plan.
  std::optional<BlockScheme> weight_only;
  OutputScaling out_scaling = OutputScaling::none;  // elementwise classes only
  // act only: an activation the model computes as a chain of framework ops (ModelConfig::activation_chain) has
  // every step rounded to `out`, as PyTorch does for half tensors outside autocast (pure presets set it).
  bool composite = false;
};

// How attention is computed (docs/MODELS.md, "Attention kernels"). math: the textbook S = Q K^T stored, scaled,
// softmax stored, P V (each class as the plan says). flash: one fused kernel as PyTorch's scaled_dot_product_attention
// runs it on Hopper: per key tile of block_k keys, S = Q K_tile^T stays in the score class's accumulator, is
// multiplied by the fp32 scale, a running row maximum and sum and exp(x - m) are kept in the softmax class's
// compute format, P = exp(x - m) is rounded to the pv class's input when the P V product takes it, the output
// accumulator is rescaled by exp(m_old - m_new) and continues through the pv class's accumulation (D = P V + C), and
// at the end it is divided by the running sum and rounded once to the pv class's out.
struct AttentionKernel {
  enum class Kind : std::uint8_t { math, flash };
  Kind kind = Kind::math;
  int block_k = 128;     // keys per tile
  bool reverse = false;  // key tiles from last to first (FlashAttention-2's loop); false: first to last
  friend bool operator==(const AttentionKernel&, const AttentionKernel&) = default;
};

// The KV cache (docs/MODELS.md, "KV cache"): the keys (after QK-norm and rotation) and the values of every layer
// stored in a narrow format between their projection and attention, as serving engines keep them, and read back
// dequantised: element * scale in fp32, rounded to the qkv class's out (the dtype attention computes in), as vLLM's
// fp8 cache does ("dequantize-then-attend"). Either a format with a scale, or a block scheme along each row of the
// layer's keys (values), every head's head_dim a whole number of blocks.
struct KvCache {
  enum class Scale : std::uint8_t { fixed, tensor, head };
  std::optional<Format> format;  // e4m3, e5m2, ...: x / scale rounded to nearest even, saturating (SATFINITE)
  // fixed: fixed_scale (vLLM's 1.0 where a checkpoint has no calibrated k_scale/v_scale); tensor: fp32(amax / max)
  // over the layer's keys (values), all heads; head: the same per key/value head. amax 0 gives the scale 1.
  Scale scale = Scale::tensor;
  double fixed_scale = 1;
  std::optional<BlockScheme> blocks;  // instead of format: 1 x block tiles along the rows (nvfp4, mxfp8, ...)
  bool active() const { return format.has_value() || blocks.has_value(); }
};

struct PrecisionPlan {
  std::string name;
  std::array<OpPrecision, op_count> ops;
  const OpPrecision& operator[](Op op) const { return ops[static_cast<int>(op)]; }
  OpPrecision& operator[](Op op) { return ops[static_cast<int>(op)]; }
  // The parameters outside GEMMs (embedding tables, positions, class token, biases, norm gains and shifts) are
  // rounded to this format before the forward, as model.half() / model.to(bfloat16) do (pure presets; unset: as
  // stored). GEMM weights are rounded by their policy's input format anyway.
  std::optional<Format> params;
  AttentionKernel attention;
  KvCache kv_cache;
  // The smallest unit roundoff among the storage formats of GEMM inputs: the eps_mach of the papers' scaling.
  double unit_roundoff() const;
};

// fp64, fp32, autocast-fp16, autocast-bf16, pure-fp16, pure-bf16, fp8-e4m3, the block-scaled mxfp8, mxfp4,
// nvfp4, fp8-deepseek, the weight-only w4a16-int4-g128, w4a16-mxfp4, w4a16-nvfp4, w8a16-fp8, and w8a8-int8 (docs/MODELS.md and
// docs/BLOCKSCALE.md say what each models),
// each with an optional "+flash" (attention by the flash kernel, as PyTorch's sdpa runs on Hopper: autocast-fp16+flash)
// and an optional KV cache suffix: +kv-fp8 (E4M3, one dynamic scale per layer's keys and values), +kv-fp8-head
// (per key/value head), +kv-fp8-unit (scale 1: vLLM without calibrated scales), +kv-nvfp4 (autocast-bf16+kv-fp8).
const std::vector<std::string>& plan_preset_names();
PrecisionPlan plan_preset(std::string_view name);  // throws ConfigError with a suggestion

// A preset name, or a TOML file with a [plan] table: preset = "...", rounding = "...", then one table per operation
// class with keys policy, compute, out, reduce, rounding, scaling, out_scaling (none|current|delayed|geometry). Throws ConfigError naming file, line and key.
PrecisionPlan load_plan(const std::string& name_or_file);
PrecisionPlan parse_plan(std::string_view toml_text, const std::string& file_name);
// True when the TOML text has a [plan] table (a model file may carry its own plan).
bool has_plan_table(std::string_view toml_text, const std::string& file_name);

// What a plan cannot compute for a model, named ("" when it can): the flash kernel has no score scalar or
// soft-capping (Gemma). Studies and sweeps refuse such a pair before any work.
struct ModelConfig;
std::string plan_model_problem(const ModelConfig& cfg, const PrecisionPlan& plan);

// One line per operation class, for `lpsim run --show-plan` and the manifest.
std::string describe(const PrecisionPlan& plan);

}  // namespace lpsim
