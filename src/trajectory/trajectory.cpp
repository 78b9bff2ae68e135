#include "lpsim/trajectory/trajectory.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "lpsim/diag/diagnostic_columns.hpp"
#include "lpsim/format/format.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "lpsim/stats/regression.hpp"
#include "util/atomic_file.hpp"

namespace lpsim {

namespace fs = std::filesystem;

std::vector<ModelInput<double>> read_probe(const std::string& path, const ModelConfig& cfg) {
  const auto tensors = read_safetensors(path);
  const auto it = tensors.find("images");
  if (it == tensors.end()) throw ConfigError(fmt::format("probe file '{}': no tensor 'images'", path));
  const Tensor& t = it->second;
  const std::size_t per = cfg.embedding == Embedding::patch ? std::size_t(cfg.channels) * cfg.image * cfg.image
                                                            : std::size_t(cfg.tokens) * cfg.width;
  if (t.shape.empty() || t.shape[0] < 1 || t.values.size() != std::size_t(t.shape[0]) * per)
    throw ConfigError(fmt::format("probe file '{}': tensor 'images' has shape [{}], the model needs [n, {}]", path,
                                  fmt::join(t.shape, ", "),
                                  cfg.embedding == Embedding::patch
                                      ? fmt::format("{}, {}, {}", cfg.channels, cfg.image, cfg.image)
                                      : fmt::format("{}, {}", cfg.tokens, cfg.width)));
  std::vector<ModelInput<double>> out;
  for (std::int64_t i = 0; i < t.shape[0]; ++i)
    out.push_back(input_from_values(cfg, {t.values.begin() + i * per, t.values.begin() + (i + 1) * per}));
  return out;
}

std::vector<CheckpointFile> list_checkpoints(const std::string& run_dir) {
  std::vector<CheckpointFile> out;
  const fs::path dir = fs::path(run_dir) / "ckpt";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("step_") || !name.ends_with(".safetensors")) continue;
    const std::string digits = name.substr(5, name.size() - 5 - 12);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    out.push_back({std::stoi(digits), e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::vector<double> read_losses(const std::string& run_dir, int steps) {
  const fs::path path = fs::path(run_dir) / "log.csv";
  if (!fs::exists(path)) return {};
  const CsvTable t = read_csv(path.string());
  const std::vector<double> step = t.numbers("step"), loss = t.numbers("loss");
  std::vector<double> out(std::max(0, steps) + 1, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t i = 0; i < step.size(); ++i)
    if (step[i] >= 0 && step[i] < double(out.size())) out[std::size_t(step[i])] = loss[i];
  return out;
}

namespace {

double eps_of(const NormWeights<double>& n, const ModelConfig& cfg) { return n.eps >= 0 ? n.eps : cfg.norm_eps; }

}  // namespace

TrajectoryPoint evaluate_checkpoint(const ModelConfig& cfg, const Weights<double>& w,
                                    const std::vector<ModelInput<double>>& probe, const PrecisionPlan& plan,
                                    bool diagnostics) {
  TrajectoryPoint p;
  const int taps_per_layer = 4;
  std::vector<double> err2(std::size_t(cfg.depth) * taps_per_layer, 0.0), ref2(err2.size(), 0.0);
  std::vector<long> nonfinite(err2.size(), 0);
  for (const ModelInput<double>& in : probe) {
    EmulatedBackend be(plan);
    std::vector<RangeEvents> events;
    const Taps<double> emulated = emulated_taps(be, cfg, w, in, &events);
    const Taps<double> reference = fp64_taps(cfg, w, in);
    const std::vector<TapError> e = tap_errors(cfg, emulated, reference, events);
    for (std::size_t t = 0; t < e.size(); ++t) {
      err2[t] += std::pow(e[t].rel_fro * e[t].ref_fro, 2), ref2[t] += std::pow(e[t].ref_fro, 2);
      nonfinite[t] += e[t].nonfinite;
    }
  }
  for (int l = 0; l < cfg.depth; ++l) {
    TrajectoryLayer tl;
    tl.layer = l;
    double* r[] = {&tl.r_attn, &tl.r_mid, &tl.r_ffn, &tl.r_block};
    for (int t = 0; t < taps_per_layer; ++t) {
      const std::size_t i = std::size_t(l) * taps_per_layer + t;
      // A non-finite emulated value makes the error non-finite: kept as such (a finding), never dropped.
      *r[t] = ref2[i] > 0 ? std::sqrt(err2[i] / ref2[i]) : (err2[i] > 0 ? INFINITY : 0.0);
      tl.nonfinite += nonfinite[i];
    }
    tl.eps_norm1 = eps_of(w.layers[l].norm1, cfg), tl.eps_norm2 = eps_of(w.layers[l].norm2, cfg);
    p.layers.push_back(tl);
  }
  if (diagnostics) p.diagnostics = diagnose(cfg, w, std::span<const ModelInput<double>>(probe));
  return p;
}

std::string trajectory_header() {
  return "step,loss,layer,eps_norm1,eps_norm2,r_attn,r_mid,r_ffn,r_block,nonfinite" + diagnostic_header() + "\n";
}

std::string trajectory_rows(const TrajectoryPoint& p, const ModelConfig& cfg, const PrecisionPlan& plan) {
  std::string s;
  for (const TrajectoryLayer& l : p.layers)
    s += fmt::format("{},{:.9g},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{}", p.step, p.loss, l.layer, l.eps_norm1,
                     l.eps_norm2, l.r_attn, l.r_mid, l.r_ffn, l.r_block, l.nonfinite) +
         diagnostic_cells(p.diagnostics, cfg, plan, l.layer) + "\n";
  return s;
}

std::string series_header() {
  return "step,loss,r_block_final,r_block_max,kappa_softmax_max,kappa_softmax_sum_max,kappa_score_max,predictor_eps_max,"
         "rho_ln_min,nonfinite\n";
}

std::string series_row(const TrajectoryPoint& p, const ModelConfig& cfg, const PrecisionPlan& plan) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double r_max = 0, ks = nan, kss = nan, kscore = nan, pred = nan, rho = nan;
  long nonfinite = 0;
  for (const TrajectoryLayer& l : p.layers) r_max = std::max(r_max, l.r_block), nonfinite += l.nonfinite;
  const double eps_mach = 2 * plan.unit_roundoff();
  for (const LayerDiagnostics& d : p.diagnostics) {
    const Predictor pr = predictor(d, cfg, eps_mach);
    auto up = [](double& a, double b) { a = std::isnan(a) ? b : std::max(a, b); };
    up(ks, d.kappa_softmax), up(kss, d.kappa_softmax_sum), up(kscore, d.kappa_score), up(pred, pr.combined * eps_mach);
    rho = std::isnan(rho) ? std::min(pr.rho_ln1, pr.rho_ln2) : std::min({rho, pr.rho_ln1, pr.rho_ln2});
  }
  return fmt::format("{},{:.9g},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{}\n", p.step, p.loss,
                     p.layers.back().r_block, r_max, ks, kss, kscore, pred, rho, nonfinite);
}

int run_trajectory(const std::string& run_dir, const ModelConfig& cfg, const std::vector<ModelInput<double>>& probe,
                   const PrecisionPlan& plan, const TrajectoryOptions& o) {
  const fs::path series_path = fs::path(run_dir) / "series.csv", traj_path = fs::path(run_dir) / "trajectory.csv";
  std::set<int> done;
  if (fs::exists(series_path) && fs::exists(traj_path)) {
    for (double s : read_csv(series_path.string()).numbers("step")) done.insert(int(s));
  } else {
    std::ofstream(series_path) << series_header();
    std::ofstream(traj_path) << trajectory_header();
  }
  std::vector<CheckpointFile> todo;
  for (const CheckpointFile& c : list_checkpoints(run_dir))
    if (c.step >= o.first_step && (c.step - o.first_step) % std::max(1, o.every) == 0 && !done.contains(c.step))
      todo.push_back(c);
  const int last = todo.empty() ? 0 : todo.back().step;
  const std::vector<double> losses = read_losses(run_dir, last);
  const std::size_t chunk = 16;
  for (std::size_t first = 0; first < todo.size(); first += chunk) {
    const std::size_t n = std::min(chunk, todo.size() - first);
    std::vector<std::string> traj(n), series(n), errors(n);
#pragma omp parallel for schedule(dynamic)
    for (std::size_t i = 0; i < n; ++i) {
      try {
        const CheckpointFile& c = todo[first + i];
        ModelConfig mc = cfg;
        const Weights<double> w = load_safetensors_weights(c.path, mc);
        TrajectoryPoint p = evaluate_checkpoint(mc, w, probe, plan, o.diagnostics);
        p.step = c.step;
        p.loss = std::size_t(c.step) < losses.size() ? losses[c.step] : std::numeric_limits<double>::quiet_NaN();
        traj[i] = trajectory_rows(p, mc, plan), series[i] = series_row(p, mc, plan);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (const std::string& e : errors)
      if (!e.empty()) throw ConfigError(e);
    std::ofstream t(traj_path, std::ios::app), s(series_path, std::ios::app);
    for (std::size_t i = 0; i < n; ++i) t << traj[i], s << series[i];
    if (!o.quiet)
      fmt::print(stderr, "trajectory {}: {}/{} checkpoints (step {})\n", run_dir, first + n, todo.size(),
                 todo[first + n - 1].step);
  }
  // A resumed run appended its rows after earlier ones: put every row back in step order, so that the files are
  // the ones an uninterrupted run writes.
  if (!done.empty() && !todo.empty())
    for (const fs::path& path : {series_path, traj_path}) {
      std::ifstream in(path);
      std::string header, line;
      std::getline(in, header);
      std::vector<std::pair<int, std::string>> rows;
      while (std::getline(in, line))
        if (!line.empty()) rows.emplace_back(std::stoi(line.substr(0, line.find(','))), line);
      std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::string text = header + "\n";
      for (const auto& r : rows) text += r.second + "\n";
      write_atomically(path.string(), text);
    }
  return int(done.size() + todo.size());
}

}  // namespace lpsim
