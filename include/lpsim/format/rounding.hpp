#pragma once
// Rounding modes: every place that rounds says which one (a value passed in, never a global).
#include <cstdint>
#include <string>
#include <string_view>

namespace lpsim {

enum class Rounding : std::uint8_t {
  nearest_even,  // IEEE roundTiesToEven, what hardware and ml_dtypes do by default
  toward_zero,
  upward,        // toward +inf
  downward,      // toward -inf
  nearest_away,  // roundTiesToAway
  to_odd,        // inexact results get an odd last bit; makes a later rounding to fewer bits correct
  stochastic,    // up with probability (x - down) / (up - down), from a counter-based stream
};

inline constexpr Rounding all_roundings[] = {Rounding::nearest_even, Rounding::toward_zero, Rounding::upward,
                                             Rounding::downward,     Rounding::nearest_away, Rounding::to_odd,
                                             Rounding::stochastic};

// Short names: rne, rz, ru, rd, rna, odd, sr (long spellings such as "nearest-even" are accepted too).
std::string_view short_name(Rounding mode);
// Throws FormatError naming the text when it is no rounding mode.
Rounding parse_rounding(std::string_view text);

}  // namespace lpsim
