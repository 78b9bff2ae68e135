#include "lpsim/hw/hf_observations.hpp"

#include <set>

#include "util/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <tuple>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/stats/csv_table.hpp"

namespace lpsim {

std::vector<HfComparison> compare_hf_observations(const std::string& dir) {
  const CsvTable t = read_csv(dir + "/observed.csv");
  const int c_model = t.column("model"), c_mode = t.column("mode"), c_layer = t.column("layer"), c_tap = t.column("tap");
  const std::vector<double> rel = t.numbers("rel_fro"), kl = t.numbers("kl_mean"), top1 = t.numbers("top1");
  // One lpsim study per (model, mode); its taps by (layer, tap name).
  std::map<std::pair<std::string, std::string>, std::map<std::pair<int, std::string>, TapError>> predicted;
  std::map<std::string, ModelConfig> models;
  std::vector<HfComparison> out;
  std::set<std::pair<std::string, std::string>> studies;  // one study per (model, mode): what takes the time
  for (const auto& row : t.rows) studies.insert({row[c_model], row[c_mode]});
  Progress progress("hf-check", "studies", int(studies.size()));
  int studied = 0;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    const std::string& model = row[c_model];
    const std::string& mode = row[c_mode];
    if (!models.contains(model)) {
      const std::string model_dir = dir + "/models/" + model;
      if (!std::filesystem::is_directory(model_dir))
        throw ConfigError(fmt::format("{}/observed.csv row {}: no model directory '{}'", dir, r + 2, model_dir));
      ModelConfig cfg = load_model_config(model_dir);
      use_input_file(cfg, model_dir + "/input.txt");
      models.emplace(model, cfg);
    }
    const ModelConfig& cfg = models.at(model);
    auto& taps = predicted[{model, mode}];
    if (taps.empty()) {
      StudyOptions o;
      o.check_reference = false;  // 128 bits: ~1e-34 against 257 bits on these models (lpsim run shows it)
      for (const TapError& e : run_study(cfg, plan_preset(mode), o).taps) taps[{e.layer, std::string(tap_name(e.tap))}] = e;
      progress.step(++studied);
    }
    HfComparison c;
    c.model = model, c.mode = mode, c.tap = row[c_tap];
    c.layer = std::stoi(row[c_layer]);
    if (c.layer < 0) c.layer = cfg.depth;  // the script writes -1 for what follows the blocks
    const auto it = taps.find({c.layer, c.tap});
    if (it == taps.end())
      throw ConfigError(fmt::format("{}/observed.csv row {}: lpsim has no tap '{}' at layer {} of {}", dir, r + 2, c.tap,
                                    c.layer, model));
    c.observed = rel[r], c.predicted = it->second.rel_fro;
    c.kl_observed = kl[r], c.kl_predicted = it->second.kl_mean;
    c.top1_observed = top1[r], c.top1_predicted = it->second.top1;
    out.push_back(c);
  }
  return out;
}

std::vector<HfRouteAgreement> compare_hf_routes(const std::string& dir) {
  const std::string file = dir + "/routes.csv";
  if (!std::filesystem::exists(file)) return {};
  const CsvTable t = read_csv(file);
  const int c_model = t.column("model"), c_mode = t.column("mode"), c_layer = t.column("layer"),
            c_token = t.column("token"), c_experts = t.column("experts");
  std::map<std::pair<std::string, std::string>, std::vector<Routing>> predicted;  // lpsim's routes per (model, mode)
  std::map<std::tuple<std::string, std::string, int>, HfRouteAgreement> agree;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    const std::string &model = row[c_model], &mode = row[c_mode];
    auto& routes = predicted[{model, mode}];
    if (routes.empty()) {
      const std::string model_dir = dir + "/models/" + model;
      ModelConfig cfg = load_model_config(model_dir);
      use_input_file(cfg, model_dir + "/input.txt");
      EmulatedBackend be(plan_preset(mode == "fp64" ? "fp64" : mode));
      routes = emulated_taps(be, cfg, make_weights(cfg, 0), make_input(cfg, 0)).routes;
    }
    const int layer = std::stoi(row[c_layer]), token = std::stoi(row[c_token]);
    if (layer < 0 || layer >= int(routes.size()) || token < 0 || token >= routes[layer].tokens)
      throw ConfigError(fmt::format("{} row {}: {} has no routed layer {} token {}", file, r + 2, model, layer, token));
    std::vector<int> gpu;  // the experts, space-separated
    std::istringstream experts(row[c_experts]);
    for (int e; experts >> e;) gpu.push_back(e);
    if (!experts.eof())
      throw ConfigError(fmt::format("{} row {}: experts '{}' is not a list of integers", file, r + 2, row[c_experts]));
    const Routing& mine = routes[layer];
    std::vector<int> ours(mine.experts.begin() + std::size_t(token) * mine.k, mine.experts.begin() + std::size_t(token + 1) * mine.k);
    HfRouteAgreement& a = agree[{model, mode, layer}];
    a.model = model, a.mode = mode, a.layer = layer, ++a.tokens;
    a.same_order += ours == gpu;
    std::sort(ours.begin(), ours.end());
    std::sort(gpu.begin(), gpu.end());
    a.same_set += ours == gpu;
  }
  std::vector<HfRouteAgreement> out;
  for (auto& [key, a] : agree) out.push_back(a);
  return out;
}

std::string hf_route_csv(const std::vector<HfRouteAgreement>& rows) {
  std::string s = "model,mode,layer,tokens,same_set,same_order\n";
  for (const HfRouteAgreement& a : rows)
    s += fmt::format("{},{},{},{},{},{}\n", a.model, a.mode, a.layer, a.tokens, a.same_set, a.same_order);
  return s;
}

bool within(const HfComparison& c, const HfTolerance& t) {
  if (!(std::fabs(c.ratio() - 1) <= t.relative)) return false;
  if (c.tap == "logits" && !(std::fabs(c.top1_predicted - c.top1_observed) <= t.top1)) return false;
  return true;
}

std::string hf_comparison_csv(const std::vector<HfComparison>& rows) {
  std::string s = "model,mode,layer,tap,observed,predicted,ratio,kl_observed,kl_predicted,top1_observed,top1_predicted\n";
  for (const HfComparison& c : rows)
    s += fmt::format("{},{},{},{},{:.6e},{:.6e},{:.4f},{:.4e},{:.4e},{:.4f},{:.4f}\n", c.model, c.mode, c.layer, c.tap,
                     c.observed, c.predicted, c.ratio(), c.kl_observed, c.kl_predicted, c.top1_observed,
                     c.top1_predicted);
  return s;
}

}  // namespace lpsim
