// Mixtral (model_type "mixtral"): Mistral's block with a mixture of experts in place of its MLP: a router over
// num_local_experts experts, a softmax over its logits in fp32, the top num_experts_per_tok renormalised to sum 1
// and kept in fp32, each expert a SwiGLU MLP of intermediate_size (w1 gate, w3 up, w2 down). Checkpoints as they
// ship (block_sparse_moe.experts.E.w1 ...) or as transformers 5 stacks them (mlp.experts.gate_up_proj).
#include "lpsim/model/family.hpp"
#include "model/families/llama.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c = llama_family::defaults();
  c.arch = "mixtral";
  c.experts = 4;
  c.experts_per_token = 2;
  c.router_renormalize = true;
  c.rope.theta = 1000000;
  return c;
}

void from_hf(const HfFields& f, std::string_view, ModelConfig& c) {
  family_by_arch("llama")->from_hf(f, "mistral", c);  // Mistral's fields, sliding_window included
  c.experts = f.integer("num_local_experts", 8);
  c.experts_per_token = f.integer("num_experts_per_tok", 2);
  c.router_renormalize = true;
  // router_jitter_noise multiplies the router's input by noise in training only; the forward studied here is eval.
}

CheckpointLayout layout(const ModelConfig& c) {
  CheckpointLayout l = llama_family::layout(c);
  llama_family::with_experts(l, "block_sparse_moe.gate.weight", "block_sparse_moe.experts.{}.",
                             {"w1.weight", "w3.weight", "w2.weight"});
  return l;
}

}  // namespace

extern const Family family_mixtral{.arch = "mixtral",
                                   .model_types = {"mixtral"},
                                   .summary = "mixtral: Mixtral (Mistral's block with a top-k mixture of SwiGLU experts)",
                                   .defaults = defaults,
                                   .from_hf = from_hf,
                                   .layout = layout,
                                   .checkpoint_family = {}};

}  // namespace lpsim
