#include "lpsim/format/block_scale.hpp"

#include "lpsim/format/random_stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "util/suggest.hpp"

namespace lpsim {

namespace {

double f32(double x) { return double(float(x)); }  // one rounding to binary32 (RNE; beyond its range: inf)
constexpr double flt_max = std::numeric_limits<float>::max();
int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The E8M0 scale of pow2_floor, pow2_ceil and pow2_rceil: an exponent in [-127, 127].
double pow2_scale(double amax, const FormatSpec& e, ScaleRule rule) {
  if (rule == ScaleRule::pow2_rceil) {
    // Transformer Engine's MX kernels: v = fp32(fp32(amax) * fp32(1 / max_elem)) rounded up to a power of two
    // (ptx::float_to_e8m0; cvt.rp.satfinite.ue8m0x2.f32 on Blackwell), 0 and v <= 2^-127 giving 2^-127.
    const double v = f32(f32(amax) * f32(1.0 / e.max_finite()));
    if (v <= std::ldexp(1.0, -127)) return std::ldexp(1.0, -127);
    int x = std::ilogb(v);
    if (v != std::ldexp(1.0, x)) ++x;
    return std::ldexp(1.0, std::min(x, 127));
  }
  if (amax == 0) return std::ldexp(1.0, -127);
  int x;
  if (rule == ScaleRule::pow2_floor) {
    x = std::ilogb(amax) - e.emax;  // OCP: floor(log2 amax) - emax of the element format
  } else {  // the smallest x with amax <= max_elem 2^x
    const double max = e.max_finite();
    x = std::ilogb(amax) - std::ilogb(max);
    while (amax > std::ldexp(max, x)) ++x;
    while (amax <= std::ldexp(max, x - 1)) --x;
  }
  return std::ldexp(1.0, std::clamp(x, -127, 127));
}

}  // namespace

double saturating_element(double v, const FormatSpec& e, long& saturated, const std::uint64_t* random) {
  if (std::isnan(v)) return v;
  const double max = e.max_finite();
  const double limit = max + std::ldexp(1.0, std::ilogb(max) - e.precision);  // max + half its ulp: a tie rounds up
  if (std::fabs(v) >= limit) {
    ++saturated;
    return std::copysign(max, v);
  }
  if (std::fabs(v) > max) return std::copysign(max, v);  // rounds down to max under RNE: not counted
  return random ? round_to(v, e, Rounding::stochastic, *random) : round_to(v, e, Rounding::nearest_even);
}

const std::vector<BlockScheme>& block_schemes() {
  static const std::vector<BlockScheme> schemes = [] {
    auto s = [](const char* name, const char* element, int block, bool square, ScaleRule rule, const char* scale,
                const char* what) {
      return BlockScheme{name, what, parse_format(element), block, square, rule, scale};
    };
    auto stochastic = [](BlockScheme b) {
      b.stochastic = true;
      return b;
    };
    auto integer = [](BlockScheme b, int bits) {
      b.int_bits = bits;
      return b;
    };
    return std::vector<BlockScheme>{
        s("mxfp8-e4m3", "e4m3", 32, false, ScaleRule::pow2_floor, "e8m0", "OCP MX v1.0 MXFP8 (E4M3 elements)"),
        s("mxfp8-e5m2", "e5m2", 32, false, ScaleRule::pow2_floor, "e8m0", "OCP MX v1.0 MXFP8 (E5M2 elements)"),
        s("mxfp6-e2m3", "e2m3", 32, false, ScaleRule::pow2_floor, "e8m0", "OCP MX v1.0 MXFP6 (E2M3 elements)"),
        s("mxfp6-e3m2", "e3m2", 32, false, ScaleRule::pow2_floor, "e8m0", "OCP MX v1.0 MXFP6 (E3M2 elements)"),
        s("mxfp4", "e2m1", 32, false, ScaleRule::pow2_floor, "e8m0", "OCP MX v1.0 MXFP4 (E2M1 elements)"),
        s("mxfp4-ceil", "e2m1", 32, false, ScaleRule::pow2_ceil, "e8m0",
          "MXFP4 with the scale 2^ceil(log2(amax / 6)), exactly: no element saturates"),
        s("mxfp8-e4m3-rceil", "e4m3", 32, false, ScaleRule::pow2_rceil, "e8m0",
          "MXFP8 (E4M3) with the round-up scale of NVIDIA's kernels (RCEIL of fp32(amax / 448))"),
        s("mxfp8-e5m2-rceil", "e5m2", 32, false, ScaleRule::pow2_rceil, "e8m0",
          "MXFP8 (E5M2) with the round-up scale of NVIDIA's kernels (RCEIL of fp32(amax / 57344))"),
        s("mxfp6-e2m3-rceil", "e2m3", 32, false, ScaleRule::pow2_rceil, "e8m0",
          "MXFP6 (E2M3) with the round-up scale of NVIDIA's kernels (RCEIL of fp32(amax / 7.5))"),
        s("mxfp6-e3m2-rceil", "e3m2", 32, false, ScaleRule::pow2_rceil, "e8m0",
          "MXFP6 (E3M2) with the round-up scale of NVIDIA's kernels (RCEIL of fp32(amax / 28))"),
        s("mxfp4-rceil", "e2m1", 32, false, ScaleRule::pow2_rceil, "e8m0",
          "MXFP4 with the round-up scale of NVIDIA's kernels (RCEIL of fp32(amax / 6))"),
        s("nvfp4", "e2m1", 16, false, ScaleRule::nvfp4, "e4m3 + fp32 per tensor",
          "NVIDIA NVFP4: E2M1 in blocks of 16, E4M3 block scales, an fp32 per-tensor scale"),
        stochastic(s("mxfp4-sr", "e2m1", 32, false, ScaleRule::pow2_floor, "e8m0",
                     "MXFP4 with elements rounded stochastically (unbiased)")),
        stochastic(s("nvfp4-sr", "e2m1", 16, false, ScaleRule::nvfp4, "e4m3 + fp32 per tensor",
                     "NVFP4 with elements rounded stochastically, as NVIDIA's recipe rounds gradients")),
        s("fp8-1x128", "e4m3", 128, false, ScaleRule::amax_fp32, "fp32",
          "DeepSeek-V3 activations: E4M3 in 1x128 tiles, fp32 scale amax/448"),
        s("fp8-128x128", "e4m3", 128, true, ScaleRule::amax_fp32, "fp32",
          "DeepSeek-V3 weights: E4M3 in 128x128 blocks, fp32 scale amax/448"),
        integer(s("int4-g128", "fp16", 128, false, ScaleRule::int_affine, "fp16 + int4 zero",
                  "GPTQ/AWQ weights: 4-bit codes in groups of 128 with an fp16 scale and a zero point"), 4),
        integer(s("int4-g32", "fp16", 32, false, ScaleRule::int_affine, "fp16 + int4 zero",
                  "4-bit codes in groups of 32 with an fp16 scale and a zero point"), 4),
        integer(s("int8-g128", "fp16", 128, false, ScaleRule::int_affine, "fp16 + int8 zero",
                  "8-bit codes in groups of 128 with an fp16 scale and a zero point"), 8),
        integer(s("int8-rowwise", "fp16", 0, false, ScaleRule::int_symmetric, "fp32",
                  "int8 codes, one fp32 scale amax/127 per token or output channel (vLLM's W8A8)"), 8),
    };
  }();
  return schemes;
}

BlockScheme block_scheme(std::string_view name) {
  std::vector<std::string> names;
  for (const BlockScheme& s : block_schemes()) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  throw ConfigError(fmt::format("block scaling scheme '{}' is unknown (known: {}){}", name, fmt::join(names, ", "),
                                did_you_mean(name, names)));
}

int BlockQuantized::block_of(int r, int c) const { return (r / step_rows) * block_cols + c / step_cols; }

// NVFP4's per-tensor decode factor A / (max_e4m3 max_e2m1), as Transformer Engine's GEMM applies it.
constexpr double nvfp4_tensor_range = 448.0 * 6.0;

double BlockQuantized::tensor_decode_denominator() const { return tensor_scaled ? nvfp4_tensor_range : 1.0; }

double BlockQuantized::value(int r, int c) const {
  // element * scale * A is exact in double (2 + 4 + 24 significant bits); one rounding for the division.
  return elements[std::size_t(r) * cols + c] * scales[block_of(r, c)] * tensor_decode_numerator() /
         tensor_decode_denominator();
}

BlockQuantized quantize_blocks(const BlockScheme& s, std::span<const double> x, int rows, int cols, int axis,
                               const StochasticStream& sr) {
  if (axis != 0 && axis != 1) throw ConfigError(fmt::format("quantize: axis {} is neither 0 nor 1", axis));
  if (rows < 1 || cols < 1 || x.size() != std::size_t(rows) * cols)
    throw ConfigError(fmt::format("quantize: {} values do not fill a {} x {} matrix", x.size(), rows, cols));
  BlockQuantized q;
  q.rows = rows, q.cols = cols, q.axis = axis;
  const int b = s.block > 0 ? s.block : (axis == 1 ? cols : rows);  // 0: the whole reduction dimension
  // Block edges: along the reduction dimension every `b`; across it every 1 (or every b for square blocks).
  const int step_r = axis == 0 ? b : (s.square ? b : 1), step_c = axis == 1 ? b : (s.square ? b : 1);
  q.block_rows = ceil_div(rows, step_r), q.block_cols = ceil_div(cols, step_c);
  q.step_rows = step_r, q.step_cols = step_c;
  q.elements.assign(x.size(), 0.0);
  q.scales.assign(std::size_t(q.block_rows) * q.block_cols, 1.0);
  if (s.rule == ScaleRule::int_affine) q.zeros.assign(q.scales.size(), 0.0);
  q.scaled_mm = s.rule == ScaleRule::int_symmetric;
  const FormatSpec& e = s.element.spec;
  double nvfp4_multiplier = 0, nvfp4_decode = 0;  // fp32(S * fp32(1/6)) and fp32(1 / S)
  if (s.rule == ScaleRule::nvfp4) {
    // Transformer Engine's NVFP4QuantizerRef: S capped at FLT_MAX (a zero or tiny tensor would otherwise give an
    // infinite S and NaN elements), the block scale from S times fp32(1/6), the element multiplier as the
    // reciprocal of the block's decode scale. The amax is over the finite values (a NaN/Inf block is NaN below).
    double amax = 0;
    for (double v : x)
      if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
    q.tensor_scaled = true;
    q.tensor_amax = f32(amax);
    q.tensor_scale = std::min(f32(nvfp4_tensor_range / q.tensor_amax), flt_max);  // 2688 / 0 = inf -> FLT_MAX
    nvfp4_multiplier = f32(q.tensor_scale * f32(1.0 / e.max_finite()));
    nvfp4_decode = f32(1.0 / q.tensor_scale);
  }
  for (int br = 0; br < q.block_rows; ++br)
    for (int bc = 0; bc < q.block_cols; ++bc) {
      const int r0 = br * step_r, r1 = std::min(rows, r0 + step_r), c0 = bc * step_c, c1 = std::min(cols, c0 + step_c);
      double amax = 0;
      bool special = false;
      for (int r = r0; r < r1; ++r)
        for (int c = c0; c < c1; ++c) {
          const double v = x[std::size_t(r) * cols + c];
          special = special || !std::isfinite(v);
          amax = std::max(amax, std::fabs(v));
        }
      double& scale = q.scales[std::size_t(br) * q.block_cols + bc];
      std::uint64_t random = 0;  // this element's random word (stochastic schemes)
      const std::uint64_t* rnd = s.stochastic ? &random : nullptr;
      auto each = [&](auto f) {
        for (int r = r0; r < r1; ++r)
          for (int c = c0; c < c1; ++c) {
            const std::size_t i = std::size_t(r) * cols + c;
            random = s.stochastic ? random_bits(sr.seed, sr.stream, sr.offset + i) : 0;
            q.elements[i] = f(x[i]);
          }
      };
      if (special) {  // the scale's NaN (E8M0 0xFF) makes the block NaN; elements 0, a value of every format
        scale = NAN;
        each([](double) { return 0.0; });
        continue;
      }
      switch (s.rule) {
        case ScaleRule::pow2_floor:
        case ScaleRule::pow2_ceil:
        case ScaleRule::pow2_rceil: {
          scale = pow2_scale(amax, e, s.rule);
          each([&](double v) { return saturating_element(v / scale, e, q.saturated, rnd); });  // v / 2^x is exact
          break;
        }
        case ScaleRule::amax_fp32: {
          const double a = std::max(f32(amax), 1e-4);
          const double enc = f32(e.max_finite() / a);
          scale = f32(a / e.max_finite());
          each([&](double v) { return saturating_element(f32(v * enc), e, q.saturated, rnd); });
          break;
        }
        case ScaleRule::int_affine: {
          const double maxq = std::ldexp(1.0, s.int_bits) - 1;
          double lo = 0, hi = 0;
          for (int r = r0; r < r1; ++r)
            for (int c = c0; c < c1; ++c) lo = std::min(lo, x[std::size_t(r) * cols + c]), hi = std::max(hi, x[std::size_t(r) * cols + c]);
          if (lo == 0 && hi == 0) lo = -1, hi = 1;
          scale = round_to(f32((hi - lo) / maxq), formats::fp16, Rounding::nearest_even);
          if (scale == 0) scale = formats::fp16.min_subnormal();  // a range below fp16's: the smallest scale
          const double zero = std::clamp(std::nearbyint(f32(-lo / scale)), 0.0, maxq);  // fp32, as torch computes it
          q.zeros[std::size_t(br) * q.block_cols + bc] = zero;
          each([&](double v) {
            const double code = std::nearbyint(f32(v / scale)) + zero;
            if (code < 0 || code > maxq) ++q.saturated;
            return std::clamp(code, 0.0, maxq) - zero;
          });
          break;
        }
        case ScaleRule::int_symmetric: {
          const double a = f32(amax);
          if (a == 0) {  // vLLM would divide by 0; lpsim's choice: codes 0 with scale 1 (the value is 0 either way)
            scale = 1;
            each([](double) { return 0.0; });
            break;
          }
          scale = f32(a / 127);
          const double mult = f32(127 / a);
          each([&](double v) {
            const double code = std::nearbyint(f32(v * mult));
            if (code < -128 || code > 127) ++q.saturated;
            return std::clamp(code, -128.0, 127.0);
          });
          break;
        }
        case ScaleRule::nvfp4: {
          const double sd = std::min(f32(f32(amax) * nvfp4_multiplier), formats::e4m3.max_finite());
          scale = round_to(sd, formats::e4m3, Rounding::nearest_even);
          // 1 / (0 * d) = inf -> FLT_MAX: a block whose scale underflows to 0 keeps finite elements (value 0).
          const double enc = std::min(f32(1.0 / f32(scale * nvfp4_decode)), flt_max);
          each([&](double v) { return saturating_element(f32(v * enc), e, q.saturated, rnd); });
          break;
        }
      }
    }
  return q;
}

}  // namespace lpsim
