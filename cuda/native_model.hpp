#pragma once
// Plain data the native CUDA forward takes (C++17, no lpsim headers: nvcc compiles the .cu files as C++17).
// native_adapter.hpp builds these from lpsim's ModelConfig, Weights and PrecisionPlan.
#include <array>
#include <vector>

namespace lpsim::cuda {

enum class NativeFormat { fp32, fp16, bf16 };
// How a GEMM kernel accumulates each output element, always sequentially over k in increasing order:
// fp32 fmaf from the first product (a CUDA-core loop), or __hfma in the operand format (half accumulation).
enum class NativeAccum { fma_fp32, fma_operand };

struct NativeGemm {
  NativeFormat in = NativeFormat::fp32;
  NativeAccum accum = NativeAccum::fma_fp32;
};

// Indexed by lpsim::Op (embed, qkv, score, scale, softmax, pv, out_proj, ffn_up, ffn_down, act, norm, residual).
struct NativePlan {
  std::array<NativeGemm, 12> gemm{};
  std::array<NativeFormat, 12> out{};
  // attention = "flash" (lpsim's AttentionKernel): one fused kernel per head and query row, tiles of block_k keys.
  bool flash = false;
  int block_k = 128;
  bool reverse = false;
};

struct NativeLayer {  // matrices row-major, in x out as in lpsim
  std::vector<float> wq, wk, wv, wo, bq, bk, bv, bo, g1, beta1, g2, beta2, w1, b1, w2, b2;
};

struct NativeModel {
  int width = 0, heads = 0, ffn = 0, depth = 0, tokens = 0;
  bool layernorm = true, pre = true, causal = false;
  int activation = 0;  // 0 gelu (erf), 1 gelu_tanh, 2 relu
  double eps = 1e-5;
  int embedding = 0;   // 0 none, 1 patch, 2 tokens
  bool class_token = false;
  int patch_dim = 0, patches = 0;
  std::vector<float> patch_w, patch_b, cls, pos, wte;
  std::vector<NativeLayer> layers;
  std::vector<float> x;   // input rows (embedding none: tokens x width; patch: patches x patch_dim)
  std::vector<int> ids;   // token ids
};

// The forward on the GPU with deterministic kernels; returns the taps layer-major (attn, mid, ffn, block), each
// tokens x width. Throws std::runtime_error with the CUDA error text.
std::vector<std::vector<float>> native_forward(const NativeModel& m, const NativePlan& plan);

}  // namespace lpsim::cuda
