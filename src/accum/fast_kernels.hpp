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

void fast_gemm(const AccumPolicy& p, GemmPath path, int m, int n, int k, const float* a, const float* b, float* c);

}  // namespace lpsim::accum
