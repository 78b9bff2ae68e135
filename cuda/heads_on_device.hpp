#pragma once
// The heads of one attention layer on the GPU with operands and output in device memory: what EmulatedAttention
// (operands from the host) and EmulatedGemm's attention layers (operands made on the device) both run. Not part of
// the interface.
#include "device_slot.hpp"
#include "lpsim/device/attention_device.hpp"

namespace lpsim::cuda {

struct HeadBuffers {
  Slot s, counts, flags, host_values;
};

// layer: shape, policies, roundings, grouping and each head's finiteness (its operand spans are not read); q: heads
// x rows x width, kt: kv heads x width x keys, v: kv heads x keys x width, out: heads x rows x width, all in device
// memory. The events are those AttentionDevice::heads returns; host_values the exp values the host computed.
DeviceResult heads_on_device(HeadBuffers& b, const AttentionLayerJob& layer, const float* q, const float* kt,
                             const float* v, float* out, double exp_margin);

}  // namespace lpsim::cuda
