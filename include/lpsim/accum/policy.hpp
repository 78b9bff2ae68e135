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
// - the result is rounded to `output` with `output_rounding`.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lpsim/format/format.hpp"
#include "lpsim/format/rounding.hpp"

namespace lpsim {

enum class Order : std::uint8_t { sequential, pairwise, blocked, splitk };

struct TensorCoreModel {
  int k = 0;            // products per fused step; 0: no tensor-core model
  int bits = 25;        // significand bits kept after aligning to the largest term (leading bit included)
  bool align_truncates = true;  // bits shifted out are dropped (true) or rounded to nearest even (false)
  Rounding rounding = Rounding::toward_zero;  // normalising the fused sum into the accumulator
  // Which exponent a product is aligned by: its own (false) or the sum of its operands' exponents (true), as a
  // multiplier that keeps the unnormalised significand product in [1, 4) does (measured on the H100, docs/CUDA.md).
  bool align_operands = false;
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
  int chunk_length(int k) const;
  friend bool operator==(const AccumPolicy&, const AccumPolicy&) = default;
};

struct PolicyError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Parses "preset[,key=value...]" or "key=value,...". Keys: in, prod, prodround, acc, round, order, fma, nofma, tc,
// tcbits, tcalign, tcround, out, outround. Throws PolicyError naming the bad field.
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

}  // namespace lpsim
