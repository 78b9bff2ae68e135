#pragma once
// lpsim's model, weights and plan as the plain data the native CUDA forward takes (native_model.hpp).
#include <string>

#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"
#include "native_model.hpp"

namespace lpsim::cuda {

NativeModel to_native(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in);

// The native kernels run plans whose elementwise maths is fp32, whose storage is fp32, fp16 or bf16 (round to
// nearest even, no scaling), and whose GEMMs accumulate sequentially with fma in fp32 or in the operand format.
// Throws std::invalid_argument naming the operation class and field that the kernels cannot run.
NativePlan to_native(const PrecisionPlan& plan);

}  // namespace lpsim::cuda
