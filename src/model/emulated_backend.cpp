#include "lpsim/model/emulated_backend.hpp"

#include <algorithm>
#include <cmath>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/format/array_round.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim {

namespace {

constexpr std::uint64_t compute_stream = 0xc0117e;
constexpr std::uint64_t store_stream = 0x5702e;
constexpr std::uint64_t gemm_stream = 0x6e33;

bool fits_float(const FormatSpec& f) { return f.precision <= 24 && f.emin >= -126 && f.emax <= 127; }

// The power of two that brings amax closest to the format's largest finite number from below (per-tensor scaling;
// a power of two so that scaling and unscaling are exact).
double pow2_scale(std::span<const double> x, const FormatSpec& f) {
  double amax = 0;
  for (double v : x)
    if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
  if (amax == 0) return 1;
  int e = 0;
  std::frexp(f.max_finite() / amax, &e);  // max/amax = m 2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 1);
}

bool all_finite(std::span<const double> x) {
  return std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

EmulatedBackend::Rounder EmulatedBackend::make_rounder(const Format& f, Rounding mode) {
  Fast fast = Fast::general;
  if (mode == Rounding::nearest_even && f.spec == formats::fp64) fast = Fast::identity;
  if (mode == Rounding::nearest_even && f.spec == formats::fp32) fast = Fast::to_float;  // the cast is RNE
  return {f.spec, mode, fast};
}

EmulatedBackend::EmulatedBackend(PrecisionPlan plan, std::uint64_t seed) : plan_(std::move(plan)), seed_(seed) {
  for (Op op : all_ops) {
    const OpPrecision& p = plan_[op];
    compute_[static_cast<int>(op)] = make_rounder(p.compute, p.rounding);
    out_[static_cast<int>(op)] = make_rounder(p.out, p.rounding);
  }
}

double EmulatedBackend::round_one(const Rounder& r, double v) {
  double y;
  switch (r.fast) {
    case Fast::identity: return v;
    case Fast::to_float: y = static_cast<double>(static_cast<float>(v)); break;
    default:
      y = round_to(v, r.spec, r.mode, r.mode == Rounding::stochastic ? random_bits(seed_, compute_stream, sr_index_++) : 0);
  }
  if (std::isfinite(v) && !std::isfinite(y)) ++events_.overflows;
  else if (std::isfinite(v) && std::fabs(v) > r.spec.max_finite() && r.spec.overflow == Overflow::saturate)
    ++events_.saturations;
  return y;
}

void EmulatedBackend::round_all(const Rounder& r, std::span<double> v) {
  if (r.fast == Fast::identity) return;
  // Values beyond the range are rare: remember them and classify after rounding.
  const double max = r.spec.max_finite();
  std::vector<std::size_t> beyond;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (std::isfinite(v[i]) && std::fabs(v[i]) > max) beyond.push_back(i);
  if (r.fast == Fast::to_float) {
    for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  } else {
    round_array(v, v, r.spec, r.mode, StochasticStream{seed_, store_stream, sr_index_});
    if (r.mode == Rounding::stochastic) sr_index_ += v.size();
  }
  for (std::size_t i : beyond) {
    if (!std::isfinite(v[i])) ++events_.overflows;
    else if (r.spec.overflow == Overflow::saturate) ++events_.saturations;
  }
}

double EmulatedBackend::compute(Op op, double v) { return round_one(compute_[static_cast<int>(op)], v); }

void EmulatedBackend::store(Op op, Matrix<double>& m) { round_all(out_[static_cast<int>(op)], m.data); }

double EmulatedBackend::sum(Op op, std::span<const double> x) {
  if (ones_.size() < x.size()) ones_.assign(x.size(), 1.0);
  return dot(op, x, std::span<const double>(ones_.data(), x.size()));
}

double EmulatedBackend::dot(Op op, std::span<const double> x, std::span<const double> y) {
  const AccumPolicy& policy = *plan_[op].reduce;
  // A kernel loads its operands into the compute type: values of other formats are converted first.
  const Rounder in = make_rounder(policy.input, Rounding::nearest_even);
  scratch_a_.assign(x.begin(), x.end());
  scratch_b_.assign(y.begin(), y.end());
  round_all(in, scratch_a_);
  round_all(in, scratch_b_);
  GemmOptions options;
  options.check_inputs = false;
  options.sr = {seed_, gemm_stream ^ (gemm_calls_++ << 16), 0};
  return lpsim::dot(policy, scratch_a_, scratch_b_, options);
}

Matrix<double> EmulatedBackend::gemm(Op op, const Matrix<double>& a, const Matrix<double>& b,
                                     const std::vector<double>* bias) {
  const OpPrecision& p = plan_[op];
  AccumPolicy policy = *p.gemm;
  Matrix<double> qa = a, qb = b;
  double unscale = 1;
  if (p.scaling) {
    const double sa = pow2_scale(qa.data, policy.input.spec), sb = pow2_scale(qb.data, policy.input.spec);
    for (double& v : qa.data) v *= sa;
    for (double& v : qb.data) v *= sb;
    unscale = 1 / (sa * sb);
  }
  // Operands are converted on entry (autocast casts activations and weights; a cast rounds to nearest even).
  const Rounder in = make_rounder(policy.input, Rounding::nearest_even);
  round_all(in, qa.data);
  round_all(in, qb.data);
  const bool epilogue = bias || p.scaling;
  policy.output = epilogue ? p.compute : p.out;
  policy.output_rounding = epilogue ? Rounding::nearest_even : p.rounding;
  GemmOptions options;
  options.check_inputs = false;
  options.sr = {seed_, gemm_stream ^ (gemm_calls_++ << 16), 0};
  Matrix<double> c(a.rows, b.cols);
  if (fits_float(policy.input.spec) && fits_float(policy.output.spec)) {
    std::vector<float> fa(qa.data.begin(), qa.data.end()), fb(qb.data.begin(), qb.data.end()), fc(c.size());
    lpsim::gemm(policy, a.rows, b.cols, a.cols, fa, fb, fc, options);
    std::copy(fc.begin(), fc.end(), c.data.begin());
  } else {
    lpsim::gemm(policy, a.rows, b.cols, a.cols, qa.data, qb.data, c.data, options);
  }
  if (!epilogue) {
    if (all_finite(qa.data) && all_finite(qb.data))
      events_.overflows += std::count_if(c.data.begin(), c.data.end(), [](double v) { return !std::isfinite(v); });
    return c;
  }
  // Epilogue in the compute precision: unscale, add the bias (stored in the output format), round to the output.
  std::vector<double> rb;
  if (bias) {
    rb = *bias;
    round_all(make_rounder(p.out, Rounding::nearest_even), rb);
  }
  const Rounder& cr = compute_[static_cast<int>(op)];
  for (int i = 0; i < c.rows; ++i)
    for (int j = 0; j < c.cols; ++j) {
      double v = c(i, j);
      if (unscale != 1) v = round_one(cr, v * unscale);
      if (bias) v = round_one(cr, v + rb[j]);
      c(i, j) = v;
    }
  store(op, c);
  return c;
}

}  // namespace lpsim
