#pragma once
// The KV cache's arithmetic (plan.hpp, KvCache): what a serving engine's cache returns for a layer's key (or value)
// heads. A format with a scale: element = fmt(fp32(x / s)) rounded to nearest even and saturated (SATFINITE: beyond
// the largest finite value, infinities too, gives +-max; NaN stays NaN), value = fp32(element * s), as vLLM's fp8
// cache kernels convert (scaled_convert: x / scale, then __nv_cvt_float_to_fp8 with __NV_SATFINITE; reading back,
// float(fp8) * scale). A block scheme: the heads side by side (tokens x kv_heads * head_dim) quantised in 1 x block
// tiles along the rows by quantize_blocks, value = fp32(dequantised).
#include <functional>
#include <vector>

#include "lpsim/model/matrix.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

// Replaces every element of `heads` (each tokens x head_dim) by read(value) and returns how many saturated; `read`
// rounds a dequantised value to the dtype attention computes in.
long kv_cache_roundtrip(const KvCache& cache, std::vector<Matrix<double>>& heads,
                        const std::function<double(double)>& read);

// The scale of the format path for amax (the largest finite |x| of the tensor or head): fp32(amax / max_finite),
// 1 for amax 0; fixed_scale for Scale::fixed.
double kv_cache_scale(const KvCache& cache, double amax);

}  // namespace lpsim
