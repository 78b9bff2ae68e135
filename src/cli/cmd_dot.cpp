// `lpsim dot`: one dot product under one or more accumulation policies, beside the exact value (MPFR), so a user
// can explore an accumulation in seconds.
//   lpsim dot -p fp16-fp16acc -p fp16-fp32acc --random 4096 --seed 1
//   lpsim dot -p "in=bf16,acc=bf16,order=pairwise" --file pairs.txt      (two columns: a b)
//   lpsim dot -p fp16-tc --a 1,2,3 --b 4,5,6
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <random>
#include <sstream>

#include "cli/commands.hpp"
#include "util/input_file.hpp"
#include "lpsim/accum/gemm.hpp"
#include "lpsim/format/mpfr_round.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim::cli {

namespace {

struct DotOptions {
  std::vector<std::string> policies;
  std::string a, b, file, dist = "normal";
  int random = 0;
  double mean = 0, scale = 1;
  std::uint64_t seed = 0;
  bool list = false;
};

double parse_value(const std::string& text, const std::string& where) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    throw std::invalid_argument(fmt::format("{}: '{}' is not a number", where, text));
  return v;
}

std::vector<double> parse_list(const std::string& text, const std::string& name) {
  std::vector<double> v;
  std::stringstream ss(text);
  std::string item;
  for (int i = 1; std::getline(ss, item, ','); ++i) v.push_back(parse_value(item, fmt::format("--{} item {}", name, i)));
  return v;
}

void read_pairs(const std::string& path, std::vector<double>& a, std::vector<double>& b) {
  require_regular_file(path, "--file");
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(fmt::format("cannot open '{}'", path));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::stringstream ss(line);
    std::string x, y, extra;
    if (!(ss >> x)) continue;
    if (!(ss >> y) || (ss >> extra))
      throw std::invalid_argument(fmt::format("{} line {}: expected two numbers 'a b'", path, n));
    a.push_back(parse_value(x, fmt::format("{} line {}", path, n)));
    b.push_back(parse_value(y, fmt::format("{} line {}", path, n)));
  }
}

std::vector<double> random_vector(const DotOptions& o, std::uint64_t stream) {
  std::mt19937_64 gen(o.seed * 2 + stream);
  std::vector<double> v(o.random);
  if (o.dist == "normal") {
    std::normal_distribution<double> d(o.mean, o.scale);
    for (auto& x : v) x = d(gen);
  } else if (o.dist == "uniform") {
    std::uniform_real_distribution<double> d(o.mean - o.scale, o.mean + o.scale);
    for (auto& x : v) x = d(gen);
  } else if (o.dist == "lognormal") {  // wide dynamic range, random signs
    std::normal_distribution<double> d(o.mean, o.scale);
    for (auto& x : v) x = std::exp(d(gen)) * ((gen() & 1) ? 1 : -1);
  } else {
    throw std::invalid_argument(fmt::format("--dist: unknown distribution '{}' (known: normal, uniform, lognormal)", o.dist));
  }
  return v;
}

// The exact sum of products, and the relative error of `approx` against it, both computed by MPFR.
struct Exact {
  Mpfr sum{4400};  // every product and sum of binary64 values is exact at this precision
  explicit Exact(const std::vector<double>& a, const std::vector<double>& b) {
    mpfr_set_zero(sum, 1);
    Mpfr x(64), y(64);
    for (size_t i = 0; i < a.size(); ++i) {
      mpfr_set_d(x, a[i], MPFR_RNDN);
      mpfr_set_d(y, b[i], MPFR_RNDN);
      mpfr_fma(sum, x, y, sum, MPFR_RNDN);
    }
  }
  double value() { return mpfr_get_d(sum, MPFR_RNDN); }
  double relative_error(double approx) {
    if (approx == value() && (std::isfinite(approx) || std::isinf(approx))) return 0.0;
    if (!std::isfinite(approx)) return INFINITY;  // overflow or NaN where the exact value is finite: a finding
    if (mpfr_zero_p(sum.get())) return approx == 0 ? 0.0 : INFINITY;
    Mpfr d(4400);
    mpfr_set_d(d, approx, MPFR_RNDN);
    mpfr_sub(d, d, sum, MPFR_RNDN);
    mpfr_div(d, d, sum, MPFR_RNDN);
    return std::fabs(mpfr_get_d(d, MPFR_RNDN));
  }
};

