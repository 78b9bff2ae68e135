#pragma once
// The exact kernel of every accumulation policy, one output element at a time, written once for two compilers: the
// CPU's portable path (src/accum/generic_dot.cpp) and the GPU's emulated GEMM (cuda/emulated_gemm.cu) both include
// this header, so both compute what dot_reference.cpp defines with the same instructions. Plain data and exact
// arithmetic only; nvcc compiles it with --fmad=false, so TwoSum is never contracted.
//
// Each step is double arithmetic made exact: products of <= 26-bit operands are exact doubles; a sum's exact error
// comes from TwoSum and turns the double result into its round-to-odd at 53 bits, which rounds correctly to any
// format of <= 51 bits.
#include <climits>
#include <cstdint>

#include "lpsim/accum/policy.hpp"
#include "lpsim/accum/sr_slots.hpp"
#include "lpsim/format/round_core.hpp"
#include "lpsim/util/host_device.hpp"

namespace lpsim::accum {

// An AccumPolicy as plain data, its formats turned into rounding parameters once (make_dot_policy): what a kernel
// needs, copyable to a GPU by value.
struct DotPolicy {
  RoundParams<double> acc, product, tc_acc, output;
  bool has_product = false;
  bool acc_is_binary64_rne = false;  // binary64 RNE steps are plain double arithmetic (no round-to-odd needed)
  Rounding acc_rounding{}, product_rounding{}, tc_rounding{}, output_rounding{};
  Order order{};
  int block = 0;
  int tc_k = 0, tc_bits = 0, tc_deal = 0;
  int tc_operand_emin = 0;  // the emin of the format the tensor core sees (tcexp=operands)
  bool tc_truncates = true, tc_align_operands = false;
  bool starts_total = false;  // accumulator_starts_total
};

inline DotPolicy make_dot_policy(const AccumPolicy& p) {
  DotPolicy d;
  d.acc = make_round_params<double>(p.acc ? p.acc->spec : formats::fp64);
  d.has_product = p.product.has_value();
  d.product = make_round_params<double>(p.product ? p.product->spec : formats::fp64);
  d.tc_acc = make_round_params<double>(p.tc.acc ? p.tc.acc->spec : p.acc ? p.acc->spec : formats::fp64);
  d.output = make_round_params<double>(p.output.spec);
  d.acc_is_binary64_rne = p.acc && p.acc->spec == formats::fp64 && p.acc_rounding == Rounding::nearest_even;
  d.acc_rounding = p.acc_rounding, d.product_rounding = p.product_rounding, d.tc_rounding = p.tc.rounding;
  d.output_rounding = p.output_rounding;
  d.order = p.order, d.block = p.block;
  d.tc_k = p.tc.k, d.tc_bits = p.tc.bits, d.tc_deal = p.tc.deal, d.tc_operand_emin = tensor_core_operand_emin(p);
  d.tc_truncates = p.tc.align_truncates, d.tc_align_operands = p.tc.align_operands;
  d.starts_total = accumulator_starts_total(p);
  return d;
}

LPSIM_HD inline double round_with(double x, const RoundParams<double>& f, Rounding mode, std::uint64_t random) {
  return kmath::from_bits(round_bits<PortableIsa, double>(kmath::bits(x), f, mode, random));
}

// r = RN(x + y) and its exact error as round-to-odd at 53 bits.
LPSIM_HD inline double odd_sum(double x, double y) {
  const double r = x + y;
  const double bb = r - x;
  const double err = (x - (r - bb)) + (y - bb);  // Knuth's TwoSum; NaN only when r is not finite
  std::uint64_t b = kmath::bits(r);
  if (err != 0 && err == err && !(b & 1)) {  // inexact with an even last bit: step to the odd neighbour
    const bool away = (err > 0) == (r > 0);
    b += away ? 1 : std::uint64_t(-1);
  }
  return kmath::from_bits(b);
}

// The alignment exponent of the product a*b under tcexp=operands: e(a) + e(b), subnormals at the operand emin.
LPSIM_HD inline int operand_exponent_sum(double a, double b, int operand_emin) {
  if (a == 0 || b == 0 || !kmath::isfinite(a) || !kmath::isfinite(b)) return INT_MIN;
  return kmath::imax(kmath::exponent(a), operand_emin) + kmath::imax(kmath::exponent(b), operand_emin);
}

// One step of the tensor-core model over any sequence of terms: term 0 is the accumulator c, the others the exact
// products; aligned to the largest exponent (or, by_operands, the largest alignment exponent of a nonzero term), cut
// to tc_bits bits, summed exactly (each cut term is an integer below 2^(bits+1) times 2^quantum; 65 of them fit in
// 53 bits), rounded once. `random` feeds a stochastic tc_rounding. Terms supplies count(), value(i) and
// alignment(i); they are read in passes, never stored, so a GPU thread keeps no arrays in local memory.
template <class Terms>
LPSIM_HD double tensor_core_step_over(const Terms& terms, bool by_operands, const DotPolicy& p, std::uint64_t random) {
  const int n = terms.count();
  bool special = false;
  double largest = 0;
  int top = INT_MIN;
  for (int i = 0; i < n; ++i) {
    const double x = terms.value(i);
    special = special || !kmath::isfinite(x);
    largest = kmath::dmax(largest, kmath::fabs(x));
    if (by_operands && x != 0) top = kmath::imax(top, terms.alignment(i));
  }
  double sum = 0.0;
  if (special || largest == 0) {  // IEEE sums: inf/NaN propagate; zeros keep IEEE's sign rule
    sum = terms.value(0);
    for (int i = 1; i < n; ++i) sum += terms.value(i);
  } else {
    const int quantum = (by_operands ? top : kmath::exponent(largest)) - p.tc_bits + 1;
    double cut_sum = 0.0;
    if (p.tc_truncates) {  // the cut terms are multiples of 2^quantum below 2^(quantum + bits + 2): the sum is exact
      for (int i = 0; i < n; ++i) cut_sum += kmath::trunc_to_multiple(terms.value(i), quantum);
    } else {
      for (int i = 0; i < n; ++i) cut_sum += kmath::nearbyint(kmath::ldexp(terms.value(i), -quantum));  // exact
      cut_sum = kmath::ldexp(cut_sum, quantum);
    }
    sum = cut_sum == 0 ? 0.0 : cut_sum;  // exact; a cancelled sum is +0
  }
  return round_with(sum, p.tc_acc, p.tc_rounding, random);
}

// The same step over arrays: terms[0..n) and, when given (tcexp=operands), their alignment exponents exps[0..n).
LPSIM_HD inline double tensor_core_step(const double* terms, int n, const DotPolicy& p, std::uint64_t random,
                                        const int* exps = nullptr) {
  struct Arrays {
    const double* terms;
    const int* exps;
    int n;
    LPSIM_HD int count() const { return n; }
    LPSIM_HD double value(int i) const { return terms[i]; }
    LPSIM_HD int alignment(int i) const { return exps[i]; }
  };
  return tensor_core_step_over(Arrays{terms, exps, n}, exps != nullptr, p, random);
}

// The dot product of a[0..k) and b[0..k) (b's terms b_stride apart) for one output element, accumulation rounding R.
template <Rounding R>
class DotKernel {
 public:
  LPSIM_HD DotKernel(const DotPolicy& p, const double* a, const double* b, long b_stride, int k, const SrSlots& slots,
                     const double* init = nullptr)
      : p_(p), a_(a), b_(b), stride_(b_stride), k_(k), slots_(slots), init_(init) {}

