#pragma once
// The double-double reference forward: every value a dd_real (about 106 bits), GEMMs as compensated dot products
// (each product split exactly by an fma, the running sum by TwoSum, the error terms summed in a second double:
// Ogita-Rump-Oishi's Dot2 with a double-double operand), weights and input read as the doubles they are.
// It costs a few times an fp64 forward instead of MPFR's hundreds, and checks itself against MPFR as it goes: a
// random sample of entries of every GEMM, of rows of every norm and softmax, and of activation inputs is recomputed
// in MPFR from the same double-double inputs (docs/REFERENCE.md says what the check measures and what it does not).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "lpsim/model/backend.hpp"
#include "lpsim/model/matrix.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"
#include "lpsim/reference/double_double.hpp"

namespace lpsim {

using DD = dd_real;

// C = A B (+ bias): A m x k, B k x n; B's low parts may be absent (a double weight). Every entry summed in index
// order, so the result does not depend on threads or tiling.
Matrix<DD> dd_gemm(const Matrix<DD>& a, const Matrix<DD>& b, const std::vector<double>* bias = nullptr);
Matrix<DD> dd_gemm(const Matrix<DD>& a, const Matrix<double>& b, const std::vector<double>* bias = nullptr);

// What the sampled MPFR check found, per kind of operation: the largest error of the sampled outputs relative to
// the scale that bounds them (GEMM entries: sum |a_l b_l| + |bias|; norms, softmax, activations: |exact value|).
struct SampledCheck {
  int bits = 0;            // MPFR precision of the check (194 bits; 0: not checked)
  long gemm_samples = 0, norm_samples = 0, softmax_samples = 0, activation_samples = 0;
  double gemm_error = 0, norm_error = 0, softmax_error = 0, activation_error = 0;
  double seconds = 0;      // time spent checking
  double worst() const;    // the largest of the four
};

class DdBackend {
 public:
  using Scalar = DD;
  using Weight = double;  // weights are read as doubles in place
  static constexpr BackendHooks hooks{.check_norm = true, .check_softmax = true};
  // samples: GEMM entries (and norm/softmax rows, activation inputs) recomputed in MPFR per call; 0 checks nothing.
  DdBackend(const ModelConfig& cfg, std::uint64_t seed, int samples = 48);

  Matrix<DD> gemm(Op op, const Matrix<DD>& a, const Matrix<DD>& b, const std::vector<DD>* bias);
  Matrix<DD> linear(Op op, const Matrix<DD>& x, const Matrix<double>& w, const std::vector<double>* bias);
  DD sum(Op, std::span<const DD> x);
  DD dot(Op, std::span<const DD> x, std::span<const DD> y);
  DD compute(Op, const DD& v) { return v; }
  void store(Op, Matrix<DD>&) {}
  DD chain_step(Op, const DD& v) { return v; }
  void set_layer(int layer) {
    if (on_layer) on_layer(layer);
  }
  void check_norm(NormKind kind, const Matrix<DD>& x, const NormWeights<double>& w, double eps, bool cast,
                  const Matrix<DD>& y);
  void check_softmax(const Matrix<DD>& s, bool causal, const Matrix<DD>& p);
  // The sampled check of c = x w + bias (what linear runs on its own result; public so that tests can hand it a
  // wrong product).
  void check_linear(const Matrix<DD>& x, const Matrix<double>& w, const std::vector<double>* bias, const Matrix<DD>& c) {
    check_gemm(x, w.data.data(), nullptr, w.cols, bias, c);
  }

  const SampledCheck& check() const { return check_; }
  std::function<void(int)> on_layer;  // progress (layer = depth: the head)

 private:
  std::uint64_t pick(std::uint64_t below);  // a uniform index below `below`, the same at any thread count
  void check_gemm(const Matrix<DD>& a, const double* b_hi, const double* b_lo, int n, const std::vector<double>* bias,
                  const Matrix<DD>& c);
  void check_activation(const Matrix<DD>& u);

  Activation activation_;
  std::uint64_t seed_, draws_ = 0;
  int samples_;
  SampledCheck check_;
};

}  // namespace lpsim
