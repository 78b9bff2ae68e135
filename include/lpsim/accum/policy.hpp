#pragma once
// An accumulation policy: everything that decides the value of a dot product once its operands are in a format.
//
// Semantics (the MPFR reference in dot_reference.hpp is the executable definition; docs/ACCUMULATION.md the prose):
// - product p_t = a_t*b_t, exact, or rounded once to `product` (fma implies an exact product);
// - every accumulation step rounds the exact result once to `acc` with `acc_rounding`;
// - sequential: s = round(p_0), then s = round(s + p_t) for t = 1..K-1 (with fma this is fma(a_t, b_t, s));
// - pairwise: leaves round(p_t); the range [lo, hi) splits at lo + n/2 and its halves' sums are added;
// - blocked:L and splitk:S cut K into chunks of L (S chunks of ceil(K/S)); each chunk is summed sequentially (or by
//   the tensor-core model), then the chunk sums are added sequentially in `acc`;
// - tensor core (tc.k > 0): c = TC(c, next k products): the k exact products and c are aligned to the largest
//   exponent among them, each truncated (or rounded) to `tc.bits` bits below and including that leading bit, summed
//   exactly, and the sum rounded once to `acc` with `tc.rounding` (Fasi, Higham, Mikaitis, Pranesh 2021); with
//   tc.align_operands a product's exponent is e(a) + e(b) (e of a subnormal operand: the format's emin), so a
//   product whose significands multiply to [2, 4) keeps one more bit;
// - tc.unpack: the tensor core receives the operands converted to this wider format (Hopper's mma.sync for fp8 is
//   compiled to fp8 -> fp16 unpacks and fp16 HMMA steps), so an operand subnormal in `input` aligns by its own
//   exponent when it is normal in `unpack`;
// - tc.acc: the tensor core's accumulator register, where each fused step's sum is normalised to (nullopt: acc);
//   Hopper's fp8 wgmma keeps 13 fraction bits there (MMA-Sim; fitted here to cuBLASLt's outputs). With
//   order=blocked the chunk sums are then added in `acc`, as CUDA-core promotion does;
// - tc.deal = r (with order=blocked): a chunk's terms go to its tensor-core steps in runs of r, round robin, instead
//   of k consecutive terms per step (Hopper's fp8 mma.sync: the pairs k mod 4 < 2 in the first HMMA, the rest in the
//   second);
// - the result is rounded to `output` with `output_rounding`.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lpsim/format/format.hpp"
#include "lpsim/format/rounding.hpp"
#include "lpsim/util/host_device.hpp"

namespace lpsim {

enum class Order : std::uint8_t { sequential, pairwise, blocked, splitk };

// Length of the chunks an order cuts K into (K itself for sequential and pairwise). Plain arguments: the kernels of
// both CPU and GPU (dot_kernel.hpp) share it.
LPSIM_HD inline int chunk_length(Order order, int block, int k) {
  if (order == Order::blocked) return block;
  if (order == Order::splitk) return kmath::imax(1, (k + block - 1) / block);
  return kmath::imax(k, 1);
}

// The term indices of step `step` of a tensor-core chain of tc_k terms per step over [first, end): k consecutive
// ones, or with deal > 0 the runs of `deal` terms dealt round robin over the chunk's steps. Returns the count
// written to idx (at most tc_k).
LPSIM_HD inline int tensor_step_terms(int tc_k, int deal, int first, int end, int step, int* idx) {
  int n = 0;
  if (deal == 0) {
    for (int t = first + step * tc_k; t < kmath::imin(end, first + (step + 1) * tc_k); ++t) idx[n++] = t;
    return n;
  }
  const int steps = (end - first + tc_k - 1) / tc_k;
  for (int t = first; t < end; ++t)
    if ((t - first) / deal % steps == step) idx[n++] = t;
  return n;
}

struct TensorCoreModel {
  int k = 0;            // products per fused step; 0: no tensor-core model
  int bits = 25;        // significand bits kept after aligning to the largest term (leading bit included)
  bool align_truncates = true;  // bits shifted out are dropped (true) or rounded to nearest even (false)
  Rounding rounding = Rounding::toward_zero;  // normalising the fused sum into the accumulator
  // Which exponent a product is aligned by: its own (false) or the sum of its operands' exponents (true), as a
  // multiplier that keeps the unnormalised significand product in [1, 4) does (measured on the H100, docs/CUDA.md).
  bool align_operands = false;
  std::optional<Format> unpack;  // the format the operands reach the tensor core in (nullopt: the input format)
  std::optional<Format> acc;     // the format a fused step's sum is normalised to (nullopt: the policy's acc)
  int deal = 0;                  // runs of terms dealt round robin to a chunk's steps; 0: consecutive terms
  friend bool operator==(const TensorCoreModel&, const TensorCoreModel&) = default;
};

struct AccumPolicy {
  Format input;                      // operands are values of this format
  std::optional<Format> product;     // nullopt: exact products
  Rounding product_rounding = Rounding::nearest_even;
  std::optional<Format> acc;         // nullopt: exact accumulation (one rounding, at the output)
  Rounding acc_rounding = Rounding::nearest_even;
  Order order = Order::sequential;
  int block = 0;                     // chunk length of blocked, number of parts of splitk
  bool fma = true;
  TensorCoreModel tc;
  Format output;
  Rounding output_rounding = Rounding::nearest_even;

