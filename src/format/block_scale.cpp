#include "lpsim/format/block_scale.hpp"

#include "lpsim/format/random_stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "util/suggest.hpp"

namespace lpsim {

namespace {

double f32(double x) { return double(float(x)); }  // one rounding to binary32 (RNE)
int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The E8M0 scale of pow2_floor and pow2_ceil: an exponent in [-127, 127].
double pow2_scale(double amax, const FormatSpec& e, bool ceil_rule) {
  if (amax == 0) return std::ldexp(1.0, -127);
  int x;
  if (!ceil_rule) {
    x = std::ilogb(amax) - e.emax;  // OCP: floor(log2 amax) - emax of the element format
  } else {  // the smallest x with amax <= max_elem 2^x
    const double max = e.max_finite();
    x = std::ilogb(amax) - std::ilogb(max);
    while (amax > std::ldexp(max, x)) ++x;
    while (amax <= std::ldexp(max, x - 1)) --x;
  }
  return std::ldexp(1.0, std::clamp(x, -127, 127));
}

// v rounded to the element format (RNE), clamped to its largest finite value where it would round beyond it (OCP's
// saturation; a value just above the largest that rounds down to it is not counted).
// With a random word (stochastic schemes) the rounding below the largest value is stochastic instead.
double to_element(double v, const FormatSpec& e, long& saturated, const std::uint64_t* random = nullptr) {
  const double max = e.max_finite();
  const double limit = max + std::ldexp(1.0, std::ilogb(max) - e.precision);  // max + half its ulp: a tie rounds up
  if (std::fabs(v) >= limit) {
    ++saturated;
    return std::copysign(max, v);
  }
  if (std::fabs(v) > max) return std::copysign(max, v);
  return random ? round_to(v, e, Rounding::stochastic, *random) : round_to(v, e, Rounding::nearest_even);
}

}  // namespace

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
          "MXFP4 with the scale rounded up so that no element saturates (cuBLAS's rule)"),
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

double BlockQuantized::value(int r, int c) const {
  return elements[std::size_t(r) * cols + c] * scales[block_of(r, c)] / tensor_scale;
}

BlockQuantized quantize_blocks(const BlockScheme& s, std::span<const double> x, int rows, int cols, int axis,
                               const StochasticStream& sr) {
  if (axis != 0 && axis != 1) throw ConfigError(fmt::format("quantize: axis {} is neither 0 nor 1", axis));
  if (rows < 1 || cols < 1 || x.size() != std::size_t(rows) * cols)
    throw ConfigError(fmt::format("quantize: {} values do not fill a {} x {} matrix", x.size(), rows, cols));
  BlockQuantized q;
  q.rows = rows, q.cols = cols, q.axis = axis;
  const int b = s.block;
  // Block edges: along the reduction dimension every `b`; across it every 1 (or every b for square blocks).
  const int step_r = axis == 0 ? b : (s.square ? b : 1), step_c = axis == 1 ? b : (s.square ? b : 1);
  q.block_rows = ceil_div(rows, step_r), q.block_cols = ceil_div(cols, step_c);
  q.step_rows = step_r, q.step_cols = step_c;
  q.elements.assign(x.size(), 0.0);
  q.scales.assign(std::size_t(q.block_rows) * q.block_cols, 1.0);
  if (s.rule == ScaleRule::int_affine) q.zeros.assign(q.scales.size(), 0.0);
  const FormatSpec& e = s.element.spec;
  if (s.rule == ScaleRule::nvfp4) {
    double amax = 0;
    for (double v : x)
      if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
    q.tensor_scale = amax > 0 ? f32(f32(formats::e4m3.max_finite() * e.max_finite()) / f32(amax)) : 1.0;
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
        case ScaleRule::pow2_ceil: {
          scale = pow2_scale(amax, e, s.rule == ScaleRule::pow2_ceil);
          each([&](double v) { return to_element(v / scale, e, q.saturated, rnd); });  // v / 2^x is exact
          break;
        }
        case ScaleRule::amax_fp32: {
          const double a = std::max(f32(amax), 1e-4);
          const double enc = f32(e.max_finite() / a);
          scale = f32(a / e.max_finite());
          each([&](double v) { return to_element(f32(v * enc), e, q.saturated, rnd); });
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
        case ScaleRule::nvfp4: {
          const double sd = f32(f32(amax / e.max_finite()) * q.tensor_scale);
          long ignored = 0;  // an E4M3 block scale beyond 448 is clamped (Transformer Engine saturates it)
          scale = to_element(sd, formats::e4m3, ignored);
          const double enc = scale == 0 ? 0.0 : f32(q.tensor_scale / scale);
          each([&](double v) { return to_element(f32(v * enc), e, q.saturated, rnd); });
          break;
        }
      }
    }
  return q;
}

}  // namespace lpsim
