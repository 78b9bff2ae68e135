#pragma once
// Residual branch gains rho_l = ||J_f||_2 (arXiv 2510.21770, Theorem 2 and Corollary 1) at the float64 forward's own
// inputs of each branch: f_attn(X) = MHSA(N1(X)) and f_ffn(X) = FFN(N2(X)) for pre-LN blocks (MHSA(X), FFN(X)
// for post-LN, whose norm sits outside the residual sum). Power iteration on J^T J with Jacobian-vector products
// (dual numbers) and vector-Jacobian products (a reverse-mode tape), both running the one forward of layers.hpp;
// a dense Jacobian (one JVP per input) for small models and for Theorem 2's check of kappa(I + J_f).
#include <cstdint>
#include <vector>

#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

enum class Branch : std::uint8_t { attention, ffn };

// The inputs of every layer's two branches in the float64 forward: [2 l] attention, [2 l + 1] FFN.
std::vector<Matrix<double>> branch_inputs(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in);

// The branch's value f(x) in double.
Matrix<double> branch_value(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x);
// J v and J^T u of a branch at x (v, u flattened row-major like x).
std::vector<double> branch_jvp(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x,
                               const std::vector<double>& v);
std::vector<double> branch_vjp(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x,
                               const std::vector<double>& u);
// ||J||_2 by at most `iterations` steps of power iteration on J^T J (from a seeded start), stopping once a step
// changes it by less than 1e-7 relative: a lower bound that converges.
double branch_gain(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x,
                   int iterations = 30, std::uint64_t seed = 0);
// The dense Jacobian (rows: outputs, columns: inputs), by one JVP per input.
Matrix<double> branch_jacobian(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b, const Matrix<double>& x);

// Fills rho_attn, rho_ffn and residual_amplification of every layer's diagnostics: rho_attn by power iteration
// (`iterations`), rho_ffn exactly from the FFN's per-token Jacobian blocks (the branch acts row by row).
void add_residual_gains(std::vector<LayerDiagnostics>& diag, const ModelConfig& cfg, const Weights<double>& w,
                        const ModelInput<double>& in, int iterations = 30);

// kappa(I + J_f) without forming J: Lanczos with full reorthogonalisation on (I + J)^T (I + J) (one JVP and one
// VJP per step), at most `iterations` steps, stopping when both extreme Ritz values settle to 1e-13; for branches
// beyond the dense Jacobian's reach. Both extremes are approached from inside the spectrum, so kappa from below.
struct ResidualCondition {
  double sigma_max = 0, sigma_min = 0, kappa = 0;
};
ResidualCondition residual_condition(const ModelConfig& cfg, const LayerWeights<double>& w, Branch b,
                                     const Matrix<double>& x, int iterations = 300, std::uint64_t seed = 0);

struct ResidualCheck {
  int layer = 0;
  Branch branch = Branch::attention;
  double rho = 0;             // power iteration
  double rho_dense = 0;       // from the dense Jacobian (NaN when skipped)
  double kappa = 0;           // kappa(I + J_f): dense Jacobian up to dense_limit inputs, else iterative where rho < 1
                              // (NaN when skipped: rho >= 1 beyond the dense limit)
  double bound = 0;           // (1 + rho)/(1 - rho), infinity when rho >= 1 (Theorem 2 then says nothing)
  bool held = false;
};
// Every branch of every layer; dense checks when the branch has at most `dense_limit` inputs, iterative ones
// (residual_condition) beyond it where rho < 1.
std::vector<ResidualCheck> residual_checks(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in,
                                           int dense_limit = 1024);

}  // namespace lpsim
