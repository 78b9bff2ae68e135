#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/diag/diagnostics.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <tuple>

#include "lpsim/diag/autodiff.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/native_backend.hpp"

namespace lpsim {

namespace {

template <class T>
Matrix<T> branch(const ModelConfig& cfg, const LayerWeights<T>& w, Branch b, const Matrix<T>& x) {
  NativeBackend<T> be;
  const bool pre = cfg.position == NormPosition::pre;
  if (b == Branch::attention) return layers::attention(be, cfg, w, pre ? layers::norm(be, cfg.norm, x, w.norm1, cfg.norm_eps) : x);
  return layers::feed_forward(be, cfg, w, pre ? layers::norm(be, cfg.norm, x, w.norm2, cfg.norm_eps) : x);
}

template <class T>
LayerWeights<T> as(const LayerWeights<double>& w) {
  Weights<double> one;
  one.layers.push_back(w);
  return convert_weights<T>(one).layers.front();
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

}  // namespace

std::vector<Matrix<double>> branch_inputs(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  check_diagnosable(cfg);  // the branches below are rebuilt without rotary tables or the norm's cast
  NativeBackend<double> be;
  std::vector<Matrix<double>> out;
  Matrix<double> block_input = layers::embed(be, cfg, w, in);
  forward(be, cfg, w, in, TapSink<double>([&](int, Tap t, const Matrix<double>& m) {
            if (t == Tap::attn) out.push_back(block_input);  // the block's input feeds its attention branch
            if (t == Tap::mid) out.push_back(m);             // the stream after attention feeds the FFN branch
            if (t == Tap::block) block_input = m;
          }));
  return out;
}

Matrix<double> branch_value(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x) {
  return branch(cfg, w, b, x);
}

std::vector<double> branch_jvp(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x,
                               const std::vector<double>& v) {
  Matrix<ad::Dual> xd(x.rows, x.cols);
  for (std::size_t i = 0; i < x.size(); ++i) xd.data[i] = ad::Dual(x.data[i], v[i]);
  const Matrix<ad::Dual> y = branch(cfg, as<ad::Dual>(w), b, xd);
  std::vector<double> out(y.size());
  for (std::size_t i = 0; i < y.size(); ++i) out[i] = y.data[i].d;
  return out;
}

std::vector<double> branch_vjp(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x,
                               const std::vector<double>& u) {
  ad::Tape& tape = ad::Tape::current();
  tape.nodes.clear();
  Matrix<ad::Var> xv(x.rows, x.cols);
  for (std::size_t i = 0; i < x.size(); ++i) xv.data[i] = ad::Var::input(x.data[i]);  // nodes 0..n-1
  const Matrix<ad::Var> y = branch(cfg, as<ad::Var>(w), b, xv);
  std::vector<std::pair<int, double>> seed;
  for (std::size_t i = 0; i < y.size(); ++i)
    if (y.data[i].i >= 0) seed.push_back({y.data[i].i, u[i]});
  const std::vector<double> adj = tape.backward(seed);
  tape.nodes.clear();
  return std::vector<double>(adj.begin(), adj.begin() + static_cast<std::ptrdiff_t>(x.size()));
}

namespace {

// The branch linearised at x: its tape recorded once, on which J v is one forward sweep and J^T u one backward
// sweep. The partials at a fixed x do not change between products, so power iteration and Lanczos evaluate the
// branch once instead of once per product (issue 19: `bounds --residual` spent its time rebuilding tapes).
class Linearised {
 public:
  Linearised(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x)
      : inputs_(x.size()) {
    ad::Tape& tape = ad::Tape::current();
    tape.nodes.clear();
    Matrix<ad::Var> xv(x.rows, x.cols);
    for (std::size_t i = 0; i < x.size(); ++i) xv.data[i] = ad::Var::input(x.data[i]);  // nodes 0..n-1
    const Matrix<ad::Var> y = branch(cfg, as<ad::Var>(w), b, xv);
    outputs_.reserve(y.size());
    for (const ad::Var& v : y.data) outputs_.push_back(v.i);  // -1: an output that does not depend on x
    nodes_ = std::move(tape.nodes);
    tape.nodes.clear();
  }
  // Each product reuses one node-sized buffer: allocating (and the kernel zeroing) 8 bytes a node per product
  // cost more than the sweep itself.
  std::vector<double> jvp(const std::vector<double>& v) const {
    std::vector<double>& t = scratch_;
    t.resize(nodes_.size());
    std::copy(v.begin(), v.end(), t.begin());
    for (std::size_t i = inputs_; i < nodes_.size(); ++i) {
      const ad::Tape::Node& n = nodes_[i];
      t[i] = (n.a >= 0 ? n.da * t[n.a] : 0.0) + (n.b >= 0 ? n.db * t[n.b] : 0.0);
    }
    std::vector<double> out(outputs_.size(), 0.0);
    for (std::size_t k = 0; k < outputs_.size(); ++k)
      if (outputs_[k] >= 0) out[k] = t[outputs_[k]];
    return out;
  }
  std::vector<double> vjp(const std::vector<double>& u) const {
    std::vector<double>& adj = scratch_;
    adj.assign(nodes_.size(), 0.0);
    for (std::size_t k = 0; k < outputs_.size(); ++k)
      if (outputs_[k] >= 0) adj[outputs_[k]] += u[k];
    for (std::size_t i = nodes_.size(); i-- > inputs_;) {
      if (adj[i] == 0) continue;
      const ad::Tape::Node& n = nodes_[i];
      if (n.a >= 0) adj[n.a] += n.da * adj[i];
      if (n.b >= 0) adj[n.b] += n.db * adj[i];
    }
    return std::vector<double>(adj.begin(), adj.begin() + std::ptrdiff_t(inputs_));
  }

