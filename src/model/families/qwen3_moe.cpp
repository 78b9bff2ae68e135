// Qwen3-MoE (model_type "qwen3_moe"): Qwen3's block (QK-norm) with a mixture of experts in every layer: a router over
// num_experts experts, a softmax in fp32, the top num_experts_per_tok, renormalised only with norm_topk_prob, and the
// weights cast to the router logits' dtype before they scale the experts' outputs; each expert a SwiGLU MLP of
// moe_intermediate_size. Dense layers among sparse ones (decoder_sparse_step > 1, mlp_only_layers) are refused.
#include "lpsim/model/family.hpp"
#include "model/families/llama.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c = family_by_arch("qwen3")->defaults();
  c.arch = "qwen3_moe";
  c.experts = 8;
  c.experts_per_token = 2;
  c.expert_ffn = 48;
  c.router_renormalize = false;
  c.router_weights_cast = true;
  return c;
}

void from_hf(const HfFields& f, std::string_view type, ModelConfig& c) {
  family_by_arch("qwen3")->from_hf(f, type, c);
  c.experts = f.integer("num_experts", 128);
  c.experts_per_token = f.integer("num_experts_per_tok", 8);
  c.expert_ffn = f.integer("moe_intermediate_size", 768);
  c.router_renormalize = f.boolean("norm_topk_prob", false);
  c.router_weights_cast = true;
  if (f.integer("decoder_sparse_step", 1) != 1) f.fail("decoder_sparse_step", "other than 1 (dense layers between sparse ones) is not modelled");
  if (f.has("mlp_only_layers") && !f.json().at("mlp_only_layers").empty())
    f.fail("mlp_only_layers", "is not empty: dense layers among the sparse ones are not modelled");
}

CheckpointLayout layout(const ModelConfig& c) {
  CheckpointLayout l = llama_family::layout(c);
  llama_family::with_experts(l, "mlp.gate.weight", "mlp.experts.{}.", {"gate_proj.weight", "up_proj.weight", "down_proj.weight"});
  return l;
}

}  // namespace

extern const Family family_qwen3_moe{.arch = "qwen3_moe",
                                     .model_types = {"qwen3_moe"},
                                     .summary = "qwen3_moe: Qwen3-MoE (Qwen3's block with a top-k mixture of SwiGLU experts)",
                                     .defaults = defaults,
                                     .from_hf = from_hf,
                                     .layout = layout,
                                     .checkpoint_family = {}};

}  // namespace lpsim
