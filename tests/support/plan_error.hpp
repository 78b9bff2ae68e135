#pragma once
// The error a plan file's text gives ("" when it parses): what the plan tests check key names against.
#include <string>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim::test {

inline std::string plan_error(const std::string& toml) {
  try {
    parse_plan(toml, "p.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace lpsim::test
