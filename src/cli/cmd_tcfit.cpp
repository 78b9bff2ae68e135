// `lpsim tcfit DIR`: fits lpsim's tensor-core accumulation model to matrix products a GPU computed on the probe
// sets (hw/tc_probe.hpp): DIR/mma.safetensors from `lpsim-cuda probe`, DIR/torch.safetensors from
// scripts/cuda_torch_probe.py. Runs on any machine; writes DIR/../tcfit.csv (every engine, format and kind under
// the best model of its engine and format, and the runner-up models).
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.hpp"
#include "util/progress.hpp"
#include "lpsim/hw/tc_probe.hpp"
#include "util/atomic_file.hpp"
#include "util/split.hpp"

namespace lpsim::cli {

namespace {

struct Observed {
  std::string engine, format, kind, out;  // out: the dtype the engine returned (fp32, or the operand's)
  std::vector<float> d;
};

std::vector<Observed> read_outputs(const std::string& path, const std::string& engine_of_file) {
  std::vector<Observed> v;
  if (!std::filesystem::exists(path)) return v;
  for (const auto& [key, t] : read_safetensors(path)) {
    const std::vector<std::string> f = split(key, '.');  // format.kind[.engine.returned]
    Observed o{engine_of_file, f.at(0), f.at(1), "fp32", std::vector<float>(t.values.begin(), t.values.end())};
    if (f.size() == 4) o.engine = engine_of_file + "." + f[2], o.out = f[3];
    v.push_back(std::move(o));
  }
  return v;
}

}  // namespace

void add_tcfit_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>("results/cuda/raw");
  auto seed = std::make_shared<std::uint64_t>(0);
  auto tiles = std::make_shared<int>(16), k = std::make_shared<int>(512);
  CLI::App* cmd = app.add_subcommand("tcfit", "fit the tensor-core model to GPU probe outputs (issue 7)");
  cmd->add_option("dir", *dir, "folder with mma.safetensors / torch.safetensors (default results/cuda/raw)");
  cmd->add_option("--seed,-s", *seed, "probe seed the device used (default 0)");
  cmd->add_option("--tiles", *tiles, "tiles per probe set (default 16)");
  cmd->add_option("-k", *k, "dot-product length (default 512)");
  auto dump = std::make_shared<std::string>();
  cmd->add_option("--write-probes", *dump, "also write the regenerated probe inputs to this safetensors file");
  cmd->callback([=] {
    const std::string path = (std::filesystem::path(*dir).parent_path() / "tcfit.csv").string();
    check_writable(path);  // before the fits (minutes), not after
    const std::vector<ProbeSet> sets = make_probe_sets(*seed, *tiles, *k);  // the device's inputs, regenerated
    if (!dump->empty()) write_safetensors(*dump, probe_tensors(sets));
    auto find_set = [&](const std::string& format, const std::string& kind) -> const ProbeSet& {
      for (const auto& s : sets)
        if (s.format == format && s.kind == kind) return s;
      throw std::runtime_error(fmt::format("no probe set {}.{}", format, kind));
    };
    std::vector<Observed> obs = read_outputs(*dir + "/mma.safetensors", "mma.sync");
    for (auto& o : read_outputs(*dir + "/torch.safetensors", "torch")) obs.push_back(std::move(o));
    if (obs.empty()) throw std::runtime_error(fmt::format("{}: no mma.safetensors or torch.safetensors", *dir));
    std::map<std::pair<std::string, std::string>, std::vector<const Observed*>> groups;  // (engine, format)
    for (const auto& o : obs) groups[{o.engine, o.format}].push_back(&o);
    std::string csv = "engine,format,kind,returned,model,match,max_ulp,mean_ulp,rank\n";
    fmt::print("{:<22} {:<5} {:<7} {:>9} {:>8}  best model (all kinds together)\n", "engine", "fmt", "kind", "identical",
               "max ulp");
    Progress progress("tcfit", "engine/format groups", int(groups.size()));
    int fitted = 0;
    for (const auto& [id, members] : groups) {
      std::vector<const ProbeSet*> ps;
      std::vector<const std::vector<float>*> ds;
      for (const Observed* o : members) ps.push_back(&find_set(o->format, o->kind)), ds.push_back(&o->d);
      const std::string out = members.front()->out;
      std::vector<ProbeScore> ranked = fit_tensor_core(ps, ds, out);
      for (std::size_t r = 0; r < std::min<std::size_t>(ranked.size(), 3); ++r)
        csv += fmt::format("{},{},all,{},\"{}\",{:.6f},{},{:.4g},{}\n", id.first, id.second, out, ranked[r].model,
                           ranked[r].match, ranked[r].max_ulp, ranked[r].mean_ulp, r + 1);
      const AccumPolicy best = parse_policy(ranked.front().model);
      for (std::size_t i = 0; i < ps.size(); ++i) {
        const ProbeScore s = score_probe(*ps[i], *ds[i], best);
        csv += fmt::format("{},{},{},{},\"{}\",{:.6f},{},{:.4g},1\n", id.first, id.second, ps[i]->kind, out, s.model,
                           s.match, s.max_ulp, s.mean_ulp);
        fmt::print("{:<22} {:<5} {:<7} {:>8.2f}% {:>8}  {}\n", id.first, id.second, ps[i]->kind, 100 * s.match,
                   s.max_ulp, i == 0 ? s.model : "");
      }
      progress.step(++fitted);
    }
    write_atomically(path, csv);
    fmt::print("wrote {}\n", path);
  });
}

}  // namespace lpsim::cli
