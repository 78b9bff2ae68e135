#pragma once
// The definition of every accumulation policy: one scalar step at a time, each step's exact value computed by
// MPFR (at a precision wide enough that nothing is rounded) and rounded once by mpfr_round.hpp. Slow and plain on
// purpose; every fast kernel must agree with it bit for bit.
#include <cstdint>
#include <span>

#include "lpsim/accum/policy.hpp"
#include "lpsim/format/array_round.hpp"

namespace lpsim {

// sum_t a[t]*b[t] under the policy; a and b hold values of policy.input. `element` numbers the dot product within
// a matrix product (i*n + j), for the stochastic-rounding stream (sr_slots.hpp).
double reference_dot(const AccumPolicy& policy, std::span<const double> a, std::span<const double> b,
                     const StochasticStream& sr = {}, std::uint64_t element = 0);

// c + sum_t a[t]*b[t]: the accumulation continues from c (a value of policy.acc, which must not be exact) as a
// matrix unit's D = A B + C does, and the accumulator is returned without the output rounding. The first chunk
// starts from c: sequential round(c + p_0); tensor core c is the first step's accumulator; pairwise round(c + the
// pairwise sum, stochastic word of chunk 0). Flash attention's P V update (layers.hpp) is built on it.
double reference_accumulate_dot(const AccumPolicy& policy, double c, std::span<const double> a,
                                std::span<const double> b, const StochasticStream& sr = {}, std::uint64_t element = 0);

// c (m x n) = a (m x k) * b (k x n), row-major, each element by reference_dot.
void reference_gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const double> a,
                    std::span<const double> b, std::span<double> c, const StochasticStream& sr = {});

}  // namespace lpsim
