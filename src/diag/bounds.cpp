#include "lpsim/diag/bounds.hpp"

#include <Eigen/Dense>
#include <cmath>

#include "lpsim/accum/error_bound.hpp"
#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/diag/softmax_jacobian.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/reference/mpfr_backend.hpp"

namespace lpsim {

namespace {

// The reference forward, remembering each layer's attention input and each norm's input (MPFR).
class RecordingMpfr : public MpfrBackend {
 public:
  static constexpr BackendHooks hooks{.observe_norm_input = true, .observe_attention_input = true};
  void set_layer(int l) { layer_ = l; }
  void observe_attention_input(const Matrix<Real>& h) { attention_inputs.push_back({layer_, h}); }
  void observe_norm_input(const Matrix<Real>& x) { norm_inputs.push_back({layer_, x}); }
  std::vector<std::pair<int, Matrix<Real>>> attention_inputs, norm_inputs;

 private:
  int layer_ = 0;
};

Matrix<double> stored(const Matrix<Real>& m, const FormatSpec& f) {
  Matrix<double> out(m.rows, m.cols);
  for (std::size_t i = 0; i < m.size(); ++i) out.data[i] = round_to(m.data[i].convert_to<double>(), f, Rounding::nearest_even);
  return out;
}

// ||x - ref|| / ||ref||, differences formed in MPFR.
double relative_error(const Matrix<double>& x, const Matrix<Real>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double e = Real(Real(x.data[i]) - ref.data[i]).convert_to<double>(), r = ref.data[i].convert_to<double>();
    num += e * e, den += r * r;
  }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

double frobenius(const Matrix<double>& m) {
  double s = 0;
  for (double v : m.data) s += v * v;
  return std::sqrt(s);
}

// First-order worst-case ||fl(N(x)) - N(x)||_F of the plan's normalisation of x (rows), from the kernels' precision
// alone: the mean and the variance as dot products under the norm's reduction policy (theta of
// accum/error_bound.hpp), every elementwise step one rounding in the compute format, the result's storage.
double norm_worst_case(const ModelConfig& cfg, const PrecisionPlan& plan, const Matrix<double>& x,
                       const NormWeights<double>& w, double eps) {
  const int d = x.cols;
  const double u = plan[Op::norm].compute.spec.unit_roundoff(), u_out = plan[Op::norm].out.spec.unit_roundoff();
  const double theta = worst_case_dot_error(*plan[Op::norm].reduce, d);
  const bool centred = cfg.norm == NormKind::layernorm;
  double total = 0;
  std::vector<double> c(d), ec(d);
  for (int i = 0; i < x.rows; ++i) {
    double mean = 0, abs_sum = 0;
    for (int j = 0; j < d; ++j) mean += x(i, j), abs_sum += std::fabs(x(i, j));
    mean = centred ? mean / d : 0.0;
    const double e_mean = centred ? theta * abs_sum / d + u * std::fabs(mean) : 0.0;
    double cc = 0, ec2 = 0;
    for (int j = 0; j < d; ++j) {
      c[j] = x(i, j) - mean;
      ec[j] = centred ? u * (std::fabs(c[j]) + e_mean) + e_mean : 0.0;
      cc += c[j] * c[j], ec2 += ec[j] * ec[j];
    }
    const double v = cc / d;
    const double e_v = theta * v + 2 * std::sqrt(cc) * std::sqrt(ec2) / d + u * v;
    const double den = v + eps, e_den = e_v + u * eps + u * den;
    const double rstd = 1 / std::sqrt(den), rel_rstd = 0.5 * e_den / den + 2 * u;
    for (int j = 0; j < d; ++j) {
      const double g = std::fabs(w.gamma[j]), y = g * c[j] * rstd + (w.beta.empty() ? 0.0 : w.beta[j]);
      const double e = g * (ec[j] * rstd + std::fabs(c[j]) * rstd * rel_rstd) + 2 * u * g * std::fabs(c[j]) * rstd +
                       (w.beta.empty() ? 0.0 : u * std::fabs(y)) + u_out * std::fabs(y);
      total += e * e;
    }
  }
  return std::sqrt(total);
}

}  // namespace

BoundsReport check_local_bounds(const ModelConfig& cfg, const PrecisionPlan& plan, const Weights<double>& w,
                                const ModelInput<double>& in, int reference_bits) {
  check_diagnosable(cfg);  // GQA's key heads are fewer than the query heads: columns(k, head * dh, dh) would overrun
  check_reference_fits(cfg, reference_bits);  // the recorded MPFR forward below, before any work
  set_reference_bits(reference_bits);
  const Weights<Real> wr = convert_weights<Real>(w);
  RecordingMpfr ref;
  forward(ref, cfg, wr, convert_input<Real>(in));
  BoundsReport report;
  const int dh = cfg.head_width();

  // Theorem 1: every head of every layer, from the reference's Q, K, V stored in the GEMM input format.
  for (const auto& [layer, h] : ref.attention_inputs) {
    const LayerWeights<Real>& lw = wr.layers[layer];
    MpfrBackend exact;
    auto bias = [](const std::vector<Real>& b) { return b.empty() ? nullptr : &b; };
    const Matrix<Real> q = exact.gemm(Op::qkv, h, lw.wq, bias(lw.bq)), k = exact.gemm(Op::qkv, h, lw.wk, bias(lw.bk)),
                       v = exact.gemm(Op::qkv, h, lw.wv, bias(lw.bv));
    const FormatSpec& score_in = plan[Op::score].gemm->input.spec;
    const FormatSpec& pv_in = plan[Op::pv].gemm->input.spec;
    for (int head = 0; head < cfg.heads; ++head) {
      const Matrix<double> qh = stored(columns(q, head * dh, dh), score_in), kh = stored(columns(k, head * dh, dh), score_in),
                           vh = stored(columns(v, head * dh, dh), pv_in);
      // The exact attention of these stored inputs.
      MpfrBackend m;
      Matrix<Real> s = m.gemm(Op::score, convert<Real>(qh), transpose(convert<Real>(kh)), nullptr);
      layers::scale_scores(m, s, dh);
      const Matrix<Real> p = layers::softmax(m, s, cfg.causal);
      const Matrix<Real> a = m.gemm(Op::pv, p, convert<Real>(vh), nullptr);
      // The plan's attention of the same inputs.
      EmulatedBackend e(plan);
      Matrix<double> se = e.gemm(Op::score, qh, transpose(kh), nullptr);
      layers::scale_scores(e, se, dh);
      const Matrix<double> pe = layers::softmax(e, se, cfg.causal);
      const Matrix<double> ae = e.gemm(Op::pv, pe, vh, nullptr);

      AttentionBound b;
      b.layer = layer, b.head = head;
      b.observed = relative_error(ae, a);
      const Matrix<double> sd = convert<double>(s), pd = convert<double>(p);
      b.kappa_score = frobenius(qh) * frobenius(kh) / (frobenius(sd) * std::sqrt(double(dh)));
      for (int i = 0; i < pd.rows; ++i) {
        const int valid = cfg.causal ? std::min(i + 1, pd.cols) : pd.cols;
        double ns = 0, np = 0;
        for (int j = 0; j < valid; ++j) ns += sd(i, j) * sd(i, j), np += pd(i, j) * pd(i, j);
        b.kappa_softmax = std::max(b.kappa_softmax, softmax_jacobian_norm(std::span<const double>(pd.row(i).data(), valid)) *
                                                        std::sqrt(ns / np));
      }
      b.kappa_v = condition_number(vh);  // the theorem's kappa(V), no ridge (a rank-deficient V makes it vacuous)
      b.eps_mach = 2 * plan.unit_roundoff();
      const double shape = (2 + b.kappa_softmax * (1 + b.kappa_score)) * b.eps_mach * b.kappa_v;
      b.bound = shape;
      b.c_min = b.observed / shape;
      b.held = b.observed <= b.bound;
      const auto& acc = plan[Op::score].gemm->acc;
      b.eps_mach_acc = std::ldexp(1.0, 1 - (acc ? acc->spec.precision : score_in.precision));
      b.bound_acc = shape / b.eps_mach * b.eps_mach_acc;
      b.held_acc = b.observed <= b.bound_acc;
      // The same with worst-case constants from the plan's kernels (accum/error_bound.hpp): the score and PV
      // products' theta, the scaling's roundings, softmax's gamma_{n+3} in its compute format plus the storage of P.
      const int n = pd.cols;
      const double u_scale = plan[Op::scale].compute.spec.unit_roundoff() + plan[Op::scale].out.spec.unit_roundoff();
      const double theta_score = worst_case_dot_error(*plan[Op::score].gemm, dh);
      const double theta_pv = worst_case_dot_error(*plan[Op::pv].gemm, n);
      const double theta_smx = gamma_n(n + 3, plan[Op::softmax].compute.spec.unit_roundoff()) +
                               plan[Op::softmax].out.spec.unit_roundoff() + pv_in.unit_roundoff();
      b.bound_wc = (theta_smx + b.kappa_softmax * (u_scale + theta_score * b.kappa_score) + theta_pv) * b.kappa_v;
      b.held_wc = b.observed <= b.bound_wc;
      report.attention.push_back(b);
    }
  }

  // Proposition 1: every normalisation, from the reference's input stored in the residual format.
  const FormatSpec& residual = plan[Op::residual].out.spec;
  std::vector<int> seen(cfg.depth, 0);
  for (const auto& [layer, x] : ref.norm_inputs) {
    const int which = ++seen[layer];
    const LayerWeights<Real>& lw = wr.layers[layer];
    const NormWeights<Real>& nw = which == 1 ? lw.norm1 : lw.norm2;
    const Matrix<double> xs = stored(x, residual);
    MpfrBackend m;
    const Matrix<Real> y = layers::norm(m, cfg.norm, convert<Real>(xs), nw, cfg.norm_eps);
    EmulatedBackend e(plan);
    const NormWeights<double>& nd = which == 1 ? w.layers[layer].norm1 : w.layers[layer].norm2;
    const Matrix<double> ye = layers::norm(e, cfg.norm, xs, nd, cfg.norm_eps);
    NormBound b;
    b.layer = layer, b.which = which;
    b.observed = relative_error(ye, y);
    b.sigma2 = median_row_moment(xs, cfg.norm);
    b.eps_mach = 2 * plan.unit_roundoff();
    b.eps_mach_acc = std::ldexp(1.0, 1 - plan[Op::norm].compute.spec.precision);
    const double eps = nd.eps >= 0 ? nd.eps : cfg.norm_eps;  // a checkpoint's own eps where it has one
    b.rho_ln = eps > 0 ? b.sigma2 / eps * cfg.width * b.eps_mach : INFINITY;
    b.dominated = b.rho_ln < 1;
    const double shape = b.eps_mach * (std::sqrt(b.sigma2 / eps) + b.sigma2 / eps + 1);
    b.bound = shape;
    b.c_min = b.observed / shape;
    b.held = b.observed <= b.bound;
    b.bound_acc = shape / b.eps_mach * b.eps_mach_acc;
    b.held_acc = b.observed <= b.bound_acc;
    b.bound_wc = norm_worst_case(cfg, plan, xs, nd, eps) / frobenius(convert<double>(y));
    b.held_wc = b.observed <= b.bound_wc;
    report.norms.push_back(b);
  }
  return report;
}

}  // namespace lpsim
