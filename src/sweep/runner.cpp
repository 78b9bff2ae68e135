#include "lpsim/sweep/runner.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>

#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/diagnostic_columns.hpp"
#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/reference/memory_estimate.hpp"
#include "lpsim/reference/reference_ladder.hpp"
#include "util/atomic_file.hpp"
#include "lpsim/sweep/sweep_lock.hpp"
#include "util/csv_field.hpp"
#include "util/input_file.hpp"
#include "util/progress.hpp"
#include "util/read_text.hpp"
#include "sweep/summary.hpp"

#ifndef LPSIM_GIT_COMMIT
#define LPSIM_GIT_COMMIT "unknown"
#endif

namespace lpsim {

namespace fs = std::filesystem;

namespace {

// Units are written in chunks of consecutive units (one file per unit would mean tens of thousands of files for
// arXiv 2503.10251's study); the chunk size depends on the number of units only, so it is the same for every run.
int chunk_size(std::size_t units) { return std::max(1, int((units + 255) / 256)); }
int chunk_count(std::size_t units) { return int((units + chunk_size(units) - 1) / chunk_size(units)); }
std::string part_path(const std::string& dir, int chunk) { return fmt::format("{}/parts/chunk-{:06d}.csv", dir, chunk); }


// The columns that identify a row: unit, model axes, seed, batch, plan axes, plan.
std::string row_prefix_header(const SweepPlan& plan) {
  std::string h = "unit";
  for (const auto& a : plan.model_axes) h += "," + csv_field(a);
  h += ",seed,batch";
  for (const auto& a : plan.plan_axes) h += "," + csv_field(a);
  return h + ",precision";  // the whole plan: the plan-like axes joined with +
}

std::string row_prefix(const Unit& u, const PlanChoice& c) {
  std::string r = fmt::format("{}", u.index);
  for (const auto& v : u.model_values) r += "," + csv_field(v);
  r += fmt::format(",{},{}", u.seed, u.batch);
  for (const auto& v : c.values) r += "," + csv_field(v);
  return r + "," + csv_field(c.plan.name);
}

// tap_csv_header without its identity columns (model, plan, seed, batch), then the diagnostic columns.
std::string metric_header() {
  const std::string h = tap_csv_header();
  return h.substr(h.find("layer")) + diagnostic_header();
}


struct UnitResult {
  std::string rows;
  double smallest_error = INFINITY;
};

bool wanted(const std::string& rows, const ModelConfig& m, const TapError& t) {
  return rows == "all" || t.layer == m.depth || (t.tap == Tap::block && (rows == "block" || t.layer == m.depth - 1));
}

template <class R>
UnitResult measure_unit(const SweepConfig& s, const Unit& u, const SweepPlan& plan, const Weights<double>& w,
                        const ModelInput<double>& in, const Taps<R>& ref) {
  UnitResult out;
  std::vector<LayerDiagnostics> diag = s.diagnostics ? diagnose(u.model, w, in) : std::vector<LayerDiagnostics>{};
  if (s.residual_gains) add_residual_gains(diag, u.model, w, in);
  for (const PlanChoice& c : plan.plans) {
    EmulatedBackend be(c.plan, u.seed);
    std::vector<RangeEvents> events;
    const Taps<double> taps = emulated_taps(be, u.model, w, in, &events);
    for (const TapError& t : tap_errors(u.model, taps, ref, events)) {
      if (wanted(s.rows, u.model, t))
        out.rows += row_prefix(u, c) + "," + tap_metric_cells(c.plan, t) + diagnostic_cells(diag, u.model, c.plan, t.layer) + "\n";
      if (t.rel_fro > 0) out.smallest_error = std::min(out.smallest_error, t.rel_fro);
    }
  }
  return out;
}

UnitResult run_unit(const SweepConfig& s, const SweepPlan& plan, const Unit& u) {
  const Weights<double> w = make_weights(u.model, u.seed);
  const ModelInput<double> in = make_input(u.model, u.seed, u.batch);
  UnitResult result;
  // bits 0: MPFR at the precision set before the threads start (run_sweep)
  run_reference(s.reference, 0, false, u.model, w, in, u.seed, false,
                [&](const auto& ref) { result = measure_unit(s, u, plan, w, in, ref); });
  return result;
}

// The reference check on the first unit: MPFR against twice the bits, fp64 against MPFR, or the double-double
// reference's sampled MPFR check times the forward's gain.
nlohmann::json check_reference(const SweepConfig& s, const SweepPlan& plan) {
  const Unit& u = plan.units.front();
  const Weights<double> w = make_weights(u.model, u.seed);
  const ModelInput<double> in = make_input(u.model, u.seed, u.batch);
  double smallest = INFINITY;
  ReferenceCheck check = run_reference(s.reference, s.reference_bits, true, u.model, w, in, u.seed, false,
                                       [&](const auto& ref) { smallest = measure_unit(s, u, plan, w, in, ref).smallest_error; })
                             .check;
  check.adequate = check.fro_rel <= 0.01 * smallest;
  nlohmann::json out = {{"kind", check.kind}, {"bits", check.bits}, {"checked_against_bits", check.check_bits},
          {"unit", u.index}, {"max_componentwise_difference", check.max_rel}, {"frobenius_difference", check.fro_rel},
          {"smallest_measured_error", smallest}, {"adequate", check.adequate}};
  if (s.reference == "dd") out["sampled_local_error"] = check.local, out["forward_gain"] = check.amplification;
  return out;
}

std::string iso_now() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

nlohmann::json machine() {
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  std::string cpu;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.starts_with("model name")) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  return {{"hostname", host}, {"cpus", omp_get_num_procs()}, {"cpu", cpu}};
}


// What decides the parts' contents: the sweep file, every plan as built (a plan file may change under the same
// name), the base model's text, and the identity (size, time, hash of the first and last MiB) of every file the
// units read: weights, a model directory's config.json and shards, input files. Parts made under another
// definition are never mixed in: a checkpoint rewritten between two runs is refused, not resumed.
std::string definition(const SweepConfig& s, const SweepPlan& plan) {
  std::string d = s.text + "\n--- plans\n";
  for (const PlanChoice& c : plan.plans) d += describe(c.plan);
  d += "--- model " + s.model_file + "\n";
  if (fs::is_regular_file(s.model_file)) d += read_text(s.model_file, "model file");
  std::set<std::string> checkpoints, files;
  for (const Unit& u : plan.units) {
    if (!u.model.init.weights.empty()) checkpoints.insert(u.model.init.weights);
    if (!u.model.input.file.empty()) files.insert(u.model.input.file);
  }
  for (const std::string& c : checkpoints)
    for (const std::string& f : checkpoint_files(c)) files.insert(f);
  d += "--- files read\n";
  for (const std::string& f : files) d += f + ": " + file_identity(f) + "\n";
  return d;
}

void refuse_other_definition(const SweepConfig& s, const std::string& dir, const std::string& now) {
  const std::string was = read_text(dir + "/parts/definition.txt", "sweep definition");
  if (was == now) return;
  // Name the first line that differs: which file or plan changed.
  std::istringstream a(was), b(now);
  std::string la, lb;
  while (std::getline(a, la) && std::getline(b, lb) && la == lb) {
  }
  throw ConfigError(fmt::format("{}: the results in {}/parts were made by a different definition of sweep '{}' "
                                "(the sweep file, a plan, the model or a file it reads changed; first difference: "
                                "'{}' now '{}'); delete {}/parts to start over, or give the sweep another name",
                                s.file, dir, s.name, la.substr(0, 200), lb.substr(0, 200), dir));
}

}  // namespace

