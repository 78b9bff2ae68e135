// Jacobian-vector products against central differences, vector-Jacobian products against the adjoint identity
// <u, J v> = <J^T u, v>, the power iteration against the dense Jacobian's SVD, and Theorem 2 on every branch.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>

#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

ModelConfig tiny(Activation act, NormKind norm, NormPosition pos, bool causal) {
  ModelConfig c;
  c.width = 8, c.heads = 2, c.ffn = 16, c.depth = 2, c.tokens = 5, c.init.bias_std = 0.1;
  c.activation = act, c.norm = norm, c.position = pos, c.causal = causal;
  return c;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

std::vector<double> random_vector(std::size_t n, std::uint64_t seed) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = normal_at(seed, 31, i);
  return v;
}

TEST(ResidualGain, DerivativesAreConsistent) {
  for (const ModelConfig& c : {tiny(Activation::gelu, NormKind::layernorm, NormPosition::pre, false),
                               tiny(Activation::gelu_tanh, NormKind::rmsnorm, NormPosition::pre, true),
                               tiny(Activation::gelu, NormKind::layernorm, NormPosition::post, false)}) {
    const Weights<double> w = make_weights(c, 3);
    const std::vector<Matrix<double>> inputs = branch_inputs(c, w, make_input(c, 3));
    ASSERT_EQ(inputs.size(), 4u);
    for (Branch b : {Branch::attention, Branch::ffn}) {
      const Matrix<double>& x = inputs[b == Branch::ffn ? 3 : 2];
      const std::vector<double> v = random_vector(x.size(), 1), u = random_vector(x.size(), 2);
      const std::vector<double> jv = branch_jvp(c, w.layers[1], b, x, v), jtu = branch_vjp(c, w.layers[1], b, x, u);
      EXPECT_NEAR(dot(u, jv), dot(jtu, v), 1e-12 * std::fabs(dot(u, jv)) + 1e-14);
      // Central differences: (f(x + h v) - f(x - h v)) / 2h = J v + O(h^2).
      const double h = 1e-5;
      Matrix<double> xp = x, xm = x;
      for (std::size_t i = 0; i < x.size(); ++i) xp.data[i] += h * v[i], xm.data[i] -= h * v[i];
      const Matrix<double> fp = branch_value(c, w.layers[1], b, xp), fm = branch_value(c, w.layers[1], b, xm);
      double err = 0, scale = 0;
      for (std::size_t i = 0; i < x.size(); ++i)
        err = std::max(err, std::fabs((fp.data[i] - fm.data[i]) / (2 * h) - jv[i])), scale = std::max(scale, std::fabs(jv[i]));
      EXPECT_LT(err, 1e-6 * scale);
      // The dense Jacobian is the same JVP, column by column.
      const Matrix<double> jfull = branch_jacobian(c, w.layers[1], b, x);
      for (std::size_t r = 0; r < x.size(); r += 7) {
        double jv_r = 0;
        for (std::size_t k = 0; k < x.size(); ++k) jv_r += jfull(int(r), int(k)) * v[k];
        EXPECT_NEAR(jv_r, jv[r], 1e-12 * (1 + std::fabs(jv[r])));
      }
    }
  }
}

TEST(ResidualGain, PowerIterationMatchesDenseAndTheorem2Holds) {
  for (const ModelConfig& c : {tiny(Activation::gelu, NormKind::layernorm, NormPosition::pre, false),
                               tiny(Activation::relu, NormKind::rmsnorm, NormPosition::pre, true)}) {
    const Weights<double> w = make_weights(c, 5);
    const std::vector<Matrix<double>> inputs = branch_inputs(c, w, make_input(c, 5));
    for (const ResidualCheck& r : residual_checks(c, w, make_input(c, 5))) {
      EXPECT_LE(r.rho, r.rho_dense * (1 + 1e-9)) << r.layer;  // power iteration approaches from below
      EXPECT_GT(r.rho, 0.9 * r.rho_dense) << r.layer;
      const double converged = branch_gain(c, w.layers[r.layer], r.branch, inputs[2 * r.layer + (r.branch == Branch::ffn)], 3000);
      EXPECT_NEAR(converged / r.rho_dense, 1.0, 1e-4) << r.layer;
      if (r.rho < 1) EXPECT_LE(r.kappa, r.bound * (1 + 1e-12)) << r.layer;  // Theorem 2 is a theorem
      EXPECT_GE(r.kappa, 1.0);
    }
  }
}

// The iterative kappa(I + J_f) (no Jacobian formed) against the dense SVD, on branches with rho below and above 1;
// and residual_checks uses it beyond the dense limit.
TEST(ResidualGain, IterativeConditionMatchesDense) {
  for (double scale : {1.0, 0.3}) {
    ModelConfig c = tiny(Activation::gelu, NormKind::layernorm, NormPosition::pre, false);
    c.init.scale = scale;
    const Weights<double> w = make_weights(c, 7);
    const ModelInput<double> in = make_input(c, 7);
    const std::vector<Matrix<double>> inputs = branch_inputs(c, w, in);
    const std::vector<ResidualCheck> dense = residual_checks(c, w, in);
    const std::vector<ResidualCheck> iterative = residual_checks(c, w, in, /*dense_limit=*/0);
    for (std::size_t i = 0; i < dense.size(); ++i) {
      const ResidualCheck& r = dense[i];
      const ResidualCondition k = residual_condition(c, w.layers[r.layer], r.branch, inputs[2 * r.layer + (r.branch == Branch::ffn)], 200);
      EXPECT_NEAR(k.kappa / r.kappa, 1.0, 1e-6) << "scale " << scale << " layer " << r.layer;
      if (r.branch == Branch::ffn) {  // per-token blocks at any size, checked against the whole dense Jacobian
        const Matrix<double> j = branch_jacobian(c, w.layers[r.layer], r.branch, inputs[2 * r.layer + 1]);
        const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> jm(j.data.data(), j.rows, j.cols);
        const Eigen::VectorXd sj = Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd(jm)).singularValues();
        const Eigen::VectorXd sp = Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd::Identity(j.rows, j.cols) + Eigen::MatrixXd(jm)).singularValues();
        EXPECT_NEAR(iterative[i].rho / sj(0), 1.0, 1e-12);
        EXPECT_NEAR(iterative[i].kappa / (sp(0) / sp(sp.size() - 1)), 1.0, 1e-12);
      } else if (iterative[i].rho < 1) {
        EXPECT_NEAR(iterative[i].kappa / r.kappa, 1.0, 1e-3) << r.layer;
      } else {
        EXPECT_TRUE(std::isnan(iterative[i].kappa));
      }
    }
  }
  // 640 inputs: Lanczos must settle well before it spans the space.
  ModelConfig c = tiny(Activation::gelu, NormKind::layernorm, NormPosition::pre, false);
  c.width = 16, c.ffn = 32, c.tokens = 40, c.depth = 1, c.init.scale = 0.3;
  const Weights<double> w = make_weights(c, 8);
  const std::vector<Matrix<double>> inputs = branch_inputs(c, w, make_input(c, 8));
  for (const ResidualCheck& r : residual_checks(c, w, make_input(c, 8))) {
    const ResidualCondition k = residual_condition(c, w.layers[r.layer], r.branch, inputs[r.branch == Branch::ffn], 200);
    EXPECT_NEAR(k.kappa / r.kappa, 1.0, 1e-6) << int(r.branch);
  }
}

}  // namespace
}  // namespace lpsim
