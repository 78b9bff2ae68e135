#pragma once
// A block's pre-norm on the GPU with the CPU's bits (lpsim/device/norm_device.hpp): one thread per row for the
// reductions (the binary32 loop is sequential along the row), one per element for the rest, then the cast to the
// block's first product's input. Shared by EmulatedGemm's attention layers and feed-forward blocks; not part of the
// interface.
#include "device_slot.hpp"
#include "lpsim/device/norm_device.hpp"

namespace lpsim::cuda {

struct NormBuffers {
  Slot stats, gamma, beta, counts;
};

// The norm's range events, and the cast's counts as EmulatedBackend::prepare takes them (finite values beyond the
// input format's range; values Inf or NaN after the cast).
struct NormResult {
  long overflows = 0, saturations = 0;
  unsigned long long beyond = 0, now_infinite = 0;
};

// h = cast(norm(x)), x and h rows x width in device memory; waits for the counts.
NormResult norm_on_device(NormBuffers& b, const NormJob& job, const float* x, int rows, int width,
                          const ElementRounding& cast, float* h);

}  // namespace lpsim::cuda