void assemble_sweep(const SweepConfig& s, const SweepPlan& plan, const std::string& dir) {
  // Parts made under another definition (a weights file rewritten after a shard ran) are never merged.
  if (fs::exists(dir + "/parts/definition.txt")) refuse_other_definition(s, dir, definition(s, plan));
  const int chunks = chunk_count(plan.units.size());
  std::string missing;
  int count = 0;
  for (int c = 0; c < chunks; ++c)
    if (!fs::exists(part_path(dir, c)) && count++ < 5) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", c);
  if (count)
    throw ConfigError(fmt::format("{}: {} of {} chunks of units have no results yet (chunks {}{}); run the missing "
                                  "shards first", dir, count, chunks, missing, count > 5 ? ", ..." : ""));
  std::string taps = row_prefix_header(plan) + "," + metric_header() + "\n";
  for (int c = 0; c < chunks; ++c) {
    std::ifstream in(part_path(dir, c));
    std::string line;
    std::getline(in, line);  // the part's header
    for (; std::getline(in, line);) taps += line + "\n";
  }
  write_atomically(dir + "/taps.csv", taps);
  write_atomically(dir + "/summary.csv", summarize(s, plan, taps));
  // A sharded sweep's manifest lists the shards' own (a single run overwrites this with its manifest).
  nlohmann::json shards = nlohmann::json::array();
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with("manifest-shard")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f);
    shards.push_back(nlohmann::json::parse(in, nullptr, false));
  }
  if (!shards.empty())
    write_atomically(dir + "/manifest.json",
                     nlohmann::json{{"lpsim_version", "0.1.0"}, {"sweep_file", s.file}, {"sweep_text", s.text},
                                    {"units", plan.units.size()}, {"shards", shards}}.dump(2) + "\n");
  if (!shards.empty())
    write_atomically(dir + "/run.json",
                     nlohmann::json{{"git_commit", LPSIM_GIT_COMMIT}, {"merged", iso_now()}}.dump(2) + "\n");
}

