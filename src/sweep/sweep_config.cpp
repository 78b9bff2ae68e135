#include "lpsim/sweep/sweep_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/toml_fields.hpp"
#include "lpsim/diag/diagnostics.hpp"
#include "util/read_text.hpp"

namespace lpsim {

namespace {


bool is_plan_axis(const std::string& key) { return key == "plan" || key == "format" || key == "policy"; }

AxisValue axis_value(const toml::node& n, const std::string& where, const std::string& key) {
  std::stringstream toml_text;
  if (auto s = n.value_exact<std::string>()) {
    toml_text << toml::value<std::string>(*s);
    return {*s, toml_text.str()};
  }
  if (n.is_integer() || n.is_floating_point() || n.is_boolean()) {
    n.visit([&](const auto& v) { toml_text << v; });
    return {toml_text.str(), toml_text.str()};
  }
  throw ConfigError(fmt::format("{}: axis '{}' must list numbers, strings or booleans", where, key));
}

}  // namespace

SweepConfig parse_sweep(std::string_view text, const std::string& file) {
  const toml::table root = parse_toml(text, file);
  TomlFields top(root, file, "");
  SweepConfig s;
  s.file = file;
  s.text = std::string(text);
  s.name = std::filesystem::path(file).stem().string();
  const toml::table* sweep = top.subtable("sweep");
  if (!sweep) throw ConfigError(fmt::format("{}: table [sweep] is missing", file));
  TomlFields f(*sweep, file, "sweep.");
  s.name = f.get<std::string>("name", s.name);
  // The name becomes a directory under --results: one path component of plain characters, nothing that climbs out.
  const bool plain = !s.name.empty() && s.name != "." && s.name != ".." &&
                     std::all_of(s.name.begin(), s.name.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '+';
                     });
  if (!plain)
    f.fail("name", fmt::format("= '{}' must be one directory name of letters, digits and . _ - + (not '.' or '..'){}",
                               s.name, f.has("name") ? "" : "; set [sweep] name or rename the file"));
  s.model_file = f.get<std::string>("model", "");
  if (s.model_file.empty()) f.fail("model", "is missing (the base model file, e.g. \"models/tiny-vit.toml\")");
  if (!std::filesystem::exists(s.model_file)) {  // relative to the working directory, else to the sweep file's parent
    const auto beside = std::filesystem::path(file).parent_path().parent_path() / s.model_file;
    if (!std::filesystem::exists(beside)) f.fail("model", fmt::format("= '{}': no such file", s.model_file));
    s.model_file = beside.string();
  }
  if (f.has("seeds")) {
    const toml::node& n = *sweep->get("seeds");
    if (auto count = n.value_exact<int64_t>()) {
      if (*count < 1 || *count > 1000000) f.fail("seeds", "must be a count in 1..1000000 or a list of seeds");
      for (int64_t i = 0; i < *count; ++i) s.seeds.push_back(static_cast<std::uint64_t>(i));
    } else if (const toml::array* a = n.as_array()) {
      for (const auto& e : *a) {
        const auto v = e.value_exact<int64_t>();
        if (!v || *v < 0) f.fail("seeds", "must list non-negative integers");
        s.seeds.push_back(static_cast<std::uint64_t>(*v));
      }
      if (s.seeds.empty()) f.fail("seeds", "is an empty list");
    } else {
      f.fail("seeds", "must be a count or a list of integers");
    }
  } else {
    s.seeds = {0};
  }
  s.batches = f.get_int("batches", 1, 1, 1000000);
  s.reference = f.get_choice("reference", "mpfr", {"mpfr", "fp64", "dd"});
  s.reference_bits = f.get_int("ref_bits", 128, 64, 100000);
  s.rows = f.get_choice("rows", "all", {"all", "block", "final"});
  s.diagnostics = f.get<bool>("diagnostics", true);
  s.residual_gains = f.get<bool>("residual_gains", false);
  if (s.residual_gains && !s.diagnostics) f.fail("residual_gains", "needs diagnostics = true");
  f.finish();

