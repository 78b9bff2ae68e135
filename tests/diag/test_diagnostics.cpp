// Diagnostics against brute force: the softmax Jacobian's norm against a dense eigensolver and hand cases, the
// per-head diagnostics against an independent Eigen forward, condition numbers against constructed spectra.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>

#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/diag/diagnostic_columns.hpp"
#include "lpsim/diag/softmax_jacobian.hpp"
#include "lpsim/model/init.hpp"
#include "support/eigen_transformer.hpp"

namespace lpsim {
namespace {

double dense_norm(const std::vector<double>& p) {
  const Eigen::Map<const Eigen::VectorXd> v(p.data(), Eigen::Index(p.size()));
  const Eigen::MatrixXd j = Eigen::MatrixXd(v.asDiagonal()) - v * v.transpose();
  return Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(j).eigenvalues().cwiseAbs().maxCoeff();
}

std::vector<double> softmax_of(const std::vector<double>& s) {
  std::vector<double> p(s.size());
  const double m = *std::max_element(s.begin(), s.end());
  double z = 0;
  for (std::size_t i = 0; i < s.size(); ++i) z += (p[i] = std::exp(s[i] - m));
  for (double& v : p) v /= z;
  return p;
}

TEST(SoftmaxJacobian, HandCases) {
  EXPECT_DOUBLE_EQ(softmax_jacobian_norm(std::vector<double>{0.5, 0.5}), 0.5);          // a two-way tie: the maximum
  EXPECT_DOUBLE_EQ(softmax_jacobian_norm(std::vector<double>{0.5, 0.5, 0, 0}), 0.5);
  EXPECT_EQ(softmax_jacobian_norm(std::vector<double>{0, 1, 0}), 0.0);                 // one-hot: J = 0
  for (int n : {2, 3, 7, 64}) {
    std::vector<double> u(n, 1.0 / n);
    EXPECT_NEAR(softmax_jacobian_norm(u), 1.0 / n, 1e-15) << n;                      // uniform: 1/n on 1-perp
  }
}

TEST(SoftmaxJacobian, MatchesDenseEigensolverAndPowerEstimateIsBelow) {
  std::uint64_t seed = 1;
  for (int n : {2, 3, 5, 17, 65, 200})
    for (double scale : {0.1, 1.0, 4.0, 20.0}) {
      std::vector<double> s(n);
      for (int i = 0; i < n; ++i) s[i] = scale * normal_at(seed, 3, i);
      ++seed;
      const std::vector<double> p = softmax_of(s);
      const double exact = dense_norm(p), got = softmax_jacobian_norm(p);
      EXPECT_NEAR(got, exact, 1e-13 + 1e-12 * exact) << "n=" << n << " scale=" << scale;
      const double power = softmax_jacobian_norm_power(p, 3);
      EXPECT_LE(power, exact * (1 + 1e-9) + 1e-15);  // a Rayleigh quotient: below the top eigenvalue
      EXPECT_GE(power, 0.0);
    }
}

TEST(Diagnostics, ConditionNumbersOfConstructedSpectra) {
  const Eigen::MatrixXd u = Eigen::HouseholderQR<Eigen::MatrixXd>(Eigen::MatrixXd::Random(9, 5)).householderQ() *
                            Eigen::MatrixXd::Identity(9, 5);
  const Eigen::MatrixXd v = Eigen::HouseholderQR<Eigen::MatrixXd>(Eigen::MatrixXd::Random(5, 5)).householderQ();
  const Eigen::VectorXd sigma = (Eigen::VectorXd(5) << 40, 8, 3, 1, 0.25).finished();
  const test::Mat a = u * sigma.asDiagonal() * v.transpose();
  const Matrix<double> m = test::from_eigen(a);
  EXPECT_NEAR(condition_number(m), 160.0, 1e-9);
  EXPECT_NEAR(condition_number(m, 1e-6), 40 / (0.25 + 1e-6), 1e-9);
  EXPECT_NEAR(spectral_norm(m), 40.0, 1e-12);
  EXPECT_NEAR(condition_number(transpose(m)), 160.0, 1e-9);
}

// Layer 0's per-head diagnostics recomputed from an independent Eigen forward.
TEST(Diagnostics, HeadsMatchAnIndependentComputation) {
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 24, c.depth = 2, c.tokens = 11, c.init.bias_std = 0.1;  // tokens >= d_head
  for (bool causal : {false, true}) {
    c.causal = causal;
    const Weights<double> w = make_weights(c, 5);
    const ModelInput<double> in = make_input(c, 5);
    const std::vector<LayerDiagnostics> d = diagnose(c, w, in);
    ASSERT_EQ(d.size(), 2u);
    ASSERT_EQ(d[0].heads.size(), 2u);
    const test::Mat x = test::to_eigen(in.x);
    const test::Mat h = test::layer_norm(x, w.layers[0].norm1, c.norm_eps, false);
    const test::Mat q = test::linear(h, w.layers[0].wq, w.layers[0].bq), k = test::linear(h, w.layers[0].wk, w.layers[0].bk);
    const test::Mat v = test::linear(h, w.layers[0].wv, w.layers[0].bv);
    const int dh = c.head_width();
    for (int a = 0; a < 2; ++a) {
      const test::Mat qa = q.middleCols(a * dh, dh), ka = k.middleCols(a * dh, dh), va = v.middleCols(a * dh, dh);
      const test::Mat s = qa * ka.transpose() / std::sqrt(double(dh));
      const test::Mat p = test::softmax(s, causal);
      const double kappa_score = qa.norm() * ka.norm() / (s.norm() * std::sqrt(double(dh)));
      double kappa_softmax = 0;
      for (int i = 0; i < c.tokens; ++i) {
        const int n = causal ? i + 1 : c.tokens;
        std::vector<double> row(p.row(i).data(), p.row(i).data() + n);
        kappa_softmax = std::max(kappa_softmax, dense_norm(row) * s.row(i).head(n).norm() / p.row(i).head(n).norm());
      }
      const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(va).singularValues();
      const HeadDiagnostics& got = d[0].heads[a];
      EXPECT_NEAR(got.kappa_score, kappa_score, 1e-12 * kappa_score);
      EXPECT_NEAR(got.kappa_softmax, kappa_softmax, 1e-11 * kappa_softmax);
      EXPECT_NEAR(got.kappa_v, sv(0) / (sv(dh - 1) + 1e-6), 1e-9 * got.kappa_v);
    }
    EXPECT_DOUBLE_EQ(d[0].kappa_softmax, std::max(d[0].heads[0].kappa_softmax, d[0].heads[1].kappa_softmax));
    // The variance at the first norm's input: the median over tokens.
    std::vector<double> var;
    for (int i = 0; i < c.tokens; ++i) var.push_back((x.row(i).array() - x.row(i).mean()).square().mean());
    std::sort(var.begin(), var.end());
    EXPECT_NEAR(d[0].sigma2_norm1, var[5], 1e-14 * var[5]);
  }
}

// RMSNorm divides by sqrt(mean(x^2) + eps): its sigma^2 is the uncentred second moment, LayerNorm's the variance.
TEST(Diagnostics, NormMomentFollowsTheNormKind) {
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 24, c.depth = 1, c.tokens = 11;
  c.input.scale = 1.0;
  for (NormKind kind : {NormKind::layernorm, NormKind::rmsnorm}) {
    c.norm = kind;
    const Weights<double> w = make_weights(c, 3);
    ModelInput<double> in = make_input(c, 3);
    for (double& v : in.x.data) v += 2.0;  // a mean far from zero separates the two moments
    const std::vector<LayerDiagnostics> d = diagnose(c, w, in);
    const test::Mat x = test::to_eigen(in.x);
    std::vector<double> m;
    for (int i = 0; i < c.tokens; ++i)
      m.push_back(kind == NormKind::rmsnorm ? x.row(i).array().square().mean()
                                            : (x.row(i).array() - x.row(i).mean()).square().mean());
    std::sort(m.begin(), m.end());
    EXPECT_NEAR(d[0].sigma2_norm1, m[5], 1e-14 * m[5]) << norm_name(kind);
  }
}

TEST(Diagnostics, PredictorByHand) {
  ModelConfig c;
  c.width = 100, c.norm_eps = 1e-2;
  LayerDiagnostics d;
  d.kappa_softmax = 0.4, d.kappa_score = 3, d.kappa_v = 5, d.wo_norm = 2;
  d.kappa_w1 = 3, d.kappa_w2 = 2.5, d.kappa_wo = 1.5, d.kappa_eff = 7;  // kappa(W_O) must not count twice
  d.sigma2_norm1 = 1e-4;  // rho = 1e-4 / 1e-2 * 100 * 2^-10 < 1: eps-dominated, C = 0.1 + 0.01 + 1
  d.sigma2_norm2 = 4.0;   // rho = 400 * 100 * 2^-10 > 1: C = 1
  const Predictor p = predictor(d, c, 0x1p-10);
  EXPECT_NEAR(p.rho_ln1, 1e-2 * 100 * 0x1p-10, 1e-15);
  EXPECT_NEAR(p.c_ln, 1.11 + 1, 1e-12);
  EXPECT_NEAR(p.combined, 0.4 * 4 * 5 * 2 + (3 + 2.5) + 2.11, 1e-12);
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// The quantities of arXiv 2503.10251, 2602.18849 and 2602.18851: the power iteration against the SVD, the condition number the initialiser set,
// the logit bound above every observed logit (no biases), the FP8 scale's guarantee, theta in [0, 1].
TEST(Diagnostics, QueryKeyGeometry) {
  ModelConfig c;
  c.width = 32, c.heads = 2, c.ffn = 48, c.depth = 2, c.tokens = 20, c.bias = false;
  c.init.kappa_qk = 1000, c.init.logit_scale = 3;
  const Weights<double> w = make_weights(c, 2);
  const std::vector<LayerDiagnostics> d = diagnose(c, w, make_input(c, 2));
  for (const LayerDiagnostics& l : d) {
    EXPECT_NEAR(l.qk_norm_power / l.qk_norm, 1.0, 1e-9);
    EXPECT_NEAR(l.qk_cond / 1000, 1.0, 1e-3);  // fp32 storage moves it slightly
    EXPECT_GE(l.qk_ratio, l.qk_cond * l.qk_norm * (1 - 1e-12));  // sigma_max(|Q||K|^T) >= sigma_max(Q K^T)
    EXPECT_LE(l.logit_max, l.logit_bound);
    EXPECT_GT(l.logit_max, 0.0);
    EXPECT_LE(l.logit_bound * l.fp8_scale, 448.0);
    EXPECT_GT(2 * l.logit_bound * l.fp8_scale, 448.0);
    EXPECT_GE(l.theta_max, l.theta_mean);
    EXPECT_LE(l.theta_max, 1.0);
    EXPECT_GT(l.theta_mean, 0.0);
  }
  // Random (unshaped) weights: the power iteration still finds the SVD's norm.
  ModelConfig r = c;
  r.init.kappa_qk = 0, r.init.logit_scale = 0;
  const Weights<double> wr = make_weights(r, 3);
  for (int l = 0; l < r.depth; ++l) {
    const Matrix<double> q = columns(wr.layers[l].wq, 0, 16), k = columns(wr.layers[l].wk, 0, 16);
    const test::Mat m = test::to_eigen(q) * test::to_eigen(k).transpose();
    const double svd = Eigen::JacobiSVD<Eigen::MatrixXd>(m).singularValues()(0);
    EXPECT_NEAR(qk_norm_power(q, k, 200) / svd, 1.0, 1e-6);
  }
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// Every per-tap CSV row carries as many diagnostic cells as the header names, with diagnostics and without.
TEST(DiagnosticColumns, CellsMatchTheHeader) {
  const ModelConfig cfg = parse_model_config("[model]\nwidth = 8\nheads = 2\nffn = 16\ndepth = 2\ntokens = 5\n", "t.toml");
  const PrecisionPlan plan = plan_preset("autocast-bf16");
  const auto commas = [](const std::string& s) { return std::count(s.begin(), s.end(), ','); };
  const std::vector<LayerDiagnostics> d = diagnose(cfg, make_weights(cfg, 1), make_input(cfg, 1));
  EXPECT_EQ(commas(diagnostic_cells(d, cfg, plan, 1)), commas(diagnostic_header()));
  EXPECT_EQ(commas(diagnostic_cells({}, cfg, plan, 1)), commas(diagnostic_header()));
  EXPECT_EQ(diagnostic_cells({}, cfg, plan, 0).find(",nan,"), 0u);
  EXPECT_NE(diagnostic_cells(d, cfg, plan, 0).substr(0, 5), ",nan,");
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// The batch form against single-input diagnoses of its members: maxima of maxima, the median (here the mean of two)
// of the norm-input variances, the weights' parts unchanged, and a logit bound that holds for every member.
TEST(Diagnostics, BatchFormCombinesItsMembers) {
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 32, c.depth = 2, c.tokens = 10, c.init.bias_std = 0.1;
  const Weights<double> w = make_weights(c, 5);
  const std::vector<ModelInput<double>> in = {make_input(c, 5, 0), make_input(c, 5, 1)};
  const auto a = diagnose(c, w, in[0]), b = diagnose(c, w, in[1]);
  const auto batch = diagnose(c, w, std::span<const ModelInput<double>>(in));
  for (int l = 0; l < c.depth; ++l) {
    EXPECT_EQ(batch[l].kappa_softmax, std::max(a[l].kappa_softmax, b[l].kappa_softmax));
    EXPECT_EQ(batch[l].kappa_score, std::max(a[l].kappa_score, b[l].kappa_score));
    EXPECT_EQ(batch[l].kappa_v, std::max(a[l].kappa_v, b[l].kappa_v));
    EXPECT_EQ(batch[l].logit_max, std::max(a[l].logit_max, b[l].logit_max));
    EXPECT_DOUBLE_EQ(batch[l].sigma2_norm1, (a[l].sigma2_norm1 + b[l].sigma2_norm1) / 2);
    EXPECT_EQ(batch[l].kappa_eff, a[l].kappa_eff);
    EXPECT_EQ(batch[l].qk_norm, a[l].qk_norm);
    EXPECT_EQ(batch[l].logit_bound, std::max(a[l].logit_bound, b[l].logit_bound));  // monotone in the row norm
    EXPECT_LE(batch[l].logit_max, batch[l].logit_bound);
  }
}

}  // namespace
}  // namespace lpsim
