#pragma once
// A Hugging Face config.json written into a directory and read as lpsim reads a model directory: what the family
// tests use to check how each field maps onto the recipe and that a field lpsim does not model is refused by name.
#include <filesystem>
#include <fstream>
#include <string>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/model_config.hpp"

namespace lpsim::test {

// The error reading the directory gives ("" when it reads).
inline std::string config_error(const std::filesystem::path& dir) {
  try {
    load_model_config(dir.string());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// config.json = json (an object) with `extra` fields added ("\"key\": value, ..."), then its error as above.
inline std::string config_error_with(const std::filesystem::path& dir, const std::string& json, const std::string& extra) {
  std::ofstream(dir / "config.json") << json.substr(0, json.rfind('}')) + ", " + extra + "}";
  return config_error(dir);
}

}  // namespace lpsim::test
