#pragma once
// An architecture family as one description: the TOML `arch` and Hugging Face `model_type`s it answers to, the
// defaults of its recipe (the ModelConfig fields the one forward reads: norm kind and placement, attention options,
// MLP kind, biases, head), how config.json's fields map onto that recipe, and how a checkpoint names its tensors.
// The loader (hf_config.cpp, checkpoint_weights.cpp) and the forward (forward.hpp) read descriptions only; a family
// is one file under src/model/families/, found by the registry CMake writes from that folder (docs/DESIGN.md).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lpsim/model/model_config.hpp"

namespace lpsim {

class HfFields;  // src/model/hf_fields.hpp: typed reads of config.json naming the field in every error

// A parameter of one block, as LayerWeights holds it (in x out matrices, vectors, norms).
enum class LayerParam : std::uint8_t {
  wq, wk, wv, wo, w1, w3, w2, bq, bk, bv, bo, b1, b2, norm1, norm2, q_norm, k_norm, router, post_norm1, post_norm2
};

// How a stored matrix is laid out: nn.Linear's out x in (read transposed) or GPT-2's Conv1D in x out.
enum class Stored : std::uint8_t { out_in, in_out };

// One tensor of a block, named after the layer's prefix. Several parts are concatenated along the output axis
// (GPT-2's c_attn holds q, k and v; Phi-3's qkv_proj likewise; a fused gate_up_proj holds gate then up). A norm's
// name is its module: ".weight" (gamma), ".bias" (beta, LayerNorm only) and lpsim's optional ".eps" follow it.
struct LayerTensor {
  std::string name;
  std::vector<LayerParam> parts;
  Stored stored = Stored::out_in;
};

// How a checkpoint names the family's tensors, for a given config (biases and norms present or not).
struct CheckpointLayout {
  std::vector<std::string> prefixes;  // the base model's prefix, tried in order ("transformer.", "model.", ...)
  std::string layer;                  // a block's prefix, with {} for its index ("layers.{}.")
  std::vector<LayerTensor> block;     // every tensor of a block present under this config
  std::string token_embedding;        // vocab x width ("" without one)
  std::string positions;              // GPT-2's learned positions (>= tokens rows x width)
  std::string patch_projection;       // ViT's patch convolution (module name: .weight and .bias)
  std::string class_token, patch_positions;  // [1, 1, width], [1, tokens, width]
  std::string final_norm;             // a norm module, as in `block`
  // Mixture of experts: each expert's tensors (parts w1, w3, w2 of its LayerWeights) under a block's prefix plus
  // `expert` with {} for its index, the router's weight (nn.Linear's experts x width) named `router`; or the experts
  // stacked as transformers 5 holds them: `fused_experts` + "gate_up_proj" [experts, 2 f, width] (gate rows, then
  // up) and + "down_proj" [experts, width, f], with the router named `fused_router`.
  std::string expert, router;
  std::vector<LayerTensor> expert_block;
  std::string fused_experts, fused_router;
  // Tensors a directory may hold that are not parameters of the forward (buffers, a pooler, a classifier).
  std::vector<std::string> ignored_prefixes, ignored_suffixes;
};

struct Family {
  std::string_view arch;                     // the TOML `arch` (models/*.toml)
  std::vector<std::string_view> model_types;  // config.json's model_type values it reads (none: TOML only)
  std::string_view summary;                  // one line for errors and docs
  ModelConfig (*defaults)();                 // the recipe and sizes a TOML file starts from
  // Maps config.json onto a default-constructed config (arch set); refuses by field name what is not modelled.
  void (*from_hf)(const HfFields& fields, std::string_view model_type, ModelConfig& c) = nullptr;
  CheckpointLayout (*layout)(const ModelConfig& c) = nullptr;  // nullptr: another family's (checkpoint_family)
  std::string_view checkpoint_family;        // whose layout this family's checkpoints use when layout is nullptr
};

// Every family, in the order the registry lists them (generated from src/model/families/).
const std::vector<const Family*>& families();
// nullptr when none answers to the name.
const Family* family_by_arch(std::string_view arch);
const Family* family_by_model_type(std::string_view model_type);
std::vector<std::string> family_arch_names();
std::vector<std::string> family_model_types();
// The layout a family's checkpoints use (its own or checkpoint_family's).
CheckpointLayout checkpoint_layout(const Family& f, const ModelConfig& c);

}  // namespace lpsim
