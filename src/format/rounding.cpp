#include "lpsim/format/rounding.hpp"

#include <fmt/format.h>

#include "lpsim/format/format.hpp"

namespace lpsim {

namespace {
struct ModeName {
  Rounding mode;
  const char* short_name;
  const char* long_name;
};
constexpr ModeName mode_names[] = {
    {Rounding::nearest_even, "rne", "nearest-even"}, {Rounding::toward_zero, "rz", "toward-zero"},
    {Rounding::upward, "ru", "upward"},              {Rounding::downward, "rd", "downward"},
    {Rounding::nearest_away, "rna", "nearest-away"}, {Rounding::to_odd, "odd", "to-odd"},
    {Rounding::stochastic, "sr", "stochastic"},
};
}  // namespace

std::string_view short_name(Rounding mode) {
  for (const auto& m : mode_names)
    if (m.mode == mode) return m.short_name;
  return "?";
}

Rounding parse_rounding(std::string_view text) {
  for (const auto& m : mode_names)
    if (text == m.short_name || text == m.long_name) return m.mode;
  throw FormatError(fmt::format("unknown rounding mode '{}' (known: rne, rz, ru, rd, rna, odd, sr)", text));
}

}  // namespace lpsim
