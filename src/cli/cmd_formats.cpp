// `lpsim formats`: the named formats and their constants.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "lpsim/format/format.hpp"

namespace lpsim::cli {

namespace {
const char* overflow_name(Overflow o) {
  switch (o) {
    case Overflow::infinity: return "inf";
    case Overflow::saturate: return "saturate";
    case Overflow::nan: return "nan";
  }
  return "?";
}
const char* specials(const FormatSpec& s) {
  if (s.has_inf()) return "inf,nan";
  return s.has_nan() ? "nan" : "-";
}
}  // namespace

void add_formats_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("formats", "List the named formats: precision, exponent range, extremes, u");
  cmd->callback([] {
    fmt::print("{:<10} {:>4} {:>3} {:>6} {:>6} {:>12} {:>12} {:>12} {:>10} {:>8} {:>9}  {}\n", "name", "bits", "p",
               "emax", "emin", "max", "min_normal", "min_subnorm", "u", "special", "overflow", "description");
    for (const Format& f : named_formats()) {
      const FormatSpec& s = f.spec;
      fmt::print("{:<10} {:>4} {:>3} {:>6} {:>6} {:>12.6g} {:>12.6g} {:>12.6g} {:>10.4g} {:>8} {:>9}  {}\n", f.name,
                 s.width(), s.precision, s.emax, s.emin, s.max_finite(), s.min_normal(), s.min_subnormal(),
                 s.unit_roundoff(), specials(s), overflow_name(s.overflow), f.description);
    }
    fmt::print("\nCustom formats: e<E>m<M> (IEEE layout), e<E>m<M>fn, e<E>m<M>fnuz, e<E>m<M>fo (finite only),\n"
               "p<P>:emax<N>[:emin<M>]; modifiers :sat :nan :inf :nosub. Example: lpsim round --format e3m4:sat 1.3\n");
  });
}

}  // namespace lpsim::cli
