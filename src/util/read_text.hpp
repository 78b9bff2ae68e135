#pragma once
// A whole text file, or ConfigError "cannot open <what> '<path>'": the one reader of config and results files.
#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <string>

#include "lpsim/config/config_error.hpp"

namespace lpsim {

inline std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("cannot open {} '{}'", what, path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace lpsim