namespace {

// Refuses, before any work, a sweep whose units cannot fit side by side: one unit per thread (each its weights,
// its emulated forward under the largest plan and its reference), the expanded grid itself, and the first unit's
// reference check at twice the bits, which runs alone.
void check_sweep_memory(const SweepConfig& s, const SweepPlan& plan, int threads) {
  if (plan.units.empty() || plan.plans.empty()) return;
  auto need = [&](const Unit& u, const PrecisionPlan& p, bool check) {
    return study_memory(u.model, p, s.reference, s.reference_bits, check, 1);
  };
  const Unit* largest = &plan.units.front();
  MemoryEstimate unit = need(*largest, plan.plans.front().plan, false);
  for (const Unit& u : plan.units)  // each unit's estimate once
    if (const MemoryEstimate m = need(u, plan.plans.front().plan, false); m.total() > unit.total()) largest = &u, unit = m;
  for (const PlanChoice& c : plan.plans)
    if (const MemoryEstimate m = need(*largest, c.plan, false); m.total() > unit.total()) unit = m;
  const int concurrent = std::max(1, std::min<int>(threads, chunk_count(plan.units.size())));
  MemoryEstimate all = unit;
  all.parameters *= concurrent, all.emulated *= concurrent, all.reference *= concurrent;
  all.baseline += 2048.0 * double(plan.units.size());  // the expanded units and their rows
  check_memory(fmt::format("sweep '{}' ({} units, {} plans, {} at a time; its largest unit {})", s.name,
                           plan.units.size(), plan.plans.size(), concurrent, largest->model.name),
               all, "use --threads 1, fewer tokens or a smaller model, or reference = \"dd\" or \"fp64\"");
  check_memory(fmt::format("sweep '{}': the reference check of its first unit", s.name),
               need(plan.units.front(), plan.plans.front().plan, true), "use reference = \"dd\" or \"fp64\"");
}

void check_parts_belong(const SweepConfig& s, const SweepPlan& plan, const std::string& dir) {
  const std::string path = dir + "/parts/definition.txt", now = definition(s, plan);
  bool any_part = false;
  for (const auto& e : fs::directory_iterator(dir + "/parts"))
    any_part = any_part || e.path().filename().string().starts_with("chunk");
  if (fs::exists(path)) {
    refuse_other_definition(s, dir, now);
  } else if (any_part) {
    fmt::print(stderr, "sweep: {}/parts has results but no definition.txt (an older lpsim); taking them as this sweep's\n", dir);
  }
  write_atomically(path, now);
}

nlohmann::json previous_reference_check(const std::string& dir) {
  try {
    const auto m = nlohmann::json::parse(read_text(dir + "/manifest.json", "manifest"));
    if (m.contains("reference") && m["reference"].contains("check")) return m["reference"]["check"];
  } catch (const std::exception&) {
  }
  return nullptr;
}

}  // namespace

