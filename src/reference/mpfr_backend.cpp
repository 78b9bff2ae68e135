#include "lpsim/reference/mpfr_backend.hpp"

#include <mpfr.h>

namespace lpsim {

int set_reference_bits(int bits) {
  unsigned digits = 1;
  while (boost::multiprecision::detail::digits10_2_2(digits) < static_cast<unsigned long>(bits)) ++digits;
  Real::default_precision(digits);
  return reference_bits();
}

int reference_bits() { return static_cast<int>(mpfr_get_prec(Real(1).backend().data())); }

Matrix<Real> MpfrBackend::gemm(Op, const Matrix<Real>& a, const Matrix<Real>& b, const std::vector<Real>* bias) {
  Matrix<Real> c(a.rows, b.cols);  // values created here, at the current precision, before the threads start
  const Matrix<Real> bt = transpose(b);
  const mpfr_prec_t prec = mpfr_get_prec(c.data.empty() ? Real(0).backend().data() : c.data[0].backend().data());
#pragma omp parallel
  {
    mpfr_t acc;
    mpfr_init2(acc, prec);
#pragma omp for schedule(static)
    for (int i = 0; i < a.rows; ++i)
      for (int j = 0; j < b.cols; ++j) {
        mpfr_set_zero(acc, 1);
        for (int l = 0; l < a.cols; ++l)
          mpfr_fma(acc, a(i, l).backend().data(), bt(j, l).backend().data(), acc, MPFR_RNDN);
        if (bias) mpfr_add(acc, acc, (*bias)[j].backend().data(), MPFR_RNDN);
        mpfr_set(c(i, j).backend().data(), acc, MPFR_RNDN);
      }
    mpfr_clear(acc);
  }
  return c;
}

Real MpfrBackend::sum(Op, std::span<const Real> x) {
  Real s(0);
  for (const Real& v : x) s += v;
  return s;
}

Real MpfrBackend::dot(Op, std::span<const Real> x, std::span<const Real> y) {
  Real s(0);
  for (std::size_t i = 0; i < x.size(); ++i) mpfr_fma(s.backend().data(), x[i].backend().data(), y[i].backend().data(), s.backend().data(), MPFR_RNDN);
  return s;
}

}  // namespace lpsim
