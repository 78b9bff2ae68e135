#pragma once
// A floating-point format described by value, at run time or at compile time.
//
// FormatSpec is a structural type, so the same description serves as a template argument of the number type
// (lp<spec, rounding>) and as a runtime value chosen on the command line (Format). Both round through the
// same core (round_core.hpp).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lpsim {

// What a rounding that leaves the finite range gives (IEEE 754 says infinity for round-to-nearest; OCP fp8
// e4m3 has no infinity, so ml_dtypes gives NaN and NVIDIA's SATFINITE conversion gives the largest finite).
enum class Overflow : std::uint8_t { infinity, saturate, nan };

// How bit patterns map to values; it decides which special values exist.
enum class Encoding : std::uint8_t {
  ieee,         // all-ones exponent is inf (mantissa 0) or NaN; binary16/32/64, bfloat16, tf32, e5m2
  fn,           // OCP "FN": no infinity; all-ones exponent is finite except all-ones mantissa = NaN (e4m3)
  fnuz,         // "FNUZ": no infinity, no negative zero; the pattern 1000...0 is the single NaN
  finite_only,  // OCP MX element formats (fp6, fp4): every pattern is a finite number
  none,         // value set only (written as p11:emax15 with no matching bit layout): has inf and NaN
};

enum class Class : std::uint8_t { zero, subnormal, normal, infinite, nan };

struct FormatSpec {
  int precision = 0;  // p: significand bits, hidden bit included
  int emax = 0;       // exponent of the largest binade of finite numbers
  int emin = 0;       // exponent of the smallest normal number, 2^emin
  bool subnormals = true;
  Overflow overflow = Overflow::infinity;
  Encoding encoding = Encoding::ieee;
  int exponent_bits = 0;  // width of the exponent field; 0 when the format has no bit encoding

  constexpr bool has_inf() const { return encoding == Encoding::ieee || encoding == Encoding::none; }
  constexpr bool has_nan() const { return encoding != Encoding::finite_only; }
  constexpr bool has_negative_zero() const { return encoding != Encoding::fnuz; }
  constexpr bool encodable() const { return exponent_bits > 0; }
  constexpr int mantissa_bits() const { return precision - 1; }
  constexpr int width() const { return encodable() ? 1 + exponent_bits + precision - 1 : 0; }
  // Significand of the largest finite number, as an integer of p bits: FN loses the all-ones mantissa to NaN.
  constexpr std::uint64_t max_significand() const {
    std::uint64_t all_ones = (std::uint64_t{1} << precision) - 1;
    return encoding == Encoding::fn ? all_ones - 1 : all_ones;
  }
  double max_finite() const;
  double min_normal() const;
  double min_subnormal() const;  // the smallest positive number (min_normal when there are no subnormals)
  double unit_roundoff() const;  // u = 2^-p, the bound on relative error of round-to-nearest
  friend constexpr bool operator==(const FormatSpec&, const FormatSpec&) = default;
};

// A named runtime format: what `--format` and config files give.
struct Format {
  std::string name;         // canonical spelling, e.g. "e4m3fn:sat" or "fp16"
  std::string description;  // one line for `lpsim formats`
  FormatSpec spec;
  friend bool operator==(const Format& a, const Format& b) { return a.spec == b.spec; }  // names are spellings
};

// Thrown for bad format strings and values a format cannot hold; the message names the culprit.
struct FormatError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Formats of the form e<E>m<M> with the given encoding (bias from the encoding's convention).
constexpr FormatSpec make_spec(int exponent_bits, int mantissa_bits, Encoding encoding) {
  FormatSpec s;
  s.precision = mantissa_bits + 1;
  s.exponent_bits = exponent_bits;
  s.encoding = encoding;
  const int half = 1 << (exponent_bits - 1);
  const int bias = encoding == Encoding::fnuz ? half : half - 1;
  const int top_field = (1 << exponent_bits) - 1;  // the all-ones exponent field
  // IEEE keeps the all-ones exponent for inf/NaN; the other encodings use it for finite numbers.
  s.emax = (encoding == Encoding::ieee ? top_field - 1 : top_field) - bias;
  s.emin = 1 - bias;
  s.overflow = encoding == Encoding::ieee          ? Overflow::infinity
               : encoding == Encoding::finite_only ? Overflow::saturate
                                                   : Overflow::nan;
  return s;
}

constexpr FormatSpec with_overflow(FormatSpec s, Overflow o) {
  s.overflow = o;
  return s;
}

// Compile-time constants of the named formats, for lp<> and kernels specialised on a format.
namespace formats {
inline constexpr FormatSpec fp64 = make_spec(11, 52, Encoding::ieee);
inline constexpr FormatSpec fp32 = make_spec(8, 23, Encoding::ieee);
inline constexpr FormatSpec tf32 = make_spec(8, 10, Encoding::ieee);
inline constexpr FormatSpec fp16 = make_spec(5, 10, Encoding::ieee);
inline constexpr FormatSpec bf16 = make_spec(8, 7, Encoding::ieee);
inline constexpr FormatSpec e5m2 = make_spec(5, 2, Encoding::ieee);
inline constexpr FormatSpec e4m3 = make_spec(4, 3, Encoding::fn);
inline constexpr FormatSpec e4m3_sat = with_overflow(e4m3, Overflow::saturate);
inline constexpr FormatSpec e5m2_sat = with_overflow(e5m2, Overflow::saturate);
inline constexpr FormatSpec e4m3fnuz = make_spec(4, 3, Encoding::fnuz);
inline constexpr FormatSpec e4m3ieee = make_spec(4, 3, Encoding::ieee);  // ml_dtypes' float8_e4m3: bias 7, inf
inline constexpr FormatSpec e5m2fnuz = make_spec(5, 2, Encoding::fnuz);
inline constexpr FormatSpec e2m3 = make_spec(2, 3, Encoding::finite_only);
inline constexpr FormatSpec e3m2 = make_spec(3, 2, Encoding::finite_only);
inline constexpr FormatSpec e2m1 = make_spec(2, 1, Encoding::finite_only);
}  // namespace formats

// Checks the ranges the rounding core supports (p <= 53, exponents within binary64) and returns a message
// naming the bad field, or "" when the spec is valid.
std::string validate(const FormatSpec& spec);

// Parses a named format (fp16, bf16, tf32, e4m3, e5m2, e4m3fnuz, ...), a layout e<E>m<M>[fn|fnuz|fo],
// or p<P>:emax<N>[:emin<M>], each optionally followed by modifiers :sat, :nan, :inf, :nosub.
// Throws FormatError naming the part of the string that is wrong.
Format parse_format(std::string_view text);

// The formats `lpsim formats` lists, in a stable order.
const std::vector<Format>& named_formats();

}  // namespace lpsim
