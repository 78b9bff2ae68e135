#pragma once
// The product of two block-scaled operands (format/block_scale.hpp quantises them): partial sums per k-block under
// an accumulation policy, then the scales' promotion in fp32, as the hardware and DeepSeek's recipe do.
#include <vector>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/accum/policy.hpp"
#include "lpsim/format/block_scale.hpp"

namespace lpsim {

// C (m x n) = A B with A quantised along its rows (axis 1) and B along its columns (axis 0), both with blocks of the
// same length along k. For each output element and each k-block b: the partial sum of the elements' products under
// `policy` (its input must hold the element values; the partial is kept in its accumulator format), then
// acc = fp32(partial * fp32(scale_A * scale_B) + acc) with one rounding (an fma; DeepSeek's promotion to CUDA
// cores; exact scaling for power-of-two scales); at the end, with per-tensor scales (nvfp4), acc times
// alpha = fp32(fp32(A_A A_B) / 2688^2) with A the tensors' amaxes, as Transformer Engine's NVFP4 GEMM. int8-rowwise
// operands (one scale per row of A and column of B over all of k) take vLLM's scaled_mm epilogue instead:
// D = fp32(s_A * fp32(s_B * fp32(A B))), the exact integer sum converted to float once (CUTLASS's ScaledEpilogue:
// Compute0 = scale_b * accum, Compute1 = scale_a * that; int32 overflow beyond 2^31 is not modelled). Returns fp32 values. With a device (accum/gemm.hpp's GemmDevice), the partial products run on it (the
// same bits); the promotion stays here.
std::vector<double> block_scaled_gemm(const AccumPolicy& policy, const BlockQuantized& a, const BlockQuantized& b,
                                      GemmDevice* device = nullptr);

// The same with every step in MPFR (reference_dot for the partials, exact products and sums rounded once): the
// definition the fast path is tested against.
std::vector<double> reference_block_scaled_gemm(const AccumPolicy& policy, const BlockQuantized& a,
                                                const BlockQuantized& b);

}  // namespace lpsim