 private:
  mutable std::vector<double> scratch_;
  std::size_t inputs_;
  std::vector<int> outputs_;
  std::vector<ad::Tape::Node> nodes_;
};

}  // namespace

double branch_gain(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x,
                   int iterations, std::uint64_t seed) {
  const Linearised j(cfg, w, b, x);
  std::vector<double> v(x.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = normal_at(seed, 0x9a1, i);
  double gain = 0;
  for (int k = 0; k < iterations; ++k) {
    const double n = norm(v);
    if (n == 0) return 0;
    for (double& e : v) e /= n;
    const std::vector<double> jv = j.jvp(v);
    const double previous = gain;
    gain = norm(jv);  // ||J v|| with ||v|| = 1: increases towards ||J||_2
    if (k >= 4 && gain - previous <= 1e-7 * gain) break;  // settled: further steps change the 7th digit at most
    v = j.vjp(jv);
  }
  return gain;
}

Matrix<double> branch_jacobian(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x) {
  const int n = int(x.size());
  Matrix<double> j(n, n);
  std::vector<double> e(n, 0.0);
  for (int c = 0; c < n; ++c) {
    e[c] = 1;
    const std::vector<double> col = branch_jvp(cfg, w, b, x, e);
    for (int r = 0; r < n; ++r) j(r, c) = col[r];
    e[c] = 0;
  }
  return j;
}

namespace {

// The FFN branch acts row by row, so its Jacobian is block diagonal, one width x width block per token. Each block in
// one dual-number pass over width copies of the token whose row k carries the tangent e_k (row k of the output is
// then column k of the block).
std::vector<Eigen::MatrixXd> ffn_token_jacobians(const ModelConfig& cfg, const LayerWeights<double>& w,
                                                 const Matrix<double>& x) {
  const LayerWeights<ad::Dual> wd = as<ad::Dual>(w);
  const int d = x.cols;
  std::vector<Eigen::MatrixXd> blocks;
  for (int t = 0; t < x.rows; ++t) {
    Matrix<ad::Dual> xd(d, d);
    for (int k = 0; k < d; ++k)
      for (int c = 0; c < d; ++c) xd(k, c) = ad::Dual(x(t, c), k == c ? 1.0 : 0.0);
    const Matrix<ad::Dual> y = branch(cfg, wd, Branch::ffn, xd);
    Eigen::MatrixXd j(d, d);
    for (int k = 0; k < d; ++k)
      for (int r = 0; r < d; ++r) j(r, k) = y(k, r).d;
    blocks.push_back(std::move(j));
  }
  return blocks;
}

// rho and kappa(I + J) of the FFN branch from its per-token blocks: exact at any size.
std::pair<double, double> ffn_rho_kappa(const ModelConfig& cfg, const LayerWeights<double>& w, const Matrix<double>& x) {
  double top = 0, plus_max = 0, plus_min = INFINITY;
  for (const Eigen::MatrixXd& j : ffn_token_jacobians(cfg, w, x)) {
    top = std::max(top, Eigen::BDCSVD<Eigen::MatrixXd>(j).singularValues()(0));
    const Eigen::VectorXd s =
        Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd::Identity(j.rows(), j.cols()) + j).singularValues();
    plus_max = std::max(plus_max, s(0)), plus_min = std::min(plus_min, s(s.size() - 1));
  }
  return {top, plus_max / plus_min};
}

}  // namespace

ResidualCondition residual_condition(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b,
                                     const Matrix<double>& x, int iterations, std::uint64_t seed) {
  // `iterations` bounds the Lanczos steps (each one JVP and one VJP).
  // A v = v + J v, A^T u = u + J^T u; M = A^T A is symmetric positive definite when A is invertible.
  const Linearised j(cfg, w, b, x);
  auto apply_m = [&](const std::vector<double>& v) {
    std::vector<double> av = j.jvp(v);
    for (std::size_t i = 0; i < v.size(); ++i) av[i] += v[i];
    std::vector<double> m = j.vjp(av);
    for (std::size_t i = 0; i < v.size(); ++i) m[i] += av[i];
    return m;
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& c) {
    double t = 0;
    for (std::size_t i = 0; i < a.size(); ++i) t += a[i] * c[i];
    return t;
  };
  auto start = [&](std::uint64_t stream) {
    std::vector<double> v(x.size());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = normal_at(seed, stream, i);
    const double n = std::sqrt(dot(v, v));
    for (double& e : v) e /= n;
    return v;
  };
  // Lanczos on M with full reorthogonalisation: the extreme Ritz values converge to M's extreme eigenvalues
  // (sigma_max^2 from below, sigma_min^2 from above) in far fewer products than power or inverse iteration.
  ResidualCondition r;
  const int n = int(x.size()), steps = std::min(n, std::max(iterations, 2));
  std::vector<std::vector<double>> q{start(0xc0d1)};
  std::vector<double> alpha, beta;
  double last_max = 0, last_min = 0;
  for (int k = 0; k < steps; ++k) {
    std::vector<double> z = apply_m(q[k]);
    alpha.push_back(dot(q[k], z));
    for (int pass = 0; pass < 2; ++pass)  // twice is enough (Kahan's "twice is enough")
      for (const auto& qi : q) {
        const double c = dot(qi, z);
        for (int i = 0; i < n; ++i) z[i] -= c * qi[i];
      }
    const double b_next = std::sqrt(dot(z, z));
    Eigen::MatrixXd t = Eigen::MatrixXd::Zero(k + 1, k + 1);
    for (int i = 0; i <= k; ++i) {
      t(i, i) = alpha[i];
      if (i > 0) t(i, i - 1) = t(i - 1, i) = beta[i - 1];
    }
    const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(t, Eigen::EigenvaluesOnly).eigenvalues();
    r.sigma_max = std::sqrt(std::max(ev(k), 0.0)), r.sigma_min = std::sqrt(std::max(ev(0), 0.0));
    const bool settled = k > 4 && std::fabs(r.sigma_max - last_max) <= 1e-13 * r.sigma_max &&
                         std::fabs(r.sigma_min - last_min) <= 1e-13 * r.sigma_min;
    last_max = r.sigma_max, last_min = r.sigma_min;
    if (settled || b_next <= 1e-14 * std::fabs(alpha[k]) || k + 1 == steps) break;  // converged or invariant
    beta.push_back(b_next);
    for (double& e : z) e /= b_next;
    q.push_back(std::move(z));
  }
  if (!(r.sigma_min > 0)) return {r.sigma_max, 0, INFINITY};
  r.kappa = r.sigma_max / r.sigma_min;
  return r;
}

std::vector<ResidualCheck> residual_checks(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in,
                                           int dense_limit) {
  const std::vector<Matrix<double>> inputs = branch_inputs(cfg, w, in);
  std::vector<ResidualCheck> out;
  for (int l = 0; l < cfg.depth; ++l)
    for (Branch b : {Branch::attention, Branch::ffn}) {
      const Matrix<double>& x = inputs[2 * l + (b == Branch::ffn)];
      ResidualCheck r;
      r.layer = l, r.branch = b;
      r.rho_dense = r.kappa = NAN;
      if (b == Branch::ffn) {  // exact at any size: the per-token blocks' singular values
        std::tie(r.rho, r.kappa) = ffn_rho_kappa(cfg, w.layers[l], x);
        r.rho_dense = r.rho;
      } else {
        r.rho = branch_gain(cfg, w.layers[l], b, x);
        if (int(x.size()) <= dense_limit) {
          const Matrix<double> j = branch_jacobian(cfg, w.layers[l], b, x);
          const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> jm(j.data.data(), j.rows, j.cols);
          r.rho_dense = Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd(jm)).singularValues()(0);
          const Eigen::MatrixXd t = Eigen::MatrixXd::Identity(j.rows, j.cols) + Eigen::MatrixXd(jm);
          const Eigen::VectorXd s = Eigen::BDCSVD<Eigen::MatrixXd>(t).singularValues();
          r.kappa = s(0) / s(s.size() - 1);
        } else if (r.rho < 1) {  // too large for the dense Jacobian: iteratively, where Theorem 2 applies
          r.kappa = residual_condition(cfg, w.layers[l], b, x).kappa;
        }
      }
      r.bound = r.rho < 1 ? (1 + r.rho) / (1 - r.rho) : INFINITY;
      r.held = !(r.kappa > r.bound);  // NaN (not checked) counts as held; compare only what was measured
      out.push_back(r);
    }
  return out;
}

void add_residual_gains(std::vector<LayerDiagnostics>& diag, const ModelConfig& cfg, const Weights<double>& w,
                        const ModelInput<double>& in, int iterations) {
  const std::vector<Matrix<double>> x = branch_inputs(cfg, w, in);
  for (int l = 0; l < cfg.depth && l < int(diag.size()); ++l) {
    diag[l].rho_attn = branch_gain(cfg, w.layers[l], Branch::attention, x[2 * l], iterations);
    diag[l].rho_ffn = ffn_rho_kappa(cfg, w.layers[l], x[2 * l + 1]).first;  // exact: per-token blocks
  }
  double amp = 1;  // downstream of the last layer nothing amplifies
  for (int l = int(diag.size()) - 1; l >= 0; --l) {
    diag[l].residual_amplification = amp;
    amp *= (1 + diag[l].rho_attn) * (1 + diag[l].rho_ffn);
  }
}

}  // namespace lpsim
