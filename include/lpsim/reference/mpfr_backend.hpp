#pragma once
#include <functional>
// The reference forward: every operation in MPFR at one precision (Boost.Multiprecision's mpfr_float), GEMMs as
// fused multiply-adds on the raw MPFR values, rows in parallel.
#include <boost/multiprecision/mpfr.hpp>
#include <span>
#include <vector>

#include "lpsim/model/matrix.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

using Real = boost::multiprecision::mpfr_float;

// Sets the precision of every Real created from now on (Boost 1.74 counts decimal digits: the smallest count
// giving at least `bits` is used) and returns the precision in bits that new values get. Process-wide: call it
// before a reference forward, not during one.
int set_reference_bits(int bits);
int reference_bits();

class MpfrBackend {
 public:
  using Scalar = Real;
  Matrix<Real> gemm(Op op, const Matrix<Real>& a, const Matrix<Real>& b, const std::vector<Real>* bias);
  Matrix<Real> linear(Op op, const Matrix<Real>& x, const Matrix<Real>& w, const std::vector<Real>* bias) {
    return gemm(op, x, w, bias);
  }
  Real sum(Op, std::span<const Real> x);
  Real dot(Op, std::span<const Real> x, std::span<const Real> y);
  Real compute(Op, const Real& v) { return v; }
  void store(Op, Matrix<Real>&) {}
  Real chain_step(Op, const Real& v) { return v; }
  void set_layer(int layer) {
    if (on_layer) on_layer(layer);
  }
  std::function<void(int)> on_layer;  // progress of a long reference forward (layer = depth: the head)
};

}  // namespace lpsim
