#pragma once
// PyTorch's scaled_dot_product_attention on the GPU (scripts/sdpa_probe.py saves q, k, v and its outputs) against
// lpsim's emulation of the same call: the share of output elements with the GPU's bits and both errors against the
// exact attention. How the flash kernel's model (plan.hpp, AttentionKernel) was chosen, and kept honest in CI.
#include <string>
#include <vector>

#include "lpsim/model/plan.hpp"

namespace lpsim {

struct SdpaComparison {
  std::string file, output;     // output: out_default (what sdpa selects) or out_flash (FlashAttention-2 forced)
  std::string dtype;            // fp16 or bf16
  int heads = 0, tokens = 0, head_dim = 0;
  bool causal = false;
  double same_bits = 0;         // share of output elements equal to the GPU's
  double observed = 0;          // ||O_gpu - O||_F / ||O||_F, O the exact attention of the same (rounded) q, k, v
  double predicted = 0;         // the same for lpsim's output
  double ratio() const { return predicted / observed; }
};

// One row per tensor file (DIR/tensors/*.safetensors, named <dtype>-d<d>-n<tokens>-<causal|full>) and output,
// emulated under the preset autocast-<dtype> with `kernel` as its attention.
std::vector<SdpaComparison> compare_sdpa_observations(const std::string& dir, const AttentionKernel& kernel);

}  // namespace lpsim
