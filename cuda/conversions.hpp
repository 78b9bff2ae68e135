#pragma once
// Native conversions on the GPU: float32 -> fp16 / bf16 / fp8 -> float32 through the CUDA intrinsics that real
// kernels use, so lpsim's emulated rounding can be compared bit for bit with the hardware's.
#include <cstddef>
#include <string>
#include <vector>

namespace lpsim::cuda {

// How many CUDA devices the driver reports; 0 when there is no GPU or no driver (never throws).
int device_count();

enum class NativeConversion { fp16_rn, bf16_rn, e4m3_satfinite, e4m3_nosat, e5m2_satfinite, e5m2_nosat };
std::string name(NativeConversion c);

// out[i] = float(convert(in[i])) on the GPU. Throws std::runtime_error with the CUDA error text.
std::vector<float> convert_on_device(const std::vector<float>& in, NativeConversion c);

}  // namespace lpsim::cuda
