// The decoder of "Numerical Error Analysis of Large Language Models" (arXiv 2503.10251): one head, RMSNorm, a
// two-layer ReLU perceptron, no biases. TOML only; its checkpoints use GPT-2's names.
#include "lpsim/model/family.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c;
  c.arch = "decoder002";
  c.norm = NormKind::rmsnorm;
  c.activation = Activation::relu;
  c.heads = 1;
  c.causal = true;
  c.bias = false;
  c.width = 64;
  c.ffn = 256;
  c.tokens = 32;
  return c;
}

}  // namespace

extern const Family family_decoder002{.arch = "decoder002",
                                      .model_types = {},
                                      .summary = "decoder002: single-head RMSNorm/ReLU decoder without biases",
                                      .defaults = defaults,
                                      .checkpoint_family = "gpt2"};

}  // namespace lpsim
