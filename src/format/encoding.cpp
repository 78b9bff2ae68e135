#include "lpsim/format/encoding.hpp"

#include <bit>
#include <cmath>
#include <fmt/format.h>

#include "lpsim/format/round_scalar.hpp"

namespace lpsim {

namespace {

struct Fields {
  std::uint64_t sign, exponent, mantissa;
};

void require_encodable(const FormatSpec& f) {
  if (!f.encodable()) throw FormatError("this format has no bit encoding (it was given as a value set p<P>:emax<N>)");
}

Fields split(std::uint64_t bits, const FormatSpec& f) {
  require_encodable(f);
  const int mb = f.mantissa_bits(), eb = f.exponent_bits;
  if (f.width() < 64 && (bits >> f.width()) != 0)
    throw FormatError(fmt::format("bit pattern {:#x} is wider than the format's {} bits", bits, f.width()));
  return {bits >> (mb + eb) & 1, (bits >> mb) & ((std::uint64_t{1} << eb) - 1), bits & ((std::uint64_t{1} << mb) - 1)};
}

std::uint64_t join(const FormatSpec& f, std::uint64_t sign, std::uint64_t exponent, std::uint64_t mantissa) {
  const int mb = f.mantissa_bits(), eb = f.exponent_bits;
  return sign << (mb + eb) | exponent << mb | mantissa;
}

bool is_nan_pattern(const Fields& x, const FormatSpec& f) {
  const std::uint64_t top = (std::uint64_t{1} << f.exponent_bits) - 1;
  const std::uint64_t all_ones = (std::uint64_t{1} << f.mantissa_bits()) - 1;
  switch (f.encoding) {
    case Encoding::ieee: return x.exponent == top && x.mantissa != 0;
    case Encoding::fn: return x.exponent == top && x.mantissa == all_ones;
    case Encoding::fnuz: return x.sign == 1 && x.exponent == 0 && x.mantissa == 0;
    default: return false;
  }
}

int bias(const FormatSpec& f) { return 1 - f.emin; }

}  // namespace

Class classify_bits(std::uint64_t bits, const FormatSpec& f) {
  const Fields x = split(bits, f);
  if (is_nan_pattern(x, f)) return Class::nan;
  if (f.encoding == Encoding::ieee && x.exponent == (std::uint64_t{1} << f.exponent_bits) - 1) return Class::infinite;
  if (x.exponent == 0) return x.mantissa == 0 ? Class::zero : Class::subnormal;
  return Class::normal;
}

double decode(std::uint64_t bits, const FormatSpec& f) {
  const Fields x = split(bits, f);
  const double sign = x.sign ? -1.0 : 1.0;
  const int mb = f.mantissa_bits();
  switch (classify_bits(bits, f)) {
    case Class::nan: {
      // Keep sign and payload: the mantissa goes to the top of binary64's fraction (so the quiet bit stays the
      // quiet bit); FN and FNUZ have a single NaN, whose mantissa is not a payload.
      std::uint64_t payload = f.encoding == Encoding::ieee ? x.mantissa << (52 - mb) : (std::uint64_t{1} << 51);
      return std::bit_cast<double>(x.sign << 63 | std::uint64_t{0x7ff} << 52 | payload);
    }
    case Class::infinite: return sign * INFINITY;
    case Class::zero: return sign * 0.0;
    case Class::subnormal: return sign * std::ldexp(static_cast<double>(x.mantissa), f.emin - mb);
    case Class::normal:
      return sign * std::ldexp(static_cast<double>(x.mantissa | std::uint64_t{1} << mb),
                               static_cast<int>(x.exponent) - bias(f) - mb);
  }
  return NAN;
}

std::uint64_t encode(double value, const FormatSpec& f) {
  require_encodable(f);
  const std::uint64_t sign = std::signbit(value) ? 1 : 0;
  const std::uint64_t top = (std::uint64_t{1} << f.exponent_bits) - 1;
  const int mb = f.mantissa_bits();
  if (std::isnan(value)) {
    switch (f.encoding) {
      case Encoding::ieee: {
        std::uint64_t payload = (std::bit_cast<std::uint64_t>(value) & ((std::uint64_t{1} << 52) - 1)) >> (52 - mb);
        return join(f, sign, top, payload != 0 ? payload : std::uint64_t{1} << (mb - 1));
      }
      case Encoding::fn: return join(f, sign, top, (std::uint64_t{1} << mb) - 1);
      case Encoding::fnuz: return join(f, 1, 0, 0);
      default: throw FormatError("NaN is not a value of this format (it has no NaN)");
    }
  }
  if (std::isinf(value)) {
    if (!f.has_inf()) throw FormatError(fmt::format("{} is not a value of this format (it has no infinity)", value));
    return join(f, sign, top, 0);
  }
  if (value == 0) return join(f, f.has_negative_zero() ? sign : 0, 0, 0);  // fnuz stores -0 as +0
  if (!representable(value, f))
    throw FormatError(fmt::format("{} is not a value of this format: round it first", value));
  const double a = std::fabs(value);
  const int e = std::ilogb(a);
  if (e < f.emin) return join(f, sign, 0, static_cast<std::uint64_t>(std::ldexp(a, mb - f.emin)));
  const auto significand = static_cast<std::uint64_t>(std::ldexp(a, mb - e));  // in [2^mb, 2^(mb+1))
  return join(f, sign, static_cast<std::uint64_t>(e + bias(f)), significand & ((std::uint64_t{1} << mb) - 1));
}

Class classify(double value, const FormatSpec& f) {
  if (std::isnan(value)) return Class::nan;
  if (std::isinf(value)) return Class::infinite;
  if (value == 0) return Class::zero;
  return std::fabs(value) < f.min_normal() ? Class::subnormal : Class::normal;
}

const char* class_name(Class c) {
  switch (c) {
    case Class::zero: return "zero";
    case Class::subnormal: return "subnormal";
    case Class::normal: return "normal";
    case Class::infinite: return "inf";
    case Class::nan: return "nan";
  }
  return "?";
}

}  // namespace lpsim
