#include "generic_dot.hpp"

namespace lpsim::accum {

namespace {

int lowest_bit(const FormatSpec& f) { return f.emin - f.precision + 1; }

// Products of two input values are exact doubles: p <= 26 bits and no underflow or overflow of double.
bool exact_products(const FormatSpec& in) {
  return in.precision <= 26 && 2 * lowest_bit(in) >= -1074 && 2 * (in.emax + 1) <= 1023;
}

bool is_binary64(const std::optional<Format>& f) { return f && f->spec == formats::fp64; }

}  // namespace

bool generic_supports(const AccumPolicy& p) {
  if (!p.acc) return false;  // exact accumulation: the reference's multi-precision sum
  const bool binary64_rne = is_binary64(p.acc) && p.acc_rounding == Rounding::nearest_even;
  if (p.acc->spec.precision > 51 && !binary64_rne) return false;
  if (exact_products(p.input.spec)) return true;
  // Wider operands: only binary64 accumulation, whose products round as binary64 would round them.
  return binary64_rne && p.tc.k == 0 &&
         (!p.product || (is_binary64(p.product) && p.product_rounding == Rounding::nearest_even));
}

}  // namespace lpsim::accum
