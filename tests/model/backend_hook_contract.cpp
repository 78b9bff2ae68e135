// Compiled by ctest, not run (tests/CMakeLists.txt: Backend.*): a backend that declares a hook it misspells must
// not compile (LPSIM_MISSPELT), nor one that defines a hook it does not declare (LPSIM_UNDECLARED); the same
// backend spelt right compiles, so the failures are the contract's and not the include paths'.
#include <optional>

#include "lpsim/model/backend.hpp"

namespace lpsim {

struct ProbeBackend {
  using Scalar = double;
#if defined(LPSIM_UNDECLARED)
  static constexpr BackendHooks hooks{};
#else
  static constexpr BackendHooks hooks{.device_head = true};
#endif
  Matrix<double> gemm(Op, const Matrix<double>& a, const Matrix<double>&, const std::vector<double>*) { return a; }
  double sum(Op, std::span<const double>) { return 0; }
  double dot(Op, std::span<const double>, std::span<const double>) { return 0; }
  double compute(Op, const double& v) { return v; }
  double chain_step(Op, const double& v) { return v; }
  void store(Op, Matrix<double>&) {}
  void set_layer(int) {}
#if defined(LPSIM_MISSPELT)
  std::optional<Matrix<double>> device_haed(const Matrix<double>&, const Matrix<double>&, const Matrix<double>&, bool,
                                            ScoreScale) {
#else
  std::optional<Matrix<double>> device_head(const Matrix<double>&, const Matrix<double>&, const Matrix<double>&, bool,
                                            ScoreScale) {
#endif
    return std::nullopt;
  }
};

static_assert(hooks_of<ProbeBackend>().device_head || true);

}  // namespace lpsim

int main() {}
