#include "lpsim/accum/dot_reference.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fmt/format.h>
#include <memory>
#include <stdexcept>
#include <vector>

#include "lpsim/accum/sr_slots.hpp"
#include "lpsim/format/mpfr_round.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim {

namespace {

int lowest_bit(const FormatSpec& f) { return f.emin - f.precision + 1; }  // exponent of the smallest quantum
int ceil_log2(int n) { return n <= 1 ? 0 : std::bit_width(unsigned(n - 1)); }

// A precision at which every sum this policy forms is exact: from the highest possible leading bit down to the
// lowest possible bit of any product, accumulator or output value.
mpfr_prec_t exact_precision(const AccumPolicy& p, int k) {
  const FormatSpec& in = p.input.spec;
  int lo = 2 * lowest_bit(in), hi = 2 * (in.emax + 1);
  for (const auto& f : {p.product, p.acc})
    if (f) lo = std::min(lo, lowest_bit(f->spec)), hi = std::max(hi, f->spec.emax + 1);
  return mpfr_prec_t(hi - lo + ceil_log2(k + 2) + 8);
}

class Reference {
 public:
  Reference(const AccumPolicy& p, std::span<const double> a, std::span<const double> b, const StochasticStream& sr,
            std::uint64_t element, const double* init = nullptr)
      : p_(p), a_(a), b_(b), k_(int(a.size())), prec_(exact_precision(p, k_)), slots_(sr, element, k_), init_(init) {}

  // With init: the first chunk starts from *init (sequential: round(init + p_0); tensor core: c = init; pairwise:
  // round(init + the pairwise sum)), or under accumulator_starts_total *init is the total every chunk's sum is
  // added to; the accumulator is returned without the output rounding.
  double run() {
    const int k = k_;
    Value total = make();
    if (k == 0) {
      mpfr_set_zero(total->get(), 1);
      if (init_) mpfr_set_d(total->get(), *init_, MPFR_RNDN);
    } else if (p_.order == Order::pairwise && p_.tc.k == 0) {
      total = pairwise(0, k);
      if (init_) {
        mpfr_add_d(total->get(), total->get(), *init_, MPFR_RNDN);  // exact
        round_acc(total, p_.acc_rounding, slots_.chunk(0));
      }
    } else {
      const int len = p_.chunk_length(k);
      const bool into_total = init_ && accumulator_starts_total(p_);
      if (into_total) mpfr_set_d(total->get(), *init_, MPFR_RNDN);
      for (int first = 0, c = 0; first < k; first += len, ++c) {
        const double* from = c == 0 && !into_total ? init_ : nullptr;
        Value part = p_.tc.k > 0 ? tensor_chain(first, std::min(k, first + len), from)
                                 : sequential(first, std::min(k, first + len), from);
        if (c == 0 && !into_total) {
          total = std::move(part);
        } else {
          mpfr_add(total->get(), total->get(), part->get(), MPFR_RNDN);  // exact
          round_acc(total, p_.acc_rounding, slots_.chunk(c));
        }
      }
    }
    if (init_) return mpfr_get_d(total->get(), MPFR_RNDN);  // a value of the accumulator: exact
    return mpfr_round_to_format(total->get(), p_.output.spec, p_.output_rounding, slots_.output());
  }

 private:
  using Value = std::unique_ptr<Mpfr>;
  Value make() const { return std::make_unique<Mpfr>(prec_); }

  // Rounds v in place to the accumulator (nothing for acc=exact).
  void round_acc(Value& v, Rounding mode, std::uint64_t random) const {
    if (!p_.acc) return;
    mpfr_set_d(v->get(), mpfr_round_to_format(v->get(), p_.acc->spec, mode, random), MPFR_RNDN);
  }
  void round_tensor_acc(Value& v, Rounding mode, std::uint64_t random) const {
    mpfr_set_d(v->get(), mpfr_round_to_format(v->get(), tensor_core_acc(p_).spec, mode, random), MPFR_RNDN);
  }

