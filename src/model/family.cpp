#include "lpsim/model/family.hpp"

#include "lpsim/config/config_error.hpp"

namespace lpsim {

// Written by CMake from src/model/families/*.cpp: each file <name>.cpp defines `extern const Family family_<name>`.
const std::vector<const Family*>& registered_families();

const std::vector<const Family*>& families() { return registered_families(); }

const Family* family_by_arch(std::string_view arch) {
  for (const Family* f : families())
    if (f->arch == arch) return f;
  return nullptr;
}

const Family* family_by_model_type(std::string_view model_type) {
  for (const Family* f : families())
    for (std::string_view t : f->model_types)
      if (t == model_type) return f;
  return nullptr;
}

std::vector<std::string> family_arch_names() {
  std::vector<std::string> names;
  for (const Family* f : families()) names.emplace_back(f->arch);
  return names;
}

std::vector<std::string> family_model_types() {
  std::vector<std::string> names;
  for (const Family* f : families())
    for (std::string_view t : f->model_types) names.emplace_back(t);
  return names;
}

CheckpointLayout checkpoint_layout(const Family& f, const ModelConfig& c) {
  if (f.layout) return f.layout(c);
  const Family* other = family_by_arch(f.checkpoint_family);
  if (!other || !other->layout)
    throw ConfigError("family '" + std::string(f.arch) + "' names no checkpoint layout (a bug in its description)");
  return other->layout(c);
}

}  // namespace lpsim
