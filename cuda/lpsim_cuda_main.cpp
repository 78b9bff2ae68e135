// lpsim-cuda: the GPU side of issue 7's validation (scripts/cuda_validate.sh runs it on the H100).
//   lpsim-cuda probe   --out DIR   tensor-core probes: inputs (probes.safetensors) and mma.sync outputs (mma.safetensors)
//   lpsim-cuda forward --out DIR -m MODEL... -p PLAN...   deterministic native forwards, compared bit for bit with
//                      lpsim's emulation here and stored (native.safetensors) for the CPU-only check in CI
//   lpsim-cuda gemm    --out DIR   the emulated GEMM on the GPU against the CPU kernels (device_gemm_cases.hpp),
//                      digests in emulated_gemm.csv; with --bench, GFLOP/s of every policy preset
//   lpsim-cuda emulate --out DIR -m MODEL... -p PLAN... [--tokens N] [--check]   the emulated forward with its
//                      GEMMs on the GPU: time per forward, and with --check the CPU-only forward's time and bits
//   lpsim-cuda run     lpsim's `run` (same options, same table and CSV) with the emulated forward on the GPU
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli/commands.hpp"
#include "conversions.hpp"
#include "emulated_attention.hpp"
#include "emulated_gemm.hpp"
#include "lpsim/util/keep_freed_memory.hpp"
#include "lpsim/hw/device_gemm_cases.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/hw/native_runs.hpp"
#include "lpsim/hw/tc_probe.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "mma_chain.hpp"
#include "native_adapter.hpp"