  // Term t: the exact product, or the product rounded to the product format.
  Value term(int t) const {
    Value v = make();
    Mpfr x(64), y(64);
    mpfr_set_d(x, a_[t], MPFR_RNDN);
    mpfr_set_d(y, b_[t], MPFR_RNDN);
    mpfr_mul(v->get(), x, y, MPFR_RNDN);  // exact: 2*53 <= prec_
    if (p_.product)
      mpfr_set_d(v->get(), mpfr_round_to_format(v->get(), p_.product->spec, p_.product_rounding, slots_.product(t)),
                 MPFR_RNDN);
    return v;
  }

  Value sequential(int first, int end, const double* from) const {
    Value s = term(first);
    if (from) mpfr_add_d(s->get(), s->get(), *from, MPFR_RNDN);  // exact
    round_acc(s, p_.acc_rounding, slots_.accumulate(first));
    for (int t = first + 1; t < end; ++t) {
      Value x = term(t);
      mpfr_add(s->get(), s->get(), x->get(), MPFR_RNDN);  // exact
      round_acc(s, p_.acc_rounding, slots_.accumulate(t));
    }
    return s;
  }

  Value pairwise(int lo, int hi) const {
    if (hi - lo == 1) {
      Value s = term(lo);
      round_acc(s, p_.acc_rounding, slots_.accumulate(lo));
      return s;
    }
    const int mid = lo + (hi - lo) / 2;
    Value left = pairwise(lo, mid), right = pairwise(mid, hi);
    mpfr_add(left->get(), left->get(), right->get(), MPFR_RNDN);  // exact
    round_acc(left, p_.acc_rounding, slots_.pairwise_node(mid));
    return left;
  }

  Value tensor_chain(int first, int end, const double* from) const {
    Value c = make();
    mpfr_set_zero(c->get(), 1);
    if (from) mpfr_set_d(c->get(), *from, MPFR_RNDN);
    std::vector<int> idx(64);
    for (int step = 0; first + step * p_.tc.k < end; ++step) {
      const int m = tensor_step_terms(p_, first, end, step, idx.data());
      c = tensor_step(std::move(c), first + step * p_.tc.k, std::vector<int>(idx.begin(), idx.begin() + m));
    }
    return c;
  }

  // One fused step: c and the exact products of terms [first, end) aligned to the largest exponent among them,
  // each cut to tc.bits bits below that exponent's leading bit, summed exactly, rounded once to acc.
  Value tensor_step(Value c, int first, const std::vector<int>& idx) const {
    std::vector<Value> terms;
    std::vector<mpfr_exp_t> align;  // alignment exponent of each term (ours, not MPFR's)
    align.push_back(mpfr_zero_p(c->get()) ? 0 : mpfr_get_exp(c->get()) - 1);
    terms.push_back(std::move(c));
    for (int t : idx) {
      terms.push_back(term(t));
      const Value& v = terms.back();
      if (p_.tc.align_operands && !mpfr_zero_p(v->get()) && mpfr_number_p(v->get())) {
        // operands are values of the input format (and of tc.unpack): their exponents are exact
        const int emin = tensor_core_operand_emin(p_);
        align.push_back(std::max(std::ilogb(a_[t]), emin) + std::max(std::ilogb(b_[t]), emin));
      } else {
        align.push_back(mpfr_zero_p(v->get()) ? 0 : mpfr_get_exp(v->get()) - 1);
      }
    }
    Value sum = make();
    mpfr_set_zero(sum->get(), 1);
    bool special = false, all_zero = true;
    for (auto& t : terms) {
      special = special || !mpfr_number_p(t->get());
      all_zero = all_zero && mpfr_zero_p(t->get());
    }
    if (special || all_zero) {  // IEEE sums: inf/NaN propagate; zeros keep IEEE's sign rule
      mpfr_set(sum->get(), terms[0]->get(), MPFR_RNDN);
      for (size_t i = 1; i < terms.size(); ++i) mpfr_add(sum->get(), sum->get(), terms[i]->get(), MPFR_RNDN);
    } else {
      mpfr_exp_t top = mpfr_get_emin();
      for (size_t i = 0; i < terms.size(); ++i)
        if (!mpfr_zero_p(terms[i]->get())) top = std::max<mpfr_exp_t>(top, align[i]);  // MPFR's exponent is ours + 1
      const mpfr_exp_t quantum = top - p_.tc.bits + 1;
      for (auto& t : terms) {
        mpfr_div_2si(t->get(), t->get(), quantum, MPFR_RNDN);  // exact
        if (p_.tc.align_truncates) mpfr_trunc(t->get(), t->get());
        else mpfr_rint(t->get(), t->get(), MPFR_RNDN);
        mpfr_add(sum->get(), sum->get(), t->get(), MPFR_RNDN);  // exact
      }
      mpfr_mul_2si(sum->get(), sum->get(), quantum, MPFR_RNDN);
      if (mpfr_zero_p(sum->get())) mpfr_set_zero(sum->get(), 1);  // cancelled or cut away: +0
    }
    round_tensor_acc(sum, p_.tc.rounding, slots_.tensor_step(first));
    return sum;
  }