  // With init (accumulate_dot): the first chunk's chain starts from *init (or, starts_total, *init is the total the
  // chunk sums are added to) and the accumulator is returned as is, not rounded to the output.
  // MayBePairwise = false leaves the pairwise recursion out of the compiled kernel (a GPU kernel without it keeps
  // no call stack); the policy must then not sum pairwise (p.order != pairwise or a tensor-core model).
  template <bool MayBePairwise = true>
  LPSIM_HD double run() const {
    double total = init_ ? *init_ : 0.0;
    bool summed = k_ == 0;
    if constexpr (MayBePairwise) {
      if (!summed && p_.order == Order::pairwise && p_.tc_k == 0) {
        total = pairwise(0, k_);
        if (init_) total = add(*init_, total, word([&] { return slots_.chunk(0); }));
        summed = true;
      }
    }
    if (!summed) {
      const int len = chunk_length(p_.order, p_.block, k_);
      const bool into_total = init_ && p_.starts_total;
      for (int first = 0, c = 0; first < k_; first += len, ++c) {
        const int end = kmath::imin(k_, first + len);
        const bool from = c == 0 && init_ && !into_total;
        const double part = p_.tc_k > 0 ? tensor_chain(first, end, from ? *init_ : 0.0)
                                         : sequential(first, end, from ? init_ : nullptr);
        total = c == 0 && !into_total ? part : add(total, part, word([&] { return slots_.chunk(c); }));
      }
    }
    if (init_) return total;
    return round_with(total, p_.output, p_.output_rounding,
                      p_.output_rounding == Rounding::stochastic ? slots_.output() : 0);
  }