namespace lpsim {
namespace {

// Small integers make every sum exact in any accumulator: a wrong fragment layout shows as a wrong integer.
void check_mma_layout(const std::string& format) {
  ProbeSet s{format, "integers", 4, 64, {}, {}};
  for (std::size_t i = 0; i < 4 * 16 * 64; ++i) s.a.push_back(float(int((i * 7919) % 7) - 3));
  for (std::size_t i = 0; i < 4 * 64 * 8; ++i) s.b.push_back(float(int((i * 104729) % 5) - 2));
  const auto d = cuda::mma_chain(format, s.tiles, s.k, s.a, s.b);
  const auto exact = emulate_probe(s, parse_policy(fmt::format("in={},acc=exact,out=fp32", format)));
  for (std::size_t i = 0; i < d.size(); ++i)
    if (d[i] != exact[i])
      throw std::runtime_error(fmt::format("mma {} layout check: output {} is {} instead of {}", format, i, d[i], exact[i]));
}

void probe(const std::string& dir, std::uint64_t seed, int tiles, int k) {
  for (const char* f : {"fp16", "bf16", "e4m3", "e5m2"}) check_mma_layout(f);
  fmt::print("mma.sync fragment layouts: exact on integer probes (fp16, bf16, e4m3, e5m2)\n");
  const auto sets = make_probe_sets(seed, tiles, k);
  std::map<std::string, Tensor> outputs;
  for (const auto& s : sets) {
    const auto d = cuda::mma_chain(s.format, s.tiles, s.k, s.a, s.b);
    outputs[s.key()] = Tensor{"F32", {s.tiles, probe_rows, probe_cols}, std::vector<double>(d.begin(), d.end())};
  }
  write_safetensors(dir + "/probes.safetensors", probe_tensors(sets));
  write_safetensors(dir + "/mma.safetensors", outputs);
  fmt::print("wrote {} probe sets ({} tiles, K = {}) and their mma.sync outputs to {}\n", sets.size(), tiles, k, dir);
}

int compare_forwards(const std::string& dir, const std::vector<std::string>& models, const std::vector<std::string>& plans,
            std::uint64_t seed) {
  std::vector<NativeRun> runs;
  int failures = 0;
  fmt::print("{:<24} {:<16} {:>9} {:>11} {:>8}  ulp histogram 0/1/2-3/4-15/16-255/256+\n", "model", "plan", "elements",
             "identical", "max ulp");
  for (const auto& model : models)
    for (const auto& plan_name : plans) {
      const ModelConfig cfg = load_model_config(model);
      const Weights<double> w = make_weights(cfg, seed);
      const ModelInput<double> in = make_input(cfg, seed);
      NativeRun run{model, plan_name, seed, cfg.tokens, cfg.width,
                    cuda::native_forward(cuda::to_native(cfg, w, in), cuda::to_native(load_plan(plan_name)))};
      const auto emulated = emulate_native_run(run);
      BitMatch total;
      for (std::size_t t = 0; t < run.taps.size(); ++t) total.merge(compare_bits(run.taps[t], emulated[t]));
      failures += total.identical != total.elements;
      fmt::print("{:<24} {:<16} {:>9} {:>10.6f}% {:>8}  {}\n", model, plan_name, total.elements, 100 * total.rate(),
                 total.max_ulp, fmt::join(total.histogram, "/"));
      runs.push_back(std::move(run));
    }
  write_safetensors(dir + "/native.safetensors", native_tensors(runs));
  // The digests CI checks the emulation against (tests/hw/native_bits_test.cpp).
  std::string csv = "model,plan,seed,layer,tap,elements,fnv1a64\n";
  for (const auto& r : runs)
    for (std::size_t t = 0; t < r.taps.size(); ++t)
      csv += fmt::format("{},{},{},{},{},{},{:016x}\n", r.model_file, r.plan, r.seed, t / 4, tap_name(all_taps[t % 4]),
                         r.taps[t].size(), tap_digest(std::span<const float>(r.taps[t])));
  std::ofstream(dir + "/native_bits.csv") << csv;
  fmt::print("wrote {}/native.safetensors and native_bits.csv\n", dir);
  return failures ? 1 : 0;
}

// Weights and input of each model under lpsim's own names (F32) and its architecture as JSON, for
// scripts/cuda_torch_forward.py: <dir>/export/<model stem>.safetensors and .json.
void export_models(const std::string& dir, const std::vector<std::string>& models, std::uint64_t seed) {
  std::filesystem::create_directories(dir + "/export");
  for (const auto& model : models) {
    const ModelConfig c = load_model_config(model);
    const Weights<double> w = make_weights(c, seed);
    const ModelInput<double> in = make_input(c, seed);
    std::map<std::string, Tensor> t;
    auto put = [&](const std::string& name, std::span<const double> v, std::vector<std::int64_t> shape) {
      if (!v.empty()) t[name] = Tensor{"F32", std::move(shape), {v.begin(), v.end()}};
    };
    auto mat = [&](const std::string& name, const Matrix<double>& m) { put(name, m.data, {m.rows, m.cols}); };
    mat("patch_w", w.patch_w), put("patch_b", w.patch_b, {c.width}), put("cls", w.cls, {c.width});
    mat("pos", w.pos), mat("wte", w.wte), mat("input.x", in.x);
    put("input.ids", std::vector<double>(in.ids.begin(), in.ids.end()), {std::int64_t(in.ids.size())});
    for (int l = 0; l < c.depth; ++l) {
      const auto& L = w.layers[l];
      const std::string p = fmt::format("layers.{}.", l);
      mat(p + "wq", L.wq), mat(p + "wk", L.wk), mat(p + "wv", L.wv), mat(p + "wo", L.wo), mat(p + "w1", L.w1);
      mat(p + "w2", L.w2);
      put(p + "bq", L.bq, {c.width}), put(p + "bk", L.bk, {c.width}), put(p + "bv", L.bv, {c.width});
      put(p + "bo", L.bo, {c.width}), put(p + "b1", L.b1, {c.ffn}), put(p + "b2", L.b2, {c.width});
      put(p + "g1", L.norm1.gamma, {c.width}), put(p + "beta1", L.norm1.beta, {c.width});
      put(p + "g2", L.norm2.gamma, {c.width}), put(p + "beta2", L.norm2.beta, {c.width});
    }
    const std::string stem = dir + "/export/" + std::filesystem::path(model).stem().string();
    write_safetensors(stem + ".safetensors", t);
    std::ofstream(stem + ".json") << fmt::format(
        R"({{"model_file": "{}", "seed": {}, "width": {}, "heads": {}, "ffn": {}, "depth": {}, "tokens": {}, )"
        R"("norm": "{}", "position": "{}", "activation": "{}", "eps": {:.17g}, "causal": {}, "embedding": "{}", )"
        R"("class_token": {}}})",
        model, seed, c.width, c.heads, c.ffn, c.depth, c.tokens, norm_name(c.norm),
        position_name(c.position), activation_name(c.activation), c.norm_eps,
        c.causal ? "true" : "false", embedding_name(c.embedding), c.class_token ? "true" : "false");
  }
  fmt::print("exported {} models to {}/export\n", models.size(), dir);
}

template <class F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool same_values(std::span<const double> x, std::span<const double> y) {
  return value_digest(x) == value_digest(y) && x.size() == y.size();
}

int check_gemms(const std::string& dir) {
  cuda::EmulatedGemm device;
  std::string csv = "policy,m,n,k,seed,operands,kernel,elements,fnv1a64\n";
  int failures = 0, cases = 0;
  double t_gpu = 0, t_cpu = 0;
  for (const DeviceGemmCase& c : device_gemm_cases()) {
    const AccumPolicy p = parse_policy(c.policy);
    const GemmOperands o = make_operands(c, p);
    fmt::print(stderr, "case {}: {} {}x{}x{}{}\n", cases, c.policy, c.m, c.n, c.k,
               c.extreme ? " extreme" : "");  // names a case that crashes the GPU
    std::vector<double> gpu(std::size_t(c.m) * c.n, -1.0), cpu(gpu.size(), -2.0);
    GemmOptions options;
    options.sr = case_stream(c);
    options.device = &device;
    t_gpu += seconds([&] { gemm(p, c.m, c.n, c.k, o.a, o.b, gpu, options); });
    options.device = nullptr;
    t_cpu += seconds([&] { gemm(p, c.m, c.n, c.k, o.a, o.b, cpu, options); });
    const bool same = same_values(gpu, cpu);
    failures += !same;
    ++cases;
    const auto kernel = cuda::device_kernel(p);
    if (!same) fmt::print("DIFFERENT: {} {}x{}x{} ({})\n", c.policy, c.m, c.n, c.k, cuda::kernel_name(kernel));
    csv += fmt::format("\"{}\",{},{},{},{},{},{},{},{:016x}\n", c.policy, c.m, c.n, c.k, c.seed,
                       c.extreme ? "extreme" : "normal", cuda::kernel_name(kernel), gpu.size(), value_digest(gpu));
  }
  std::ofstream(dir + "/emulated_gemm.csv") << csv;
  fmt::print("emulated GEMM on the GPU: {} of {} cases bit-identical to the CPU kernels ({:.2f} s GPU, {:.2f} s CPU); "
             "wrote {}/emulated_gemm.csv\n", cases - failures, cases, t_gpu, t_cpu, dir);
  return failures ? 1 : 0;
}

// GFLOP/s of the GPU's emulated GEMM (transfers included) for every policy preset it runs, at m = n = k = size.
void bench_gemms(int size) {
  cuda::EmulatedGemm device;
  fmt::print("emulated GEMM on the GPU at {0}x{0}x{0}, operands in double on the host, transfers included\n", size);
  for (const auto& preset : policy_presets()) {
    const AccumPolicy p = parse_policy(preset.name);
    const auto kernel = cuda::device_kernel(p);
    if (kernel == cuda::DeviceKernel::none) continue;
    const GemmOperands o = make_operands({preset.name, size, size, size, 7}, p);
    std::vector<double> c(std::size_t(size) * size);
    GemmOptions options;
    options.device = &device;
    options.check_inputs = false;
    gemm(p, size, size, size, o.a, o.b, c, options);  // warm-up: context, buffers
    double best = 1e30;
    for (int r = 0; r < 3; ++r) best = std::min(best, seconds([&] { gemm(p, size, size, size, o.a, o.b, c, options); }));
    fmt::print("  {:<20} {:<10} {:9.1f} GFLOP/s  ({:.4f} s)\n", preset.name, cuda::kernel_name(kernel),
               2.0 * size * size * size / best * 1e-9, best);
  }
}

// The emulated forward with its GEMMs on the GPU; with check, also the CPU-only forward, compared tap by tap.
int emulate(const std::string& dir, const std::vector<std::string>& models, const std::vector<std::string>& plans,
            std::uint64_t seed, int tokens, bool check, int reps, bool heads, bool layers, bool ffn, double margin,
            bool phases) {
  int failures = 0;
  std::string csv = "model,plan,seed,tokens,layer,tap,elements,fnv1a64\n";
  for (const auto& model : models) {
    ModelConfig cfg = load_model_config(model);
    if (tokens > 0) cfg.tokens = tokens;
    const Weights<double> w = make_weights(cfg, seed);
    const ModelInput<double> in = make_input(cfg, seed);
    for (const auto& plan_name : plans) {
      const PrecisionPlan plan = load_plan(plan_name);
      cuda::EmulatedGemm device;
      cuda::EmulatedAttention attention;
      EmulatedBackend gpu(plan, seed);
      gpu.use_gemm_device(&device);
      if (heads) gpu.use_attention_device(&attention);
      if (heads && layers) gpu.use_attention_block_device(&device);
      if (ffn) gpu.use_feed_forward_device(&device);
      if (margin > 0) attention.set_exp_margin(margin), device.set_exp_margin(margin);
      // emulated_taps, as sweeps run a plan (its parameter format included). The first forward rounds the weights
      // and gives the taps; later ones reuse the rounded weights, as a sweep's batches do.
      Taps<double> taps;
      const double t_first = seconds([&] { taps = emulated_taps(gpu, cfg, w, in); });
      const RangeEvents first_events = gpu.events();
      std::vector<double> t_gpu = {t_first};
      gpu.time_ops(phases && reps > 1);  // the forwards after the first
      for (int r = 1; r < reps; ++r) t_gpu.push_back(seconds([&] { emulated_taps(gpu, cfg, w, in); }));
      if (reps > 1) t_gpu.erase(t_gpu.begin());
      for (std::size_t t = 0; t < taps.size(); ++t) {
        const TapPosition at = tap_at(cfg, t);
        csv += fmt::format("{},{},{},{},{},{},{},{:016x}\n", cfg.name, plan.name, seed, cfg.tokens, at.layer,
                           tap_name(at.tap), taps[t].size(), value_digest(taps[t].data));
      }
      std::sort(t_gpu.begin(), t_gpu.end());
      std::string line = fmt::format("{:<12} {:>5} tokens  {:<20} GPU GEMMs {:8.3f} s/forward (first {:.3f} s, median of {} after; {} GEMMs on the GPU taking "
                                     "{:.3f} s per forward, {:.3f} s of it copies)",
                                     cfg.name, cfg.tokens, plan.name, t_gpu[t_gpu.size() / 2], t_first, t_gpu.size(),
                                     device.calls(), device.seconds() / reps, device.copy_seconds() / reps);
      if (device.blocks())
        line += fmt::format("; {} feed-forward blocks on the GPU, {} activation values from the host", device.blocks(),
                            device.host_activations());
      if (device.attention_layers())
        line += fmt::format("; {} attention layers on the GPU, {} exp values from the host", device.attention_layers(),
                            device.host_exps());
      if (attention.calls())
        line += fmt::format("; {} heads on the GPU taking {:.3f} s per forward, {} exp values from the host",
                            attention.calls(), attention.seconds() / reps, attention.host_exps());
      if (check) {
        EmulatedBackend cpu(plan, seed);
        Taps<double> cpu_taps;
        const double t_cpu = seconds([&] { cpu_taps = emulated_taps(cpu, cfg, w, in); });
        std::size_t same = 0;
        for (std::size_t t = 0; t < taps.size(); ++t)
          same += t < cpu_taps.size() && same_values(taps[t].data, cpu_taps[t].data);
        // Range events of the first forward against the CPU's one forward (later forwards add to the totals).
        const RangeEvents ge = first_events, ce = cpu.events();
        const bool same_events = ge.overflows == ce.overflows && ge.saturations == ce.saturations;
        failures += same != taps.size() || !same_events;
        line += fmt::format("; CPU-only first forward {:8.3f} s ({:.1f}x); taps identical {}/{}; range events {} "
                            "(overflows {}/{}, saturations {}/{})", t_cpu, t_cpu / t_first, same, taps.size(),
                            same_events ? "identical" : "DIFFERENT", ge.overflows, ce.overflows, ge.saturations,
                            ce.saturations);
      }
      fmt::print("{}\n", line);
      if (phases && reps > 1) {  // per forward after the first; heads and attention layers on the device are charged to score
        std::vector<std::pair<double, Op>> by_op;
        for (Op op : all_ops) by_op.push_back({gpu.op_seconds()[static_cast<int>(op)] / (reps - 1), op});
        std::sort(by_op.rbegin(), by_op.rend());
        std::string split = "  seconds per forward by operation class:";
        for (const auto& [t, op] : by_op)
          if (t > 0) split += fmt::format(" {} {:.3f}", op_name(op), t);
        fmt::print("{}\n", split);
      }
      std::fflush(stdout);
    }
  }
  std::ofstream(dir + "/emulated_forward.csv", std::ios::app) << csv;
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace lpsim

int main(int argc, char** argv) {
  lpsim::keep_freed_memory();
  CLI::App app{"lpsim-cuda: native GPU runs that validate lpsim's emulation"};
  app.require_subcommand(1);
  std::string dir = ".";
  std::uint64_t seed = 0;
  int tiles = 16, k = 512;
  std::vector<std::string> models, plans = {"autocast-fp16", "autocast-bf16", "pure-fp16", "pure-bf16"};
  auto* p = app.add_subcommand("probe", "tensor-core probes through mma.sync");
  p->add_option("--out,-o", dir, "output folder");
  p->add_option("--seed,-s", seed);
  p->add_option("--tiles", tiles, "16 x 8 output tiles per probe set");
  p->add_option("-k", k, "dot-product length (a multiple of 32)");
  auto* f = app.add_subcommand("forward", "deterministic native forwards against the emulation");
  f->add_option("--out,-o", dir, "output folder");
  f->add_option("--model,-m", models, "model files")->required();
  f->add_option("--plan,-p", plans, "plans (presets or files) the native kernels can run");
  f->add_option("--seed,-s", seed);
  auto* x = app.add_subcommand("export", "weights and inputs for PyTorch's native forward (scripts/cuda_torch_forward.py)");
  x->add_option("--out,-o", dir, "output folder");
  x->add_option("--model,-m", models, "model files")->required();
  x->add_option("--seed,-s", seed);
  auto* g = app.add_subcommand("gemm", "the emulated GEMM on the GPU against the CPU kernels");
  g->add_option("--out,-o", dir, "output folder");
  int bench_size = 0;
  g->add_option("--bench", bench_size, "also time every policy preset at this size (m = n = k)");
  auto* e = app.add_subcommand("emulate", "the emulated forward with its GEMMs on the GPU");
  e->add_option("--out,-o", dir, "output folder (emulated_forward.csv is appended to)");
  e->add_option("--model,-m", models, "model files")->required();
  std::vector<std::string> emulate_plans = {"autocast-bf16"};
  e->add_option("--plan,-p", emulate_plans, "plans (presets or files)");
  e->add_option("--seed,-s", seed);
  int tokens = 0, reps = 1;
  bool check = false;
  e->add_option("--tokens", tokens, "sequence length instead of the model file's");
  e->add_option("--reps", reps, "forwards timed (the median is printed)");
  e->add_flag("--check", check, "also run the CPU-only forward and compare every tap bit for bit");
  bool cpu_heads = false;
  e->add_flag("--cpu-heads", cpu_heads, "attention heads on the CPU (only the GEMMs on the GPU)");
  bool heads_only = false;
  e->add_flag("--heads-only", heads_only,
              "attention's projections and rotations on the CPU (only its heads, and the GEMMs, on the GPU)");
  bool cpu_ffn = false;
  e->add_flag("--cpu-ffn", cpu_ffn, "feed-forward blocks on the CPU (only their GEMMs on the GPU)");
  bool phases = false;
  e->add_flag("--phases", phases, "print the seconds per forward spent in each operation class");
  double exp_margin = 0;
  e->add_option("--exp-margin", exp_margin,
                "relative margin of the heads' exp certification (default 2^-50; wider sends more values to the host)");
  // lpsim's run, whose emulated backend gets the GPU's devices (the same bits as the CPU's: `emulate --check`).
  lpsim::cli::add_run_command(app, [](lpsim::EmulatedBackend& be) {
    if (lpsim::cuda::device_count() == 0) throw std::runtime_error("no CUDA device (lpsim run computes the same on the CPU)");
    static lpsim::cuda::EmulatedGemm gemm;  // kept weights and buffers live as long as the process
    static lpsim::cuda::EmulatedAttention attention;
    be.use_gemm_device(&gemm);
    be.use_attention_device(&attention);
    be.use_attention_block_device(&gemm);
    be.use_feed_forward_device(&gemm);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {  // a command that ran in its callback (run)
    fmt::print(stderr, "lpsim-cuda: {}\n", e.what());
    return 1;
  }
  if (app.got_subcommand("run")) return 0;
  try {
    if (*x) {
      lpsim::export_models(dir, models, seed);
      return 0;
    }
    if (lpsim::cuda::device_count() == 0) {
      fmt::print(stderr, "lpsim-cuda: no CUDA device\n");
      return 2;
    }
    std::filesystem::create_directories(dir);
    if (*p) lpsim::probe(dir, seed, tiles, k);
    if (*f) return lpsim::compare_forwards(dir, models, plans, seed);
    if (*g) {
      const int rc = lpsim::check_gemms(dir);
      if (bench_size > 0) lpsim::bench_gemms(bench_size);
      return rc;
    }
    if (*e) return lpsim::emulate(dir, models, emulate_plans, seed, tokens, check, std::max(reps, 1), !cpu_heads,
                                  !heads_only, !cpu_ffn, exp_margin, phases);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lpsim-cuda: {}\n", e.what());
    return 1;
  }
  return 0;
}
