#include "sweep/summary.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "lpsim/stats/csv_table.hpp"
#include "util/csv_field.hpp"
#include "lpsim/stats/regression.hpp"

namespace lpsim {

namespace {

struct Group {
  std::vector<std::string> key;  // model axis values, seed, plan axis values, plan
  double u = 0;
  std::vector<double> block, attn, ffn;
  std::vector<double> logits, kl, top1;   // the logits rows (models with an LM head)
  std::vector<double> flip, flipped, kept;  // the block rows of mixture-of-experts layers (route columns)
  std::vector<std::vector<double>> diag;  // per diagnostic column, its values on block rows (one per layer and batch)
  struct Final {
    int layer;
    double rel_fro, mean_rel, median_rel;
  };
  std::vector<Final> block_rows;  // the final block is the group's deepest layer (depth can be an axis)
  std::map<std::string, int> batches;
  int layers = 0;
  long nonfinite = 0, overflows = 0, saturations = 0;
};

// Non-finite errors sort last (NaN counts as +inf): a tail statistic over them is infinite, never garbage.
std::vector<double> sortable(std::vector<double> v) {
  for (double& x : v)
    if (x != x) x = INFINITY;
  return v;
}

}  // namespace

std::string summarize(const SweepConfig&, const SweepPlan& plan, const std::string& taps_csv) {
  const CsvTable t = parse_csv(taps_csv, "taps.csv");
  std::vector<int> key_columns;
  for (const auto& a : plan.model_axes) key_columns.push_back(t.column(a));
  key_columns.push_back(t.column("seed"));
  for (const auto& a : plan.plan_axes) key_columns.push_back(t.column(a));
  key_columns.push_back(t.column("precision"));
  const int c_batch = t.column("batch"), c_layer = t.column("layer"), c_tap = t.column("tap"), c_u = t.column("u");
  const std::vector<double> mean_rel = t.numbers("mean_rel"), median_rel = t.numbers("median_rel");
  static const char* const diag_columns[] = {"predictor", "predictor_eps", "kappa_softmax", "kappa_softmax_power",
                                             "kappa_score", "kappa_v", "kappa_eff", "c_ln", "theta_max",
                                             "qk_cond", "logit_max", "logit_bound"};
  std::vector<std::vector<double>> diag_values;
  for (const char* c : diag_columns) diag_values.push_back(t.numbers(c));
  const std::vector<double> rel = t.numbers("rel_fro"), nonfinite = t.numbers("nonfinite"),
                            overflows = t.numbers("overflows"), saturations = t.numbers("saturations");
  // Files written before the logits columns existed have none: nan then.
  const std::vector<double> kl = t.has("kl_mean") ? t.numbers("kl_mean") : std::vector<double>(t.rows.size(), NAN),
                            top1 = t.has("top1") ? t.numbers("top1") : std::vector<double>(t.rows.size(), NAN);
  auto column_or_nan = [&](const char* c) { return t.has(c) ? t.numbers(c) : std::vector<double>(t.rows.size(), NAN); };
  const std::vector<double> flip = column_or_nan("route_flip"), flipped = column_or_nan("flipped_rel_fro"),
                            kept = column_or_nan("kept_rel_fro");
  std::vector<Group> groups;
  std::map<std::vector<std::string>, std::size_t> index;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    std::vector<std::string> key;
    for (int c : key_columns) key.push_back(row[c]);
    auto [it, fresh] = index.emplace(key, groups.size());
    if (fresh) {
      groups.emplace_back();
      groups.back().key = key;
    }
    Group& g = groups[it->second];
    g.u = std::stod(row[c_u]);
    g.batches[row[c_batch]] = 1;
    const int layer = std::stoi(row[c_layer]);
    const std::string& tap = row[c_tap];
    if (tap == "logits") g.logits.push_back(rel[r]), g.kl.push_back(kl[r]), g.top1.push_back(top1[r]);
    if (tap == "final" || tap == "logits") continue;  // after the blocks (layer = depth)
    g.layers = std::max(g.layers, layer + 1);
    if (tap == "block") g.block.push_back(rel[r]);
    if (tap == "block") {
      g.block_rows.push_back({layer, rel[r], mean_rel[r], median_rel[r]});
      g.diag.resize(diag_values.size());
      for (std::size_t k = 0; k < diag_values.size(); ++k) g.diag[k].push_back(diag_values[k][r]);
    }
    if (tap == "block" && flip[r] == flip[r]) g.flip.push_back(flip[r]), g.flipped.push_back(flipped[r]), g.kept.push_back(kept[r]);
    if (tap == "attn") g.attn.push_back(rel[r]);
    if (tap == "ffn") g.ffn.push_back(rel[r]);
    g.nonfinite += long(nonfinite[r]), g.overflows += long(overflows[r]), g.saturations += long(saturations[r]);
  }
  std::string out;
  for (const auto& a : plan.model_axes) out += a + ",";
  out += "seed,";
  for (const auto& a : plan.plan_axes) out += a + ",";
  out += "precision,u,batches,layers,r_block_p95,r_block_max,r_block_median,r_block_mean,r_final_mean,r_attn_p95,r_ffn_p95,"
         "final_mean_rel,final_median_rel,nonfinite,overflows,saturations";
  for (const char* c : diag_columns) out += fmt::format(",{}_p95", c);
  out += ",r_logits_mean,kl_mean,top1_mean,route_flip_mean,route_flip_max,flipped_rel_fro_mean,kept_rel_fro_mean\n";
  for (const Group& g : groups) {
    std::string line;
    for (const auto& k : g.key) line += csv_field(k) + ",";
    const auto block = sortable(g.block);
    auto average = [](const std::vector<double>& v) {
      double m = 0;
      for (double x : sortable(v)) m += x / double(v.size());
      return v.empty() ? NAN : m;
    };
    std::vector<double> final_block, final_mean_rel, final_median_rel;
    for (const auto& f : g.block_rows)
      if (f.layer == g.layers - 1)
        final_block.push_back(f.rel_fro), final_mean_rel.push_back(f.mean_rel), final_median_rel.push_back(f.median_rel);
    const double mean = average(g.block), final_mean = average(final_block);
    out += line + fmt::format("{},{},{},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{},{},{}\n", g.u,
                              g.batches.size(), g.layers, quantile(block, 0.95),
                              block.empty() ? NAN : *std::max_element(block.begin(), block.end()), quantile(block, 0.5), mean, final_mean,
                              quantile(sortable(g.attn), 0.95), quantile(sortable(g.ffn), 0.95),
                              average(final_mean_rel), average(final_median_rel), g.nonfinite,
                              g.overflows, g.saturations);
    out.pop_back();  // the diagnostics' 95th percentiles over layers and batches follow
    for (std::size_t k = 0; k < std::size(diag_columns); ++k)
      out += fmt::format(",{:.6e}", k < g.diag.size() && std::any_of(g.diag[k].begin(), g.diag[k].end(), [](double v) {
                                      return v == v;  // all NaN: diagnostics were off
                                    })
                                        ? quantile(sortable(g.diag[k]), 0.95)
                                        : NAN);
    out += fmt::format(",{:.9e},{:.9e},{:.9e}", average(g.logits), average(g.kl), average(g.top1));
    // Router flips over the MoE layers' block rows (nan for a dense model; a group without flips has no flipped rows).
    auto present = [](const std::vector<double>& v) {
      double sum = 0;
      int n = 0;
      for (double x : v)
        if (x == x) sum += x, ++n;
      return n ? sum / n : NAN;
    };
    out += fmt::format(",{:.9e},{:.9e},{:.9e},{:.9e}", present(g.flip),
                       g.flip.empty() ? NAN : *std::max_element(g.flip.begin(), g.flip.end()), present(g.flipped),
                       present(g.kept));
    out += "\n";
  }
  return out;
}

}  // namespace lpsim
