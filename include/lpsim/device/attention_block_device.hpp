#pragma once
// An accelerator for a whole attention layer of the textbook kernel (layers.hpp's attention: Q, K, V = H W + b
// under the qkv class, each query and key head rotated in the rope class, every head as AttentionDevice::heads
// computes it, the heads' output projected under out_proj) that computes what EmulatedBackend computes on the CPU,
// bit for bit, with the same range events. Only H and the branch's output cross the bus. The GPU's is
// cuda::EmulatedGemm (it keeps the weights); EmulatedBackend::device_attention says which plans and layers it takes.
#include <optional>
#include <span>

#include "lpsim/accum/policy.hpp"
#include "lpsim/device/attention_device.hpp"
#include "lpsim/device/feed_forward_device.hpp"
#include "lpsim/device/norm_device.hpp"

namespace lpsim {

struct AttentionBlockJob {
  int rows = 0, width = 0;                      // H: rows x width; the output too
  int heads = 1, kv_heads = 1, head_width = 0;  // query heads, key/value heads (query head h uses h / group)
  // Rounded to qkv's input; with a norm, the residual stream (floats) that the device normalises and rounds first.
  std::span<const float> h;
  bool h_finite = true;  // without a norm: no Inf/NaN in h
  std::optional<NormJob> norm;
  WeightOperand wq, wk, wv, wo;                 // width x heads * head_width (wk, wv: x kv_heads * head_width); wo back
  std::span<const float> bq, bk, bv, bo;        // rounded to the class's out; empty: no bias (no epilogue)
  // [0] a product without bias (output: the class's out), [1] with one (output: its compute), as product() sets it.
  AccumPolicy qkv[2], out_proj[2];
  ElementRounding qkv_input, qkv_compute, qkv_out, out_proj_input, out_proj_compute, out_proj_out;
  // Rotary tables, rows x head_width (empty: no rotation), each value rounded to rope's compute before use.
  std::span<const double> rope_cos, rope_sin;
  ElementRounding rope_compute, rope_out;
  ElementRounding score_input;  // Q's and K's cast on entry to the score product (V's: head.pv_input)
  AttentionHeadJob head;        // what every head shares: shape, policies, roundings, scale (its spans unused)
};

class AttentionBlockDevice {
 public:
  virtual ~AttentionBlockDevice() = default;
  // Whether it runs layers whose products have these policies (asked before anything is computed).
  virtual bool runs(const AccumPolicy& qkv, const AccumPolicy& score, const AccumPolicy& pv,
                    const AccumPolicy& out_proj) const = 0;
  // out: rows x width, values of out_proj's out.
  virtual DeviceResult attention(const AttentionBlockJob& job, std::span<float> out) = 0;
};

}  // namespace lpsim
