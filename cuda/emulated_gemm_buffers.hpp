#pragma once
// EmulatedGemm's device memory (shared by emulated_gemm.cu and emulated_feed_forward.cu; not part of the interface).
#include <cstdint>
#include <unordered_map>

#include "device_slot.hpp"
#include "emulated_gemm.hpp"
#include "heads_on_device.hpp"
#include "norm_on_device.hpp"

namespace lpsim::cuda {

// Operands and result as they come from the host (in their carrier) and in the carrier of the kernel; the weights
// kept on the GPU by id (their carrier: a weight always comes in the same one); a block's weights where they are
// not kept (and as floats where they came as doubles); a feed-forward block's and an attention layer's buffers.
struct EmulatedGemm::Buffers {
  Slot a_host, b_host, c_host, a_kernel, b_kernel, c_kernel;
  PinnedSlot staging;  // large copies go through it
  std::unordered_map<std::uint64_t, Slot> weights;
  std::size_t weight_bytes = 0, weight_budget = 0;
  Slot w_scratch[4], w_float[4];
  Slot ffn_h, ffn_u, ffn_up, ffn_out, ffn_b1, ffn_b2, ffn_counts, ffn_flags, ffn_values;
  Slot attn_h, attn_q, attn_k, attn_v, attn_pq, attn_pkt, attn_pv, attn_heads, attn_cat, attn_out, attn_bias[4],
      attn_cos, attn_sin, attn_counts, attn_operands;
  HeadBuffers heads;
  Slot normed;  // a block's input normalised on the device
  NormBuffers norm;
};

}  // namespace lpsim::cuda