 private:
  // The random word of a stochastic accumulation, drawn only when the accumulator rounds stochastically.
  template <class Draw>
  LPSIM_HD static std::uint64_t word(Draw draw) {
    if constexpr (R == Rounding::stochastic) return draw();
    return 0;
  }
  LPSIM_HD double round_acc(double x, std::uint64_t random) const {
    return kmath::from_bits(round_bits<PortableIsa, double, R>(kmath::bits(x), p_.acc, random));
  }
  // round(x + y) to the accumulator, x and y exact doubles
  LPSIM_HD double add(double x, double y, std::uint64_t random) const {
    if (p_.acc_is_binary64_rne) return x + y;
    return round_acc(odd_sum(x, y), random);
  }
  LPSIM_HD double a(int t) const { return a_[t]; }
  LPSIM_HD double b(int t) const { return b_[t * stride_]; }
  LPSIM_HD double term(int t) const {
    const double x = a(t) * b(t);  // exact, or (binary64 accumulation) the rounding binary64 would do anyway
    if (!p_.has_product) return x;
    return round_with(x, p_.product, p_.product_rounding,
                      p_.product_rounding == Rounding::stochastic ? slots_.product(t) : 0);
  }
  LPSIM_HD double sequential(int first, int end, const double* from) const {
    const bool plain_fma = p_.acc_is_binary64_rne && !p_.has_product;
    double s = 0;
    if (from && plain_fma) s = kmath::fma(a(first), b(first), *from);
    else if (from) s = add(*from, term(first), word([&] { return slots_.accumulate(first); }));
    else s = p_.acc_is_binary64_rne ? term(first) : round_acc(term(first), word([&] { return slots_.accumulate(first); }));
    for (int t = first + 1; t < end; ++t) {
      if (plain_fma) {
        s = kmath::fma(a(t), b(t), s);  // one rounding of the exact a*b + s, whatever the input precision
        continue;
      }
      s = add(s, term(t), word([&] { return slots_.accumulate(t); }));
    }
    return s;
  }
  LPSIM_HD double pairwise(int lo, int hi) const {
    if (hi - lo == 1)
      return p_.acc_is_binary64_rne ? term(lo) : round_acc(term(lo), word([&] { return slots_.accumulate(lo); }));
    const int mid = lo + (hi - lo) / 2;
    return add(pairwise(lo, mid), pairwise(mid, hi), word([&] { return slots_.pairwise_node(mid); }));
  }
  LPSIM_HD double tensor_chain(int first, int end, double start) const {
    double c = start;
    for (int step = 0; first + step * p_.tc_k < end; ++step) {
      const int from = first + step * p_.tc_k;
      if (p_.tc_deal == 0) {
        c = tensor_step(c, from, Consecutive{from}, kmath::imin(end - from, p_.tc_k));
      } else {
        int idx[64];
        const int m = tensor_step_terms(p_.tc_k, p_.tc_deal, first, end, step, idx);
        c = tensor_step(c, from, Listed{idx}, m);
      }
    }
    return c;
  }
  // A step's terms: consecutive from `first`, or listed (dealt by tensor_step_terms).
  struct Consecutive {
    int first;
    LPSIM_HD int operator[](int i) const { return first + i; }
  };
  struct Listed {
    const int* idx;
    LPSIM_HD int operator[](int i) const { return idx[i]; }
  };
  // The step's terms as tensor_core_step_over reads them: c, then the products of the indexed terms.
  template <class Index>
  struct StepTerms {
    const DotKernel* k;
    double c;
    Index idx;
    int m;
    LPSIM_HD int count() const { return m + 1; }
    LPSIM_HD double value(int i) const { return i == 0 ? c : k->a(idx[i - 1]) * k->b(idx[i - 1]); }
    LPSIM_HD int alignment(int i) const {  // read for nonzero terms only (an infinite or NaN c takes the IEEE path)
      if (i == 0) return kmath::exponent(c);
      return operand_exponent_sum(k->a(idx[i - 1]), k->b(idx[i - 1]), k->p_.tc_operand_emin);
    }
  };
  // `slot` names the step for stochastic rounding; idx[0..m) are its terms.
  template <class Index>
  LPSIM_HD double tensor_step(double c, int slot, Index idx, int m) const {
    return tensor_core_step_over(StepTerms<Index>{this, c, idx, m}, p_.tc_align_operands, p_,
                                 p_.tc_rounding == Rounding::stochastic ? slots_.tensor_step(slot) : 0);
  }

  const DotPolicy& p_;
  const double* a_;
  const double* b_;
  long stride_;
  int k_;
  const SrSlots& slots_;
  const double* init_;
};

// The kernel for the policy's accumulation rounding, chosen at run time.
LPSIM_HD inline double dot_kernel(const DotPolicy& p, const double* a, const double* b, long b_stride, int k,
                                  const SrSlots& slots, const double* init = nullptr) {
  switch (p.acc_rounding) {
    case Rounding::nearest_even: return DotKernel<Rounding::nearest_even>(p, a, b, b_stride, k, slots, init).run();
    case Rounding::toward_zero: return DotKernel<Rounding::toward_zero>(p, a, b, b_stride, k, slots, init).run();
    case Rounding::upward: return DotKernel<Rounding::upward>(p, a, b, b_stride, k, slots, init).run();
    case Rounding::downward: return DotKernel<Rounding::downward>(p, a, b, b_stride, k, slots, init).run();
    case Rounding::nearest_away: return DotKernel<Rounding::nearest_away>(p, a, b, b_stride, k, slots, init).run();
    case Rounding::to_odd: return DotKernel<Rounding::to_odd>(p, a, b, b_stride, k, slots, init).run();
    case Rounding::stochastic: break;
  }
  return DotKernel<Rounding::stochastic>(p, a, b, b_stride, k, slots, init).run();
}

}  // namespace lpsim::accum
