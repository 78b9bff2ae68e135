#pragma once
// Bit patterns of a format (1 sign bit, exponent_bits, mantissa_bits, as uint8/uint16/uint32/uint64), for
// storage and for comparing with hardware. NaN payloads survive decode -> encode.
#include <cstdint>

#include "lpsim/format/format.hpp"

namespace lpsim {

// The value a bit pattern stands for. Throws FormatError if the format has no bit encoding or the pattern is
// wider than the format.
double decode(std::uint64_t bits, const FormatSpec& f);

// The pattern of a value of the format. Throws FormatError if the value is not in the format (round it first).
std::uint64_t encode(double value, const FormatSpec& f);

Class classify_bits(std::uint64_t bits, const FormatSpec& f);
Class classify(double value, const FormatSpec& f);  // value must be a value of the format
const char* class_name(Class c);

}  // namespace lpsim
