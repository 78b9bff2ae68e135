#include <climits>
#include "generic_dot.hpp"

#include <algorithm>
#include <bit>
#include <limits>

#include "lpsim/format/round_scalar.hpp"

namespace lpsim::accum {

namespace {

int lowest_bit(const FormatSpec& f) { return f.emin - f.precision + 1; }

// Products of two input values are exact doubles: p <= 26 bits and no underflow or overflow of double.
bool exact_products(const FormatSpec& in) {
  return in.precision <= 26 && 2 * lowest_bit(in) >= -1074 && 2 * (in.emax + 1) <= 1023;
}

bool is_binary64(const std::optional<Format>& f) { return f && f->spec == formats::fp64; }

// r = RN(x + y) and its exact error as round-to-odd at 53 bits.
[[gnu::always_inline]] inline double odd_sum(double x, double y) {
  const double r = x + y;
  const double bb = r - x;
  const double err = (x - (r - bb)) + (y - bb);  // Knuth's TwoSum; NaN only when r is not finite
  auto bits = std::bit_cast<std::uint64_t>(r);
  if (err != 0 && err == err && !(bits & 1)) {  // inexact with an even last bit: step to the odd neighbour
    const bool away = (err > 0) == (r > 0);
    bits += away ? 1 : std::uint64_t(-1);
  }
  return std::bit_cast<double>(bits);
}

template <Rounding R>
class Kernel {
 public:
  Kernel(const GenericPlan& g, const double* a, const double* b, int k, const SrSlots& slots,
         const double* init = nullptr)
      : g_(g), p_(*g.policy), a_(a), b_(b), k_(k), slots_(slots), init_(init) {}

  // With init (accumulate_dot): the first chunk's chain starts from *init (or, accumulator_starts_total, *init is the
  // total the chunk sums are added to) and the accumulator is returned as is.
  double run() {
    double total = init_ ? *init_ : 0.0;
    if (k_ > 0) {
      if (p_.order == Order::pairwise && p_.tc.k == 0) {
        total = pairwise(0, k_);
        if (init_) total = add(*init_, total, [&] { return slots_.chunk(0); });
      } else {
        const int len = p_.chunk_length(k_);
        const bool into_total = init_ && accumulator_starts_total(p_);
        for (int first = 0, c = 0; first < k_; first += len, ++c) {
          const int end = std::min(k_, first + len);
          const bool from = c == 0 && init_ && !into_total;
          const double part = p_.tc.k > 0 ? tensor_chain(first, end, from ? *init_ : 0.0)
                                          : sequential(first, end, from ? init_ : nullptr);
          total = c == 0 && !into_total ? part : add(total, part, [&] { return slots_.chunk(c); });
        }
      }
    }
    if (init_) return total;
    return round_to(total, p_.output.spec, p_.output_rounding,
                    p_.output_rounding == Rounding::stochastic ? slots_.output() : 0);
  }

 private:
  template <class Word>
  double round_acc(double x, Word word) const {
    std::uint64_t random = 0;
    if constexpr (R == Rounding::stochastic) random = word();
    return std::bit_cast<double>(round_bits<PortableIsa, double, R>(std::bit_cast<std::uint64_t>(x), g_.acc, random));
  }
  // round(x + y) to the accumulator, x and y exact doubles
  template <class Word>
  double add(double x, double y, Word word) const {
    if (g_.acc_is_binary64_rne) return x + y;
    return round_acc(odd_sum(x, y), word);
  }
  double term(int t) const {
    const double x = a_[t] * b_[t];  // exact, or (binary64 accumulation) the rounding binary64 would do anyway
    if (!p_.product) return x;
    return round_to(x, p_.product->spec, p_.product_rounding,
                    p_.product_rounding == Rounding::stochastic ? slots_.product(t) : 0);
  }
  double sequential(int first, int end, const double* from = nullptr) const {
    double s = 0;
    if (from && g_.acc_is_binary64_rne && !p_.product) s = std::fma(a_[first], b_[first], *from);
    else if (from) s = add(*from, term(first), [&] { return slots_.accumulate(first); });
    else s = g_.acc_is_binary64_rne ? term(first) : round_acc(term(first), [&] { return slots_.accumulate(first); });
    for (int t = first + 1; t < end; ++t) {
      if (g_.acc_is_binary64_rne && !p_.product) {
        s = std::fma(a_[t], b_[t], s);  // one rounding of the exact a*b + s, whatever the input precision
        continue;
      }
      s = add(s, term(t), [&] { return slots_.accumulate(t); });
    }
    return s;
  }
  double pairwise(int lo, int hi) const {
    if (hi - lo == 1) return g_.acc_is_binary64_rne ? term(lo) : round_acc(term(lo), [&] { return slots_.accumulate(lo); });
    const int mid = lo + (hi - lo) / 2;
    return add(pairwise(lo, mid), pairwise(mid, hi), [&] { return slots_.pairwise_node(mid); });
  }
  double tensor_chain(int first, int end, double start) const {
    double c = start;
    int idx[64];
    for (int step = 0; first + step * p_.tc.k < end; ++step) {
      const int m = tensor_step_terms(p_, first, end, step, idx);
      c = tensor_step(c, first + step * p_.tc.k, idx, m);
    }
    return c;
  }
  // `slot` names the step for stochastic rounding; idx[0..m) are its terms.
  double tensor_step(double c, int slot, const int* idx, int m) const {
    double terms[65];
    int exps[65];
    int n = 0;
    exps[n] = c != 0 ? std::ilogb(c) : INT_MIN;
    terms[n++] = c;
    for (int i = 0; i < m; ++i) {
      const int t = idx[i];
      exps[n] = operand_exponent_sum(a_[t], b_[t], p_);
      terms[n++] = a_[t] * b_[t];
    }
    return tensor_core_step(terms, n, p_, p_.tc.rounding == Rounding::stochastic ? slots_.tensor_step(slot) : 0,
                            p_.tc.align_operands ? exps : nullptr);
  }

