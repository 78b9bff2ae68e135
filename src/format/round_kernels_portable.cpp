// The kernels compiled for any x86-64 (or other) CPU: the reference for "identical bits everywhere".
#include "round_kernels.hpp"

namespace lpsim::kernels {

void round_portable(const float* in, float* out, Block blk, const RoundParams<float>& p, const Request& rq,
                        const StochasticStream& sr) {
  if (rq.is_bf16_rne) return round_block_bf16_rne<PortableIsa>(in, out, blk.n);
  round_block_any<PortableIsa, float>(in, out, blk, p, rq.mode, sr);
}

void round_portable(const double* in, double* out, Block blk, const RoundParams<double>& p, const Request& rq,
                        const StochasticStream& sr) {
  round_block_any<PortableIsa, double>(in, out, blk, p, rq.mode, sr);
}

}  // namespace lpsim::kernels