  const AccumPolicy& p_;
  std::span<const double> a_, b_;
  int k_;
  mpfr_prec_t prec_;
  SrSlots slots_;
  const double* init_;
};

}  // namespace

double reference_dot(const AccumPolicy& policy, std::span<const double> a, std::span<const double> b,
                     const StochasticStream& sr, std::uint64_t element) {
  if (a.size() != b.size())
    throw std::invalid_argument(fmt::format("dot: the vectors have {} and {} elements", a.size(), b.size()));
  if (std::string bad = validate(policy); !bad.empty()) throw PolicyError(bad);
  for (size_t t = 0; t < a.size(); ++t)
    if (!representable(a[t], policy.input.spec) || !representable(b[t], policy.input.spec))
      throw std::invalid_argument(fmt::format("dot: term {} ({} * {}) has an operand that is not a value of {}", t,
                                              a[t], b[t], policy.input.name));
  return Reference(policy, a, b, sr, element).run();
}

double reference_accumulate_dot(const AccumPolicy& policy, double c, std::span<const double> a,
                                std::span<const double> b, const StochasticStream& sr, std::uint64_t element) {
  if (a.size() != b.size())
    throw std::invalid_argument(fmt::format("dot: the vectors have {} and {} elements", a.size(), b.size()));
  if (std::string bad = validate(policy); !bad.empty()) throw PolicyError(bad);
  if (!policy.acc) throw PolicyError("acc: accumulating into a given value needs an accumulator format, not exact");
  if (!representable(c, policy.acc->spec))
    throw std::invalid_argument(fmt::format("dot: the initial value {} is not a value of {}", c, policy.acc->name));
  for (size_t t = 0; t < a.size(); ++t)
    if (!representable(a[t], policy.input.spec) || !representable(b[t], policy.input.spec))
      throw std::invalid_argument(fmt::format("dot: term {} ({} * {}) has an operand that is not a value of {}", t,
                                              a[t], b[t], policy.input.name));
  return Reference(policy, a, b, sr, element, &c).run();
}

void reference_gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const double> a,
                    std::span<const double> b, std::span<double> c, const StochasticStream& sr) {
  if (a.size() != size_t(m) * k || b.size() != size_t(k) * n || c.size() != size_t(m) * n)
    throw std::invalid_argument("reference_gemm: sizes do not match m, n, k");
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < m; ++i) {
    std::vector<double> column(k);
    for (int j = 0; j < n; ++j) {
      for (int t = 0; t < k; ++t) column[t] = b[size_t(t) * n + j];
      c[size_t(i) * n + j] = reference_dot(policy, a.subspan(size_t(i) * k, k), column, sr, std::uint64_t(i) * n + j);
    }
  }
}

}  // namespace lpsim