  const GenericPlan& g_;
  const AccumPolicy& p_;
  const double* a_;
  const double* b_;
  int k_;
  const SrSlots& slots_;
  const double* init_;
};

}  // namespace

// terms[0] is c, the rest exact products: aligned to the largest exponent, cut to tc.bits bits, summed exactly (each
// cut term is an integer below 2^bits times 2^quantum; 65 of them fit in 53 bits), rounded once.
int operand_exponent_sum(double a, double b, const AccumPolicy& p) {
  if (a == 0 || b == 0 || !std::isfinite(a) || !std::isfinite(b)) return INT_MIN;
  const int emin = tensor_core_operand_emin(p);
  return std::max(std::ilogb(a), emin) + std::max(std::ilogb(b), emin);
}

double tensor_core_step(const double* terms, int n, const AccumPolicy& p, std::uint64_t random, const int* exps) {
  bool special = false;
  double largest = 0;
  int top = INT_MIN;
  for (int i = 0; i < n; ++i) {
    special = special || !std::isfinite(terms[i]);
    largest = std::max(largest, std::fabs(terms[i]));
    if (exps && terms[i] != 0) top = std::max(top, exps[i]);
  }
  double sum = 0.0;
  if (special || largest == 0) {  // IEEE sums: inf/NaN propagate; zeros keep IEEE's sign rule
    sum = terms[0];
    for (int i = 1; i < n; ++i) sum += terms[i];
  } else {
    const int quantum = (exps ? top : std::ilogb(largest)) - p.tc.bits + 1;
    double cut_sum = 0.0;
    for (int i = 0; i < n; ++i) {
      const double scaled = std::ldexp(terms[i], -quantum);  // exact
      cut_sum += p.tc.align_truncates ? std::trunc(scaled) : std::nearbyint(scaled);
    }
    sum = cut_sum == 0 ? 0.0 : std::ldexp(cut_sum, quantum);  // exact; a cancelled sum is +0
  }
  return round_to(sum, tensor_core_acc(p).spec, p.tc.rounding, random);
}

bool generic_supports(const AccumPolicy& p) {
  if (!p.acc) return false;  // exact accumulation: the reference's multi-precision sum
  const bool binary64_rne = is_binary64(p.acc) && p.acc_rounding == Rounding::nearest_even;
  if (p.acc->spec.precision > 51 && !binary64_rne) return false;
  if (exact_products(p.input.spec)) return true;
  // Wider operands: only binary64 accumulation, whose products round as binary64 would round them.
  return binary64_rne && p.tc.k == 0 &&
         (!p.product || (is_binary64(p.product) && p.product_rounding == Rounding::nearest_even));
}

GenericPlan make_generic_plan(const AccumPolicy& p) {
  GenericPlan g{&p, make_round_params<double>(p.acc ? p.acc->spec : formats::fp64), false};
  g.acc_is_binary64_rne = is_binary64(p.acc) && p.acc_rounding == Rounding::nearest_even;
  return g;
}

double generic_dot(const GenericPlan& g, const double* a, const double* b, int k, const SrSlots& slots) {
  return with_rounding(g.policy->acc_rounding,
                       [&]<Rounding R>() { return Kernel<R>(g, a, b, k, slots).run(); });
}

double generic_accumulate_dot(const GenericPlan& g, double c, const double* a, const double* b, int k,
                              const SrSlots& slots) {
  return with_rounding(g.policy->acc_rounding,
                       [&]<Rounding R>() { return Kernel<R>(g, a, b, k, slots, &c).run(); });
}

}  // namespace lpsim::accum
