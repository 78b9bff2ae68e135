#pragma once
// A Hugging Face model directory (config.json beside model.safetensors or model.safetensors.index.json) as an lpsim
// model: GPT-2, ViT, Llama, Mistral and Qwen2, as transformers 4.x and 5.x write them (5.x moves rope_theta and
// rope_scaling into rope_parameters). docs/MODELS.md lists which config.json field sets which lpsim key.
#include <string>

#include "lpsim/model/model_config.hpp"

namespace lpsim {

// Throws ConfigError naming the directory and the field (missing, wrong type, or a setting lpsim does not model).
ModelConfig model_config_from_hf(const std::string& dir);

}  // namespace lpsim