void run(const DotOptions& o) {
  if (o.list) {
    fmt::print("{:<20} {:<70} {}\n", "preset", "definition", "what it models");
    for (const auto& p : policy_presets()) fmt::print("{:<20} {:<70} {}\n", p.name, p.definition, p.description);
    return;
  }
  std::vector<AccumPolicy> policies;
  for (const auto& text : o.policies) policies.push_back(parse_policy(text));  // every error before any output
  std::vector<double> a, b;
  const int sources = (!o.a.empty() || !o.b.empty()) + !o.file.empty() + (o.random > 0);
  if (sources != 1) throw std::invalid_argument("give the vectors one way: --a/--b, --file, or --random N");
  if (!o.file.empty()) read_pairs(o.file, a, b);
  else if (o.random > 0) a = random_vector(o, 0), b = random_vector(o, 1);
  else a = parse_list(o.a, "a"), b = parse_list(o.b, "b");
  if (a.size() != b.size()) throw std::invalid_argument(fmt::format("--a has {} values, --b {}", a.size(), b.size()));

  Exact given(a, b);
  fmt::print("n = {}, exact dot product of the given vectors: {:.17g}\n\n", a.size(), given.value());
  size_t w = 22;
  for (const auto& text : o.policies) w = std::max(w, text.size());
  fmt::print("{:<{}} {:<27} {:>24} {:>24} {:>11} {:>11} {:>8}\n", "policy", w, "kernel", "emulated", "exact(rounded in)",
             "rel.err", "vs given", "rounded");
  for (size_t pi = 0; pi < policies.size(); ++pi) {
    const AccumPolicy& p = policies[pi];
    const std::string& text = o.policies[pi];
    // Operands are rounded to the policy's input format first (with RNE); the accumulation error is measured
    // against the exact dot product of the rounded operands, the total error against the given vectors.
    std::vector<double> ar(a.size()), br(b.size());
    int changed = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ar[i] = round_to(a[i], p.input.spec, Rounding::nearest_even);
      br[i] = round_to(b[i], p.input.spec, Rounding::nearest_even);
      changed += (ar[i] != a[i]) + (br[i] != b[i]);
    }
    const double result = dot(p, ar, br, {{o.seed, 0, 0}});
    Exact exact(ar, br);
    fmt::print("{:<{}} {:<27} {:>24.17g} {:>24.17g} {:>11.3e} {:>11.3e} {:>8}\n", text, w,
               path_name(gemm_path(p, Isa::best, false)), result, exact.value(), exact.relative_error(result),
               given.relative_error(result), changed);
  }
  fmt::print("\nrel.err: against the exact dot product of the operands rounded to the input format (the "
             "accumulation's error);\nvs given: against the vectors as given; rounded: operands that rounding to the "
             "input format changed.\n");
}

}  // namespace

void add_dot_command(CLI::App& app) {
  auto opt = std::make_shared<DotOptions>();
  auto* cmd = app.add_subcommand("dot", "One dot product under accumulation policies, beside the exact value");
  cmd->add_option("-p,--policy", opt->policies, "accumulation policy: a preset or key=value list (repeatable)");
  cmd->add_flag("--list", opt->list, "list the policy presets");
  cmd->add_option("--a", opt->a, "first vector, comma-separated");
  cmd->add_option("--b", opt->b, "second vector, comma-separated");
  cmd->add_option("--file", opt->file, "text file of pairs 'a b', one per line (# comments)");
  cmd->add_option("--random", opt->random, "length of random vectors")->check(CLI::Range(1, 1 << 26));
  cmd->add_option("--dist", opt->dist, "normal, uniform or lognormal")->capture_default_str();
  cmd->add_option("--mean", opt->mean, "mean (normal, lognormal's log) or centre (uniform)")->capture_default_str();
  cmd->add_option("--scale", opt->scale, "standard deviation or half-width")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "seed of the random vectors and of stochastic rounding")->capture_default_str();
  cmd->callback([opt] {
    if (opt->policies.empty() && !opt->list) opt->policies = {"fp16-fp32acc", "fp16-fp16acc", "fp16-tc", "bf16-fp32acc"};
    run(*opt);
  });
}

}  // namespace lpsim::cli
