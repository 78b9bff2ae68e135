#pragma once
// The AVX-512 matrix-product kernels (fast_kernels_avx512.cpp; fast_kernels_none.cpp where the build has none).
// They handle sequential and chunked orders with operands held in float, vectorised across 16 output columns so
// that each lane keeps its own element's order, and leave the accumulator's value in c (gemm.cpp rounds it to the
// output format).
#include "lpsim/accum/gemm.hpp"
#include "lpsim/accum/policy.hpp"

namespace lpsim::accum {

// The AVX-512 kernel that computes the policy exactly, or GemmPath::generic.
GemmPath fast_path(const AccumPolicy& p);

// The promotion of a block-scaled product (block_scale.hpp), fused into the kernels: each k-block's partial sum,
// the policy's chain from zero, is taken into the output as c = fp32(partial * fp32(sa * sb) + c), one rounding.
// a[i * blocks + kb] is row i's scale for k-block kb (rows padded to a multiple of 16); b[kb * ldb + j] is column
// j's (ldb a multiple of 32, the padding readable). The policy's order must be sequential.
struct BlockScales {
  int block = 0, blocks = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  std::size_t ldb = 0;
};

// c = a b under the policy (accumulator values; gemm.cpp rounds them to the output), or with scales the
// promoted block-scaled product (binary32 values).
void fast_gemm(const AccumPolicy& p, GemmPath path, int m, int n, int k, const float* a, const float* b, float* c,
               const BlockScales* scales = nullptr);

}  // namespace lpsim::accum
