// Builds without the AVX-512 kernels: every policy takes the portable exact kernel.
#include <stdexcept>

#include "fast_kernels.hpp"

namespace lpsim::accum {

GemmPath fast_path(const AccumPolicy&) { return GemmPath::generic; }

void fast_gemm(const AccumPolicy&, GemmPath, int, int, int, const float*, const float*, float*, const BlockScales*) {
  throw std::logic_error("fast_gemm: this build has no AVX-512 kernels");
}

}  // namespace lpsim::accum
