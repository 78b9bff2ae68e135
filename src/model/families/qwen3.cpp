// Qwen3 (model_type "qwen3"): the Llama block with QK-norm, an RMSNorm (LlamaRMSNorm's cast, its own gains, the
// model's eps) over each query and key head after the projections and before RoPE; head_dim is its own field
// (Qwen3Config's default 128, not width / heads); no biases. Sliding-window layers are refused.
#include <fmt/format.h>

#include "lpsim/model/family.hpp"
#include "model/families/llama.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c = llama_family::defaults();
  c.arch = "qwen3";
  c.qk_norm = true;
  c.rope.theta = 1000000;
  return c;
}

void from_hf(const HfFields& f, std::string_view type, ModelConfig& c) {
  llama_family::read_fields(f, type, c, 128);
  c.qk_norm = true;
  if (f.boolean("use_sliding_window", false)) f.fail("use_sliding_window", "= true is not modelled");
  if (f.has("layer_types")) {  // 5.x lists each layer's attention; only full attention is modelled
    const auto& types = f.json().at("layer_types");
    if (!types.is_array()) f.fail("layer_types", "must be a list");
    for (const auto& t : types)
      if (t != "full_attention") f.fail("layer_types", fmt::format("holds {}: only \"full_attention\" is modelled", t.dump()));
  }
}

}  // namespace

extern const Family family_qwen3{.arch = "qwen3",
                                 .model_types = {"qwen3"},
                                 .summary = "qwen3: Qwen3 (the Llama block with per-head RMSNorm of queries and keys)",
                                 .defaults = defaults,
                                 .from_hf = from_hf,
                                 .layout = llama_family::layout,
                                 .checkpoint_family = {}};

}  // namespace lpsim
