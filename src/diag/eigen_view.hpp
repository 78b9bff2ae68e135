#pragma once
// Eigen's view of lpsim's row-major Matrix<double>, without a copy: the diagnostics' SVDs and products use it.
#include <Eigen/Dense>

#include "lpsim/model/matrix.hpp"

namespace lpsim {

using Dense = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
inline Eigen::Map<const Dense> view(const Matrix<double>& m) { return {m.data.data(), m.rows, m.cols}; }

}  // namespace lpsim
