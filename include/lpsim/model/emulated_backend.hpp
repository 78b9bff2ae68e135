#pragma once
// The forward under a precision plan: values held exactly in doubles, every rounding the plan says done by the
// format layer, every GEMM and reduction by the accumulation layer (plan.hpp has the semantics). Overflows to
// Inf/NaN and saturations are counted, never thrown.
#include <cstdint>
#include <span>
#include <vector>

#include "lpsim/model/matrix.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

struct RangeEvents {
  long overflows = 0;    // a finite value became Inf or NaN when rounded (or a GEMM of finite operands gave one)
  long saturations = 0;  // a value beyond the range was clamped to the largest finite number (saturating formats)
};

class EmulatedBackend {
 public:
  using Scalar = double;
  // seed feeds stochastic rounding (a plan with rounding = sr); streams are counted in forward order, so the
  // result does not depend on threads.
  explicit EmulatedBackend(PrecisionPlan plan, std::uint64_t seed = 0);

  Matrix<double> gemm(Op op, const Matrix<double>& a, const Matrix<double>& b, const std::vector<double>* bias);
  double sum(Op op, std::span<const double> x);
  double dot(Op op, std::span<const double> x, std::span<const double> y);
  double compute(Op op, double v);
  void store(Op op, Matrix<double>& m);
  void set_layer(int layer) { layer_ = layer; }

  const PrecisionPlan& plan() const { return plan_; }
  RangeEvents events() const { return events_; }  // totals since construction

 private:
  enum class Fast : std::uint8_t { identity, to_float, general };
  struct Rounder {
    FormatSpec spec;
    Rounding mode;
    Fast fast;
  };
  static Rounder make_rounder(const Format& f, Rounding mode);
  double round_one(const Rounder& r, double v);
  void round_all(const Rounder& r, std::span<double> v);

  PrecisionPlan plan_;
  std::uint64_t seed_;
  std::uint64_t sr_index_ = 0;  // stochastic rounding words used so far
  std::uint64_t gemm_calls_ = 0;
  int layer_ = 0;
  RangeEvents events_;
  Rounder compute_[op_count], out_[op_count];
  std::vector<double> scratch_a_, scratch_b_, ones_;
};

}  // namespace lpsim
