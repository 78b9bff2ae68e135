#pragma once
// The Llama family's pieces that its descendants (Qwen3, ...) start from: their files under families/ call these
// and add what differs. Not a family itself (the registry takes families/*.cpp).
#include <array>
#include <string>
#include <string_view>

#include "lpsim/model/family.hpp"

namespace lpsim::llama_family {

ModelConfig defaults();
// config.json's sizes, norm, head, activation, biases and rope, as LlamaConfig reads them; head_dim's fallback is
// the class's default where it is not width / heads (Qwen3Config: 128).
void read_fields(const HfFields& f, std::string_view type, ModelConfig& c, int head_dim_fallback = 0);
// The tensor names of LlamaForCausalLM (and of q_norm/k_norm where the config has them).
CheckpointLayout layout(const ModelConfig& c);
// The layout with a mixture of experts in place of the MLP (Mixtral, Qwen3-MoE): the router's weight named `router`,
// each expert under `expert` ({} its index) with its gate, up and down projections named gate_up_down, or the
// experts stacked as transformers 5 holds them (mlp.experts.gate_up_proj and down_proj, the router mlp.gate).
void with_experts(CheckpointLayout& l, std::string router, std::string expert, const std::array<std::string, 3>& gate_up_down);

}  // namespace lpsim::llama_family
