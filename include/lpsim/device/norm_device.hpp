#pragma once
// A block's pre-norm (layers.hpp's norm) run by the device that runs the block, where the backend hands it the
// residual stream instead of the normed input (EmulatedBackend::device_attention, device_feed_forward): the row
// reductions as the norm class's binary32 loop, every step rounded to its compute, its store, then the cast to the
// block's first product's input. The host then neither normalises nor prepares the block's input.
#include <span>

#include "lpsim/device/attention_device.hpp"

namespace lpsim {

struct NormJob {
  bool rms = false;    // RMSNorm (no mean), else LayerNorm
  bool cast = false;   // ModelConfig::norm_cast: x * rstd stored before the gain multiplies it, itself stored again
  bool fma = true;     // the reduce policy's loop: s = fma(x, y, s), else s + x * y (each in binary32)
  double epsilon = 0;  // the norm's eps, rounded to the class's compute
  ElementRounding compute, out;
  std::span<const double> gamma, beta;  // beta empty: none
};

}  // namespace lpsim
