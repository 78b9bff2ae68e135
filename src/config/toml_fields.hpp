#pragma once
// Typed reads from one TOML table that reject wrong types and unknown keys, naming file, line and key:
//   models/x.toml line 4: key 'model.widht' is unknown (did you mean 'width'?)
// Every key a reader asks for is known; finish() rejects the rest, so a misspelt key never passes silently.
#include <fmt/format.h>

#include <optional>
#include <set>
#include <vector>
#include <string>
#include <toml++/toml.h>

#include "lpsim/config/config_error.hpp"
#include "util/suggest.hpp"

namespace lpsim {

class TomlFields {
 public:
  TomlFields(const toml::table& table, std::string file, std::string prefix)
      : table_(table), file_(std::move(file)), prefix_(std::move(prefix)) {}

  // The line of a key (or of the table when the key is absent), for messages.
  std::string where(std::string_view key) const {
    const toml::node* n = table_.get(key);
    const auto& src = n ? n->source() : table_.source();
    return src.begin.line ? fmt::format("{} line {}", file_, src.begin.line) : file_;
  }
  std::string name(std::string_view key) const { return prefix_ + std::string(key); }

  [[noreturn]] void fail(std::string_view key, std::string_view what) const {
    throw ConfigError(fmt::format("{}: key '{}' {}", where(key), name(key), what));
  }

  bool has(std::string_view key) {
    known_.insert(std::string(key));
    return table_.contains(key);
  }

  template <class T>
  std::optional<T> optional(std::string_view key) {
    if (!has(key)) return std::nullopt;
    const toml::node& n = *table_.get(key);
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = n.value_exact<bool>()) return *v;
      fail(key, "must be true or false");
    } else if constexpr (std::is_integral_v<T>) {
      if (auto v = n.value_exact<int64_t>()) return static_cast<T>(*v);
      fail(key, "must be an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (auto v = n.value<double>(); v && (n.is_floating_point() || n.is_integer())) return static_cast<T>(*v);
      fail(key, "must be a number");
    } else {
      if (auto v = n.value_exact<std::string>()) return *v;
      fail(key, "must be a string");
    }
  }

  template <class T>
  T get(std::string_view key, T fallback) {
    return optional<T>(key).value_or(fallback);
  }

  // An integer in [lo, hi].
  int get_int(std::string_view key, int fallback, int lo, int hi) {
    const auto v = optional<int64_t>(key);
    if (v && (*v < lo || *v > hi)) fail(key, fmt::format("= {} is outside {}..{}", *v, lo, hi));
    return v ? static_cast<int>(*v) : fallback;
  }

  // A string out of a fixed set.
  std::string get_choice(std::string_view key, std::string fallback, std::initializer_list<std::string_view> choices) {
    return get_choice_in(key, std::move(fallback), choices);
  }
  // A string out of a set known at run time (the registered model families).
  std::string get_choice(std::string_view key, std::string fallback, const std::vector<std::string>& choices) {
    return get_choice_in(key, std::move(fallback), choices);
  }

  template <class Range>
  std::string get_choice_in(std::string_view key, std::string fallback, const Range& choices) {
    const auto v = optional<std::string>(key);
    if (!v) return fallback;
    for (auto c : choices)
      if (*v == c) return *v;
    std::string list;
    for (auto c : choices) list += (list.empty() ? "" : ", ") + std::string(c);
    fail(key, fmt::format("= '{}' is not one of {}{}", *v, list, did_you_mean(*v, choices)));
  }

  const toml::table* subtable(std::string_view key) {
    if (!has(key)) return nullptr;
    const toml::table* t = table_.get(key)->as_table();
    if (!t) fail(key, "must be a table");
    return t;
  }

  void finish() const {
    for (const auto& [k, v] : table_) {
      const std::string key(k.str());
      if (!known_.contains(key))
        throw ConfigError(fmt::format("{}: key '{}' is unknown{}", fmt::format("{} line {}", file_, k.source().begin.line),
                                      name(key), did_you_mean(key, known_)));
    }
  }

 private:
  const toml::table& table_;
  std::string file_;
  std::string prefix_;
  std::set<std::string> known_;
};

// Parses a TOML file (or text, for tests), turning parse errors into ConfigError with file and line.
inline toml::table parse_toml(std::string_view text, const std::string& file) {
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{} line {}: {}", file, e.source().begin.line, e.description()));
  }
}

}  // namespace lpsim
