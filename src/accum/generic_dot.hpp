#pragma once
// The portable kernel of every policy: one output element at a time, each step in double arithmetic made exact
// (products of <= 26-bit operands are exact doubles; a sum's exact error comes from TwoSum and turns the double
// result into its round-to-odd at 53 bits, which rounds correctly to any format of <= 51 bits). It computes what
// dot_reference.cpp defines, bit for bit, at a few ns per step instead of a few us.
#include <cmath>
#include <cstdint>

#include "lpsim/accum/policy.hpp"
#include "lpsim/accum/sr_slots.hpp"
#include "lpsim/format/round_core.hpp"

namespace lpsim::accum {

// The policy with its accumulator turned into rounding parameters, once per matrix product (products and the
// output round once per term or element, through round_to).
struct GenericPlan {
  const AccumPolicy* policy;
  RoundParams<double> acc;
  bool acc_is_binary64_rne;  // binary64 RNE steps are plain double arithmetic (no round-to-odd needed)
};

// Whether generic_dot computes the policy exactly (else the MPFR reference must do it).
bool generic_supports(const AccumPolicy& p);
GenericPlan make_generic_plan(const AccumPolicy& p);

// The policy's dot product of a[0..k) and b[0..k) (values of the input format), for output element `element`.
double generic_dot(const GenericPlan& g, const double* a, const double* b, int k, const SrSlots& slots);

// c + a.b: the same, with the first chunk's accumulation starting from c (a value of the accumulator) and the
// result left in the accumulator, not rounded to the output (reference_accumulate_dot defines it).
double generic_accumulate_dot(const GenericPlan& g, double c, const double* a, const double* b, int k,
                              const SrSlots& slots);

// One step of the tensor-core model: terms[0] is the accumulator c, terms[1..n) the exact products of the step.
// `random` feeds tc.rounding when it is stochastic.
// exps, when given, are the alignment exponents of the terms (tc.align_operands); else each term's own.
double tensor_core_step(const double* terms, int n, const AccumPolicy& p, std::uint64_t random,
                        const int* exps = nullptr);

// The alignment exponent of the product a*b under tc.align_operands: e(a) + e(b), subnormals at the format's emin.
int operand_exponent_sum(double a, double b, const AccumPolicy& p);

}  // namespace lpsim::accum
