#include "lpsim/reference/dd_backend.hpp"

#include <boost/multiprecision/mpfr.hpp>
#include <mpfr.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "lpsim/format/random_stream.hpp"
#include "lpsim/model/layers.hpp"

namespace lpsim {

namespace {

// The check's numbers: a fixed precision of 58 decimal digits (194 bits), so no process-wide MPFR setting is
// touched while MPFR references run in other threads.
using Check = boost::multiprecision::number<boost::multiprecision::mpfr_float_backend<58>,
                                            boost::multiprecision::et_off>;

Check exact(const DD& v) { return Check(v.x[0]) + Check(v.x[1]); }
double error_of(const DD& v, const Check& want) { return std::fabs(Check(exact(v) - want).convert_to<double>()); }

// Adds the time of a check to SampledCheck::seconds.
struct CheckTimer {
  double& total;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~CheckTimer() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

constexpr std::uint64_t kStream = 0x64646368656b6bULL;  // "ddcheck"

}  // namespace

double SampledCheck::worst() const { return std::max({gemm_error, norm_error, softmax_error, activation_error}); }

DdBackend::DdBackend(const ModelConfig& cfg, std::uint64_t seed, int samples)
    : activation_(cfg.activation), seed_(seed), samples_(samples) {
  check_.bits = samples > 0 ? int(std::numeric_limits<Check>::digits) : 0;
}

std::uint64_t DdBackend::pick(std::uint64_t below) { return random_bits(seed_, kStream, draws_++) % below; }

Matrix<DD> DdBackend::gemm(Op, const Matrix<DD>& a, const Matrix<DD>& b, const std::vector<DD>* bias) {
  Matrix<DD> c = dd_gemm(a, b);
  if (samples_ > 0) {
    std::vector<double> hi(b.size()), lo(b.size());
    for (std::size_t i = 0; i < b.size(); ++i) hi[i] = b.data[i].x[0], lo[i] = b.data[i].x[1];
    check_gemm(a, hi.data(), lo.data(), b.cols, nullptr, c);
  }
  if (bias)  // no layer passes one (biases are weights, doubles): added after the checked product
    for (int i = 0; i < c.rows; ++i)
      for (int j = 0; j < c.cols; ++j) c(i, j) += (*bias)[j];
  return c;
}

Matrix<DD> DdBackend::linear(Op op, const Matrix<DD>& x, const Matrix<double>& w, const std::vector<double>* bias) {
  Matrix<DD> c = dd_gemm(x, w, bias);
  if (samples_ > 0) {
    check_gemm(x, w.data.data(), nullptr, w.cols, bias, c);
    if (op == Op::ffn_up) check_activation(c);
  }
  return c;
}

DD DdBackend::sum(Op, std::span<const DD> x) {
  DD s(0.0);
  for (const DD& v : x) s = DD::ieee_add(s, v);
  return s;
}

DD DdBackend::dot(Op, std::span<const DD> x, std::span<const DD> y) {
  DD s(0.0);
  for (std::size_t i = 0; i < x.size(); ++i) s = DD::ieee_add(s, x[i] * y[i]);
  return s;
}

void DdBackend::check_gemm(const Matrix<DD>& a, const double* b_hi, const double* b_lo, int n,
                           const std::vector<double>* bias, const Matrix<DD>& c) {
  const CheckTimer timer{check_.seconds};
  const int k = a.cols;
  // Raw MPFR with fma here (the sampled GEMM entries are most of the check's work); both operands exact.
  const mpfr_prec_t prec = std::numeric_limits<Check>::digits;
  mpfr_t acc, x, y;
  mpfr_inits2(prec, acc, x, y, static_cast<mpfr_ptr>(nullptr));
  for (int t = 0; t < samples_; ++t) {
    const int i = int(pick(a.rows)), j = int(pick(n));
    mpfr_set_zero(acc, 1);
    double scale = 0;
    for (int l = 0; l < k; ++l) {
      const std::size_t at = std::size_t(l) * n + j;
      mpfr_set_d(x, a(i, l).x[0], MPFR_RNDN);
      mpfr_add_d(x, x, a(i, l).x[1], MPFR_RNDN);
      mpfr_set_d(y, b_hi[at], MPFR_RNDN);
      if (b_lo) mpfr_add_d(y, y, b_lo[at], MPFR_RNDN);
      mpfr_fma(acc, x, y, acc, MPFR_RNDN);
      scale += std::fabs(a(i, l).x[0] * b_hi[at]);
    }
    if (bias) mpfr_add_d(acc, acc, (*bias)[j], MPFR_RNDN), scale += std::fabs((*bias)[j]);
    // The difference c - exact, formed in MPFR.
    mpfr_set_d(x, c(i, j).x[0], MPFR_RNDN);
    mpfr_add_d(x, x, c(i, j).x[1], MPFR_RNDN);
    mpfr_sub(x, x, acc, MPFR_RNDN);
    if (scale > 0) check_.gemm_error = std::max(check_.gemm_error, std::fabs(mpfr_get_d(x, MPFR_RNDN)) / scale);
    ++check_.gemm_samples;
  }
  mpfr_clears(acc, x, y, static_cast<mpfr_ptr>(nullptr));
}

void DdBackend::check_norm(NormKind kind, const Matrix<DD>& x, const NormWeights<double>& w, double eps, bool,
                           const Matrix<DD>& y) {
  if (samples_ <= 0) return;
  const CheckTimer timer{check_.seconds};
  const int d = x.cols, rows = std::min(x.rows, 2);
  for (int t = 0; t < rows; ++t) {
    const int i = int(pick(x.rows));
    Check mean(0), second(0);
    std::vector<Check> centred(d);
    for (int j = 0; j < d; ++j) mean += exact(x(i, j));
    mean /= d;
    for (int j = 0; j < d; ++j) {
      centred[j] = kind == NormKind::layernorm ? Check(exact(x(i, j)) - mean) : exact(x(i, j));
      second += centred[j] * centred[j];
    }
    const Check rstd = 1 / sqrt(second / d + Check(w.eps >= 0 ? w.eps : eps));
    for (int j = 0; j < d; ++j) {
      const Check g = centred[j] * rstd * w.gamma[j];
      const Check want = w.beta.empty() ? g : Check(g + w.beta[j]);
      const double scale = std::fabs(g.convert_to<double>()) + (w.beta.empty() ? 0.0 : std::fabs(w.beta[j]));
      if (scale > 0) check_.norm_error = std::max(check_.norm_error, error_of(y(i, j), want) / scale);
    }
    ++check_.norm_samples;
  }
}

void DdBackend::check_softmax(const Matrix<DD>& s, bool causal, const Matrix<DD>& p) {
  if (samples_ <= 0) return;
  const CheckTimer timer{check_.seconds};
  const int rows = std::min(s.rows, 2);
  for (int t = 0; t < rows; ++t) {
    const int i = int(pick(s.rows));
    const int valid = causal ? std::min(i + 1, s.cols) : s.cols;
    std::vector<Check> e(valid);
    Check top = exact(s(i, 0)), z(0);
    for (int j = 1; j < valid; ++j) top = std::max(top, exact(s(i, j)));
    for (int j = 0; j < valid; ++j) z += e[j] = exp(exact(s(i, j)) - top);
    // Probabilities: errors relative to their sum, 1.
    for (int j = 0; j < valid; ++j) check_.softmax_error = std::max(check_.softmax_error, error_of(p(i, j), e[j] / z));
    ++check_.softmax_samples;
  }
}

void DdBackend::check_activation(const Matrix<DD>& u) {
  const CheckTimer timer{check_.seconds};
  for (int t = 0; t < samples_; ++t) {
    const DD x = u.data[pick(u.size())];
    const double scale = std::fabs(to_double(x));  // |f(x)| <= |x| for every activation: errors relative to |x|
    if (scale == 0) continue;
    const DD got = layers::activation(activation_, x);
    const Check want = layers::activation(activation_, exact(x));
    check_.activation_error = std::max(check_.activation_error, error_of(got, want) / scale);
    ++check_.activation_samples;
  }
}

}  // namespace lpsim
