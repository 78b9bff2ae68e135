#pragma once
// One warp's chain of mma.sync instructions, the building block of a CUDA-core-free GEMM: D = A (16 x K) B (K x 8)
// accumulated in fp32 registers from zero, K/16 steps of m16n8k16 (fp16, bf16) or K/32 steps of m16n8k32 (fp8).
#include <string>
#include <vector>

namespace lpsim::cuda {

// format: fp16, bf16, e4m3, e5m2. a: tiles x 16 x k, b: tiles x k x 8 (row-major floats holding values of the
// format), result tiles x 16 x 8. Throws std::runtime_error with the CUDA error text.
std::vector<float> mma_chain(const std::string& format, int tiles, int k, const std::vector<float>& a,
                             const std::vector<float>& b);

}  // namespace lpsim::cuda