  if (const toml::table* axes = top.subtable("axes")) {
    for (const auto& [k, node] : *axes) {
      Axis axis;
      axis.key = std::string(k.str());
      axis.line = static_cast<int>(k.source().begin.line);
      const std::string where = fmt::format("{} line {}", file, axis.line);
      const bool model_key = axis.key.starts_with("model.") || axis.key.starts_with("init.") || axis.key.starts_with("input.");
      if (!is_plan_axis(axis.key) && !model_key)
        throw ConfigError(fmt::format("{}: axis '{}' is unknown: axes are plan, format, policy, model.<key>, init.<key>, "
                                      "input.<key>{}", where, axis.key,
                                      did_you_mean(axis.key, std::vector<std::string>{"plan", "format", "policy"})));
      const toml::array* values = node.as_array();
      if (!values) throw ConfigError(fmt::format("{}: axis '{}' must be a list of values", where, axis.key));
      if (values->empty()) throw ConfigError(fmt::format("{}: axis '{}' is empty", where, axis.key));
      for (const auto& v : *values) axis.values.push_back(axis_value(v, where, axis.key));
      s.axes.push_back(std::move(axis));
    }
    // toml++ keeps keys sorted; the grid's order is the file's.
    std::stable_sort(s.axes.begin(), s.axes.end(), [](const Axis& a, const Axis& b) { return a.line < b.line; });
  }
  if (const toml::table* plot = top.subtable("plot")) {
    TomlFields f(*plot, file, "plot.");
    s.plot_x = f.get<std::string>("x", s.plot_x);
    s.plot_y = f.get<std::string>("y", s.plot_y);
    s.plot_color = f.get<std::string>("color", s.plot_color);
    s.log_x = f.get_choice("x_scale", "log", {"log", "linear"}) == "log";
    s.log_y = f.get_choice("y_scale", "log", {"log", "linear"}) == "log";
    s.aggregate = f.get<bool>("aggregate", false);
    for (auto [key, list] : {std::pair{"stats_x", &s.stats_x}, {"extra_plots", &s.extra_plots}}) {
      if (!f.has(key)) continue;
      const toml::array* a = plot->get(key)->as_array();
      if (!a) f.fail(key, "must be a list of column names");
      for (const auto& e : *a) {
        const auto v = e.value_exact<std::string>();
        if (!v) f.fail(key, "must list column names (strings)");
        list->push_back(*v);
      }
    }
    f.finish();
  }
  top.finish();
  return s;
}

SweepConfig load_sweep(const std::string& path) { return parse_sweep(read_text(path, "sweep file"), path); }

namespace {

// Every combination of the given axes, first axis slowest.
std::vector<std::vector<int>> combinations(const std::vector<const Axis*>& axes) {
  std::vector<std::vector<int>> out{{}};
  for (const Axis* a : axes) {
    std::vector<std::vector<int>> next;
    for (const auto& prefix : out)
      for (int i = 0; i < int(a->values.size()); ++i) {
        next.push_back(prefix);
        next.back().push_back(i);
      }
    out = std::move(next);
  }
  return out;
}

// A plan in which every stored tensor and every GEMM input is `format` (fp32 compute and accumulation).
PrecisionPlan format_plan(const std::string& format) {
  PrecisionPlan p = plan_preset("fp32");
  const Format f = parse_format(format);
  for (Op op : all_ops) {
    p[op].out = f;
    if (p[op].gemm) p[op].gemm->input = f, p[op].gemm->output = f;
  }
  p.name = format;
  return p;
}

PrecisionPlan build_plan(const SweepConfig& s, const std::vector<const Axis*>& axes, const std::vector<int>& pick) {
  PrecisionPlan plan = plan_preset("fp32");
  std::string name;
  // Fixed order whatever the file's: a plan, then a format over it, then an accumulation policy over that.
  for (const char* kind : {"plan", "format", "policy"})
    for (std::size_t i = 0; i < axes.size(); ++i) {
      if (axes[i]->key != kind) continue;
      const std::string& v = axes[i]->values[pick[i]].text;
      try {
        if (axes[i]->key == "plan") {
          plan = load_plan(v);
        } else if (axes[i]->key == "format") {
          plan = format_plan(v);
        } else {  // the policy's accumulation replaces every GEMM class's; its input and output formats stay
          const AccumPolicy q = parse_policy(v);
          for (Op op : all_ops)
            if (plan[op].gemm) {
              AccumPolicy r = q;
              r.input = plan[op].gemm->input, r.output = plan[op].gemm->output;
              if (const std::string bad = validate(r); !bad.empty()) throw PolicyError(bad);
              plan[op].gemm = r;
            }
        }
      } catch (const std::exception& e) {
        throw ConfigError(fmt::format("{} line {}: axis '{}' = '{}': {}", s.file, axes[i]->line, axes[i]->key, v, e.what()));
      }
      name += (name.empty() ? "" : "+") + v;
    }
  plan.name = name.empty() ? "fp32" : name;
  return plan;
}

}  // namespace