  // Length of the chunks the order cuts K into (K itself for sequential and pairwise).
  int chunk_length(int k) const { return lpsim::chunk_length(order, block, k); }
  friend bool operator==(const AccumPolicy&, const AccumPolicy&) = default;
};

struct PolicyError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Parses "preset[,key=value...]" or "key=value,...". Keys: in, prod, prodround, acc, round, order, fma, nofma, tc,
// tcbits, tcalign, tcround, tcexp, tcunpack, tcacc, tcdeal, out, outround. Throws PolicyError naming the bad field.
AccumPolicy parse_policy(std::string_view text);

// The canonical spelling: every key, so that parse_policy(to_string(p)) == p.
std::string to_string(const AccumPolicy& p);

// Checks consistency (e.g. a rounded product cannot be fused) and the ranges the kernels support; returns a
// message naming the bad field, or "".
std::string validate(const AccumPolicy& p);

struct PolicyPreset {
  std::string name;
  std::string definition;  // in key=value form
  std::string description;
};
const std::vector<PolicyPreset>& policy_presets();

std::string_view order_name(Order o);

// The smallest exponent an operand has under tcexp=operands: the emin of the format the tensor core sees.
// D = A B + C under a chunked tensor-core policy: every chunk's chain starts from zero and C is the running total
// the chunk sums are added to in acc (Hopper's fp8 mma.sync: two HMMA steps from zero, then an FADD of C, measured
// on the H200; cuBLASLt's promotion alike). Otherwise C starts the first chunk's chain.
inline bool accumulator_starts_total(const AccumPolicy& p) {
  return p.tc.k > 0 && (p.order == Order::blocked || p.order == Order::splitk);
}
inline const Format& tensor_core_acc(const AccumPolicy& p) { return p.tc.acc ? *p.tc.acc : *p.acc; }
inline int tensor_core_operand_emin(const AccumPolicy& p) { return (p.tc.unpack ? *p.tc.unpack : p.input).spec.emin; }
// For kernels that keep a step's result in binary32: the mask that clears the fraction bits a narrower tensor-core
// accumulator (tcacc) drops, when clearing them is its rounding (binary32's exponent range, IEEE encoding, tcround=rz:
// the binary32 result truncated toward zero, truncated again); all ones without one; 0 where it is not.
std::uint32_t tensor_core_acc_mask(const AccumPolicy& p);

// tensor_step_terms of the policy's tensor-core model.
inline int tensor_step_terms(const AccumPolicy& p, int first, int end, int step, int* idx) {
  return tensor_step_terms(p.tc.k, p.tc.deal, first, end, step, idx);
}

}  // namespace lpsim
