#pragma once
// The portable kernel of every policy: one output element at a time, in double arithmetic made exact. It computes
// what dot_reference.cpp defines, bit for bit, at a few ns per step instead of a few us. The kernel itself lives in
// lpsim/accum/dot_kernel.hpp, shared with the GPU's emulated GEMM.
#include <cstdint>

#include "lpsim/accum/dot_kernel.hpp"
#include "lpsim/accum/policy.hpp"
#include "lpsim/accum/sr_slots.hpp"

namespace lpsim::accum {

// The policy with its formats turned into rounding parameters, once per matrix product.
using GenericPlan = DotPolicy;
inline GenericPlan make_generic_plan(const AccumPolicy& p) { return make_dot_policy(p); }

// Whether generic_dot computes the policy exactly (else the MPFR reference must do it).
bool generic_supports(const AccumPolicy& p);

// The policy's dot product of a[0..k) and b[0..k) (values of the input format), for output element `element`.
inline double generic_dot(const GenericPlan& g, const double* a, const double* b, int k, const SrSlots& slots) {
  return dot_kernel(g, a, b, 1, k, slots);
}

// c + a.b: the same, with the first chunk's accumulation starting from c (a value of the accumulator) and the
// result left in the accumulator, not rounded to the output (reference_accumulate_dot defines it).
inline double generic_accumulate_dot(const GenericPlan& g, double c, const double* a, const double* b, int k,
                                     const SrSlots& slots) {
  return dot_kernel(g, a, b, 1, k, slots, &c);
}

// One step of the tensor-core model (dot_kernel.hpp's tensor_core_step) under the policy: terms[0] is the
// accumulator c, terms[1..n) the exact products. exps, when given, are the terms' alignment exponents.
inline double tensor_core_step(const double* terms, int n, const AccumPolicy& p, std::uint64_t random,
                               const int* exps = nullptr) {
  return tensor_core_step(terms, n, make_dot_policy(p), random, exps);
}

}  // namespace lpsim::accum
