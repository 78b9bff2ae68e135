#pragma once
// Integer options read exactly as written: "-1", "2^64", "1e23" and "1.5" for a seed are refused with the option's
// name (before, CLI11 wrapped or saturated them to 2^64 - 1 silently). Applied to every integer option of every
// subcommand by their CLI11 type name, so a new command's options are covered without a line of its own.
#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdint>
#include <string>

namespace lpsim::cli {

inline CLI::Validator strict_integer(bool is_signed) {
  return CLI::Validator(
      [is_signed](std::string& s) -> std::string {
        const char* b = s.data();
        const char* e = s.data() + s.size();
        if (is_signed) {
          long long v = 0;
          const auto [end, ec] = std::from_chars(b, e, v);
          if (ec == std::errc() && end == e && !s.empty()) return "";
          return "'" + s + "' is not an integer (decimal digits with an optional '-', within 64 bits)";
        }
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(b, e, v);
        if (ec == std::errc() && end == e && !s.empty() && s[0] != '-') return "";
        return "'" + s + "' is not a non-negative integer below 2^64 (decimal digits only)";
      },
      is_signed ? "INT" : "UINT", "strict integer");
}

// Adds the strict check to every integer option of app and of its subcommands, recursively.
inline void strict_integer_options(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    if (type == "UINT" || type == "INT") opt->check(strict_integer(type == "INT"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) strict_integer_options(*sub);
}

}  // namespace lpsim::cli
