// `lpsim round --format F --mode M values...`: each value rounded, with its bit pattern.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "lpsim/format/encoding.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim::cli {

namespace {
struct RoundOptions {
  std::string format = "fp16";
  std::string mode = "rne";
  std::uint64_t seed = 0;
  std::vector<std::string> values;
};

double parse_number(const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    throw std::invalid_argument(fmt::format("'{}' is not a number", text));
  if (errno == ERANGE && std::isinf(v))
    throw std::invalid_argument(fmt::format("'{}' is beyond binary64's range", text));
  return v;  // underflow to a binary64 subnormal is fine: it is the value the user wrote, rounded once
}
}  // namespace

void add_round_command(CLI::App& app) {
  auto opt = std::make_shared<RoundOptions>();
  auto* cmd = app.add_subcommand("round", "Round numbers to a format and show their bit patterns");
  cmd->add_option("-f,--format", opt->format, "target format (see `lpsim formats`)")->capture_default_str();
  cmd->add_option("-m,--mode", opt->mode, "rounding: rne rz ru rd rna odd sr")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "seed of the stochastic rounding stream")->capture_default_str();
  cmd->add_option("values", opt->values, "decimal numbers (parsed to binary64 first), inf, nan")->required();
  cmd->callback([opt] {
    const Format f = parse_format(opt->format);
    const Rounding mode = parse_rounding(opt->mode);
    std::vector<double> xs;
    for (const auto& v : opt->values) xs.push_back(parse_number(v));
    const int hex_digits = f.spec.encodable() ? (f.spec.width() + 3) / 4 : 0;
    fmt::print("format {} (p={}, emax={}, emin={}), rounding {}\n", f.name, f.spec.precision, f.spec.emax,
               f.spec.emin, short_name(mode));
    fmt::print("{:>24} {:>24} {:>12} {:>10} {:>12}\n", "input", "rounded", "bits", "class", "rel_error");
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double r = round_to(xs[i], f.spec, mode, random_bits(opt->seed, 0, i));
      std::string bits = "-";
      if (hex_digits > 0 && (!std::isnan(r) || f.spec.has_nan()))
        bits = fmt::format("0x{:0{}x}", encode(r, f.spec), hex_digits);
      const double rel = (xs[i] != 0 && std::isfinite(xs[i]) && std::isfinite(r)) ? std::fabs(r - xs[i]) / std::fabs(xs[i])
                                                                                  : NAN;
      fmt::print("{:>24.17g} {:>24.17g} {:>12} {:>10} {:>12.4g}\n", xs[i], r, bits, class_name(classify(r, f.spec)), rel);
    }
  });
}

}  // namespace lpsim::cli
