#pragma once
// The Llama family's pieces that its descendants (Qwen3, ...) start from: their files under families/ call these
// and add what differs. Not a family itself (the registry takes families/*.cpp).
#include <string_view>

#include "lpsim/model/family.hpp"

namespace lpsim::llama_family {

ModelConfig defaults();
// config.json's sizes, norm, head, activation, biases and rope, as LlamaConfig reads them; head_dim's fallback is
// the class's default where it is not width / heads (Qwen3Config: 128).
void read_fields(const HfFields& f, std::string_view type, ModelConfig& c, int head_dim_fallback = 0);
// The tensor names of LlamaForCausalLM (and of q_norm/k_norm where the config has them).
CheckpointLayout layout(const ModelConfig& c);

}  // namespace lpsim::llama_family
