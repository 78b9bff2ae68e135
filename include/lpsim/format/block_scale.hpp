#pragma once
// Block-scaled formats: a matrix cut into blocks along the reduction dimension, each block stored as elements of a
// narrow format times one scale (OCP Microscaling MXFP8/6/4, NVIDIA's NVFP4, DeepSeek-V3's FP8 tiles), and the
// matrix product of two such operands. docs/BLOCKSCALE.md gives every definition and its source.
//
// Quantisation of one block with amax = max |x| over it (a NaN or Inf in the block gives the scale NaN, E8M0's 0xFF,
// and elements 0: every value of the block is NaN):
//   pow2_floor (OCP MX v1.0, section 6.3): scale = 2^(floor(log2 amax) - emax_elem), an E8M0 exponent clamped to
//       [-127, 127]; elements x / scale rounded to the element format and saturated to its largest normal;
//   pow2_ceil: scale = 2^ceil(log2(amax / max_elem)) exactly, so no element saturates;
//   pow2_rceil (Transformer Engine's MX kernels, "RCEIL"): v = fp32(fp32(amax) * fp32(1 / max_elem)) rounded up to a
//       power of two in [2^-127, 2^127]; the same as pow2_ceil except where fp32's rounding or range decides;
//   amax_fp32 (DeepSeek-V3, as DeepGEMM's reference quantiser): amax clamped below at 1e-4, elements
//       fp8(fp32(x * fp32(max_elem / amax))), scale = fp32(amax / max_elem);
//   int_affine (GPTQ's and AWQ's asymmetric integer groups, the GPTQ reference quantiser's find_params): the group's
//       range [min(x, 0), max(x, 0)] ([-1, 1] when both are 0) over 2^bits - 1 steps, scale = fp16((hi - lo) /
//       (2^bits - 1)) as checkpoints store it, zero = round(-lo / scale) clamped to [0, 2^bits - 1], code =
//       clamp(round(x / scale) + zero, 0, 2^bits - 1) (round half to even, torch.round's); the value is
//       (code - zero) scale. Elements hold code - zero, zeros the zero points;
//   int_symmetric (vLLM's W8A8 int8: dynamic_scaled_int8_quant per token, the weights per output channel): scale =
//       fp32(amax / 127), code = clamp(rint(fp32(x * fp32(127 / amax))), -128, 127) (amax 0: codes 0, scale 1);
//       the value is code * scale. Its block is the whole reduction dimension (block = 0 in the scheme);
//   nvfp4 (NVIDIA Transformer Engine's reference quantiser, NVFP4QuantizerRef): with A = fp32(amax_tensor) over the
//       finite values, the per-tensor encode scale S = min(fp32(2688 / A), FLT_MAX) (FLT_MAX for a zero tensor),
//       block scale s = e4m3(min(fp32(fp32(amax) * fp32(S * fp32(1/6))), 448)), element multiplier
//       e = min(fp32(1 / fp32(s * fp32(1 / S))), FLT_MAX), elements e2m1(clamp(fp32(x * e), +-6)); the value is
//       element * s * A / 2688 (the GEMM's per-tensor factor, see block_scaled_gemm.hpp).
// A block is 1 x block elements along the reduction dimension, or block x block (square, DeepSeek's weights).
// Elements are rounded to nearest even, or (schemes ending in -sr) stochastically: x / scale goes to one of its two
// neighbours in the element format with probability proportional to closeness (unbiased), from random bits that
// depend only on (seed, stream, element index); a value beyond the largest element saturates as with RNE. NVIDIA's
// NVFP4 training recipe rounds gradients this way.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lpsim/format/format.hpp"
#include "lpsim/format/array_round.hpp"

namespace lpsim {

enum class ScaleRule : std::uint8_t { pow2_floor, pow2_ceil, pow2_rceil, amax_fp32, nvfp4, int_affine, int_symmetric };

struct BlockScheme {
  std::string name;
  std::string description;
  Format element;
  int block = 32;       // elements per block along the reduction dimension (0: all of it, one scale per row/column)
  bool square = false;  // block x block tiles (also across the other dimension)
  ScaleRule rule = ScaleRule::pow2_floor;
  std::string scale_format;  // e8m0, e4m3 or fp32, for the listing
  bool stochastic = false;   // elements rounded stochastically (the -sr schemes)
  int int_bits = 0;          // int_affine: the codes' width (element holds code - zero, exact in fp16)
  friend bool operator==(const BlockScheme& a, const BlockScheme& b) { return a.name == b.name; }
};

// mxfp8-e4m3, mxfp8-e5m2, mxfp6-e2m3, mxfp6-e3m2, mxfp4, mxfp4-ceil, the -rceil variants of the five MX types,
// nvfp4, mxfp4-sr, nvfp4-sr, fp8-1x128, fp8-128x128, int4-g128, int4-g32, int8-g128, int8-rowwise.
const std::vector<BlockScheme>& block_schemes();
// Throws ConfigError naming the scheme and listing the known ones.
BlockScheme block_scheme(std::string_view name);

// A rows x cols row-major matrix quantised with its reduction dimension along `axis` (1: along a row, the left
// operand A of A B; 0: along a column, the right operand B).
struct BlockQuantized {
  int rows = 0, cols = 0, axis = 1;
  int block_rows = 0, block_cols = 0;  // the grid of blocks
  int step_rows = 1, step_cols = 1;    // the extent of one block
  std::vector<double> elements;        // values of the element format, row-major like the input
  std::vector<double> scales;          // per block, row-major over the grid (NaN: a NaN/Inf in the block)
                                       // (elements of a NaN block are 0)
  bool tensor_scaled = false;          // nvfp4: a second, per-tensor scale
  double tensor_scale = 1;             // nvfp4's encode scale S (for the listing; the value uses tensor_amax)
  double tensor_amax = 0;              // nvfp4's fp32 amax A of the tensor (the value is element * scale * A / 2688)
  double tensor_decode_numerator() const { return tensor_scaled ? tensor_amax : 1.0; }
  double tensor_decode_denominator() const;  // 2688 = 448 * 6 for nvfp4, 1 otherwise
  std::vector<double> zeros;           // int_affine: each block's zero point (the code of 0; empty otherwise)
  long saturated = 0;                  // elements clamped to the largest normal
  bool scaled_mm = false;              // int_symmetric: the product's epilogue is vLLM's (block_scaled_gemm.hpp)
  int block_of(int r, int c) const;    // index into scales
  double value(int r, int c) const;    // the dequantised value
};

// v rounded to the element format e (RNE, or stochastically with a random word), clamped to +-max beyond its
// largest finite value (OCP's and NVIDIA's SATFINITE; infinities too; NaN stays NaN). `saturated` counts the values
// that RNE would have taken past max (|v| >= max + half an ulp of max).
double saturating_element(double v, const FormatSpec& e, long& saturated, const std::uint64_t* random = nullptr);

// sr: the random stream of a stochastic scheme (ignored by the others); element i of x draws index sr.offset + i.
BlockQuantized quantize_blocks(const BlockScheme& s, std::span<const double> x, int rows, int cols, int axis,
                               const StochasticStream& sr = {});

}  // namespace lpsim