SweepOutcome run_sweep(const SweepConfig& s, const SweepOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string started = iso_now();
  const SweepPlan plan = expand(s);  // every model and plan is built and checked before any work
  check_sweep_memory(s, plan, o.threads > 0 ? o.threads : omp_get_max_threads());
  SweepOutcome out;
  out.units = int(plan.units.size());
  out.directory = o.results_root + "/" + s.name;
  fs::create_directories(out.directory + "/parts");
  const SweepLock lock(out.directory + "/parts", o.shard, o.shards);  // before anything in parts/ is read or written
  remove_stale_temporaries(out.directory), remove_stale_temporaries(out.directory + "/parts");
  if (o.threads > 0) omp_set_num_threads(o.threads);
  check_parts_belong(s, plan, out.directory);

  const int size = chunk_size(plan.units.size()), chunks = chunk_count(plan.units.size());
  std::vector<int> todo;
  int todo_units = 0;
  for (int c = 0; c < chunks; ++c) {
    if (c % o.shards != o.shard) continue;
    const int units = std::min<int>(size, int(plan.units.size()) - c * size);
    if (fs::exists(part_path(out.directory, c))) {
      out.skipped += units;
    } else {
      todo.push_back(c);
      todo_units += units;
    }
  }

  // Nothing left to run: keep what was measured, unless the run that wrote the parts was killed before its manifest
  // (found by tests/sweep/kill_resume.sh); then measure it again (one unit's check).
  nlohmann::json reference_check;
  if (s.reference != "fp64" && todo.empty()) reference_check = previous_reference_check(out.directory);
  if (reference_check.is_null()) reference_check = check_reference(s, plan);
  if (reference_check.is_object() && !reference_check.value("adequate", true))
    fmt::print(stderr, "sweep: warning: the {} reference is not adequate for these plans (its error {:.2e} is not "
                       "below 1% of the smallest measured error {:.2e}); use reference = \"mpfr\" or more ref_bits\n",
               s.reference, reference_check["frobenius_difference"].get<double>(),
               reference_check["smallest_measured_error"].get<double>());
  set_reference_bits(s.reference_bits);  // once, before the threads: Boost keeps the precision process-wide

  const std::string header = row_prefix_header(plan) + "," + metric_header() + "\n";
  Progress progress("sweep", "units", todo_units, o.progress);
  std::atomic<int> done{0};
  std::string error;
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < int(todo.size()); ++i) {
    const int c = todo[i];
    try {
      std::string rows = header;
      for (int u = c * size; u < std::min<int>((c + 1) * size, int(plan.units.size())); ++u) {
        rows += run_unit(s, plan, plan.units[u]).rows;
        const int n = ++done;
#pragma omp critical(sweep_progress)
        progress.step(n);
      }
      write_atomically(part_path(out.directory, c), rows);
    } catch (const std::exception& e) {
#pragma omp critical(sweep_error)
      if (error.empty()) error = fmt::format("chunk {}: {}", c, e.what());
    }
  }
  if (!error.empty()) throw std::runtime_error(error);
  out.ran = todo_units;

  bool all = true;
  for (int c = 0; c < chunks; ++c) all = all && fs::exists(part_path(out.directory, c));
  if (all && o.assemble) {
    assemble_sweep(s, plan, out.directory);
    out.complete = true;
  }
  nlohmann::json plans = nlohmann::json::array();
  for (const PlanChoice& c : plan.plans) plans.push_back({{"name", c.plan.name}, {"description", describe(c.plan)}});
  // manifest.json says what the results are and is the same on every run of the same sweep (it may be tracked in
  // git); run.json says how this run went (machine, commit, times) and differs every time.
  const nlohmann::json manifest = {
      {"lpsim_version", "0.1.0"},
      {"sweep_file", s.file},
      {"sweep_text", s.text},
      {"model_file", s.model_file},
      {"plans", plans},
      {"reference", {{"kind", s.reference}, {"bits", s.reference == "fp64" ? 53 : s.reference == "dd" ? 106 : s.reference_bits}, {"check", reference_check}}},
      {"shard", fmt::format("{}/{}", o.shard, o.shards)},
      {"units", out.units},
      {"complete", out.complete}};
  const nlohmann::json run = {
      {"git_commit", LPSIM_GIT_COMMIT},
      {"machine", machine()},
      {"threads", omp_get_max_threads()},
      {"units_run_now", out.ran},
      {"units_resumed", out.skipped},
      {"start", started},
      {"end", iso_now()},
      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
  const std::string suffix = o.shards == 1 ? "" : fmt::format("-shard{}of{}", o.shard, o.shards);
  write_atomically(out.directory + "/manifest" + suffix + ".json", manifest.dump(2) + "\n");
  write_atomically(out.directory + "/run" + suffix + ".json", run.dump(2) + "\n");
  return out;
}

}  // namespace lpsim