SweepPlan expand(const SweepConfig& s) {
  SweepPlan out;
  std::vector<const Axis*> plan_axes, model_axes;
  for (const Axis& a : s.axes) (is_plan_axis(a.key) ? plan_axes : model_axes).push_back(&a);
  for (const Axis* a : plan_axes) out.plan_axes.push_back(a->key);
  for (const Axis* a : model_axes) out.model_axes.push_back(a->key);
  // Refuse a grid too large before expanding it (a million seeds times a million batches kept expanding for
  // minutes and then ran out of memory).
  double models = 1, plans = 1;
  for (const Axis* a : model_axes) models *= double(a->values.size());
  for (const Axis* a : plan_axes) plans *= double(a->values.size());
  const double units = models * double(s.seeds.size()) * double(s.batches);
  if (units > kMaxSweepUnits || plans > kMaxSweepPlans)
    throw ConfigError(fmt::format("{}: the sweep expands to {:.6g} units ({:.6g} model combinations x {} seeds x {} "
                                  "batches) and {:.6g} plans; at most {:.0f} units and {:.0f} plans (split it into "
                                  "several sweeps or shards of smaller grids)", s.file, units, models, s.seeds.size(),
                                  s.batches, plans, kMaxSweepUnits, kMaxSweepPlans));

  for (const auto& pick : combinations(plan_axes)) {
    PlanChoice c;
    for (std::size_t i = 0; i < pick.size(); ++i) c.values.push_back(plan_axes[i]->values[pick[i]].text);
    c.plan = build_plan(s, plan_axes, pick);
    out.plans.push_back(std::move(c));
  }

  // A Hugging Face directory is the base of a [model] table that the model axes can override.
  std::string base_text;
  if (std::filesystem::is_directory(s.model_file)) {
    const std::string dir = std::filesystem::absolute(s.model_file).string();
    if (dir.find('\'') != std::string::npos || dir.find('\n') != std::string::npos)
      throw ConfigError(fmt::format("{}: model directory '{}' has a quote or newline in its path", s.file, dir));
    base_text = fmt::format("[model]\nhf = '{}'\n", dir);
  } else if (!std::filesystem::is_regular_file(s.model_file)) {
    throw ConfigError(fmt::format("{}: key 'sweep.model' = '{}' is not a regular file or model directory", s.file, s.model_file));
  } else {
    base_text = read_text(s.model_file, "model file");
  }
  const toml::table base = parse_toml(base_text, s.model_file);
  for (const auto& pick : combinations(model_axes)) {
    toml::table t = base;
    std::vector<std::string> values;
    for (std::size_t i = 0; i < pick.size(); ++i) {
      const Axis& a = *model_axes[i];
      const AxisValue& v = a.values[pick[i]];
      values.push_back(v.text);
      const auto dot = a.key.find('.');
      const std::string table = a.key.substr(0, dot), key = a.key.substr(dot + 1);
      if (!t.contains(table)) t.insert(table, toml::table{});
      const toml::table parsed = toml::parse("v = " + v.toml);
      t[table].as_table()->insert_or_assign(key, *parsed.get("v"));
    }
    std::stringstream text;
    text << t;
    ModelConfig model;
    try {
      model = parse_model_config(text.str(), s.model_file);
    } catch (const ConfigError& e) {
      std::string which;
      for (std::size_t i = 0; i < pick.size(); ++i)
        which += fmt::format("{}{} = {}", which.empty() ? "" : ", ", model_axes[i]->key, values[i]);
      int line = model_axes.empty() ? 0 : model_axes.front()->line;  // the axis the message names, if any
      for (const Axis* a : model_axes)
        if (std::string(e.what()).find(a->key) != std::string::npos) line = a->line;
      throw ConfigError(fmt::format("{} line {}: axes {}: {}", s.file, line, which, e.what()));
    }
    for (const PlanChoice& c : out.plans)  // a plan the model cannot run, before any work
      if (const std::string why = plan_model_problem(model, c.plan); !why.empty())
        throw ConfigError(fmt::format("{}: {}", s.file, why));
    if (s.diagnostics)  // refused before any reference is computed, with the reason
      if (const std::string why = diagnostics_problem(model); !why.empty())
        throw ConfigError(fmt::format("{}: key 'sweep.diagnostics' = true: {}", s.file, why));
    for (std::uint64_t seed : s.seeds)
      for (int b = 0; b < s.batches; ++b) {
        Unit u;
        u.index = int(out.units.size());
        u.model_values = values;
        u.model = model;
        u.seed = seed;
        u.batch = b;
        out.units.push_back(std::move(u));
      }
  }
  return out;
}

}  // namespace lpsim
