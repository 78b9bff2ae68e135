#include "lpsim/reference/forward_error.hpp"

#include <omp.h>

#include <fmt/format.h>
#include <mpfr.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/native_backend.hpp"
#include "lpsim/reference/memory_estimate.hpp"
#include "lpsim/reference/reference_ladder.hpp"
#include "lpsim/reference/route_compare.hpp"
#include "lpsim/stats/regression.hpp"
#include "util/available_memory.hpp"
#include "util/progress.hpp"
#include "util/csv_field.hpp"

namespace lpsim {

namespace {

double difference(double emulated, double reference) { return emulated - reference; }
double difference(double emulated, const Real& reference) {
  Real d(emulated);
  mpfr_sub(d.backend().data(), d.backend().data(), reference.backend().data(), MPFR_RNDN);
  return d.convert_to<double>();
}
double difference(double emulated, const DD& reference) { return to_double(DD(emulated) - reference); }
Real to_real(const DD& v) { return Real(v.x[0]) + Real(v.x[1]); }
const Real& to_real(const Real& v) { return v; }
Real to_real(double v) { return Real(v); }

double percentile(const std::vector<double>& sorted, double q) { return sorted.empty() ? 0 : sorted_quantile(sorted, q); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A reference backend's on_layer: its layer, rate and ETA on stderr (util/progress.hpp).
std::function<void(int)> layer_progress(const std::string& label, int depth) {
  auto p = std::make_shared<Progress>("reference (" + label + ")", "layers", depth);
  return [p](int layer) {
    if (layer > 0) p->step(layer);
  };
}

template <class B, class T = typename B::Scalar, class W = T>
Taps<T> run_taps(B& be, const ModelConfig& cfg, const Weights<W>& w, const ModelInput<W>& in,
                 std::vector<RangeEvents>* events = nullptr) {
  Taps<T> taps;
  taps.reserve(4 * std::size_t(cfg.depth) + 2);  // the forward reads taps where they are kept: no reallocation
  Matrix<T> untapped;  // the embedding's output of a model with no blocks and no head: not a tap
  forward_kept<B, T, W>(be, cfg, w, in, TapKeeper<T>([&](int layer, Tap, Matrix<T>&& m) -> const Matrix<T>& {
    if (layer < 0) return untapped = std::move(m);
    if constexpr (std::is_same_v<B, EmulatedBackend>)
      if (events) events->push_back(be.events());
    return taps.emplace_back(std::move(m));
  }), [&](Routing&& r) { taps.routes.push_back(std::move(r)); });
  return taps;
}

}  // namespace

double reference_bytes(const ModelConfig& cfg, int bits) {
  const double per = 32 + 8 * std::ceil(bits / 64.0) + 16;  // mpfr_t, limbs, malloc's header
  const double n = cfg.tokens, d = cfg.width, f = cfg.ffn, v = cfg.vocab;
  const double experts = cfg.experts > 0 ? cfg.experts * (3 * d * cfg.expert_width() + d) - 3 * d * f : 0;
  const double params = cfg.depth * (4 * d * d + 3 * d * f + 8 * d + experts) + 2 * v * d + n * d;
  const double taps = (4.0 * cfg.depth + 2) * n * d + (cfg.lm_head ? n * v : 0);
  const double live = 4 * n * n + 4 * n * std::max({d, f, v}) + 6 * n * d;
  return per * (params + taps + live);
}

void check_reference_fits(const ModelConfig& cfg, int bits) {
  const double need = reference_bytes(cfg, bits), have = available_memory_bytes();
  if (have > 0 && need > have)
    throw ConfigError(fmt::format("model {}: the MPFR reference at {} bits needs about {:.1f} GB ({} tokens, width {}), "
                                  "{:.1f} GB are available; use --reference fp64, fewer tokens or fewer bits",
                                  cfg.name, bits, need / 1e9, cfg.tokens, cfg.width, have / 1e9));
}

Taps<Real> reference_taps(int bits, const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in,
                          bool progress) {
  if (bits > 0) set_reference_bits(bits);
  check_reference_fits(cfg, reference_bits());
  MpfrBackend be;
  if (progress) be.on_layer = layer_progress(fmt::format("MPFR, {} bits", reference_bits()), cfg.depth);
  return run_taps(be, cfg, convert_weights<Real>(w), convert_input<Real>(in));
}

Taps<DD> dd_taps(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in, std::uint64_t seed,
                 SampledCheck* check, bool progress) {
  DdBackend be(cfg, seed, check ? 48 : 0);
  if (progress) be.on_layer = layer_progress("double-double", cfg.depth);
  Taps<DD> taps = run_taps(be, cfg, w, in);
  if (check) *check = be.check();
  return taps;
}

Taps<double> fp64_taps(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  NativeBackend<double> native;
  return run_taps(native, cfg, w, in);
}

Taps<double> emulated_taps(EmulatedBackend& be, const ModelConfig& cfg, const Weights<double>& w,
                           const ModelInput<double>& in, std::vector<RangeEvents>* events) {
  if (const auto& p = be.plan().params; p && !(p->spec == formats::fp64)) {
    if (!be.holds_params_of(w))  // the copy is made on the backend's first forward only: check memory then
      if (const double need = 8 * parameter_count(cfg), have = available_memory_bytes(); have > 0 && need > have)
        throw ConfigError(fmt::format("model {}: plan '{}' stores the parameters as {}: that copy needs about "
                                      "{:.1f} GB, {:.1f} GB are available", cfg.name, be.plan().name, p->name,
                                      need / 1e9, have / 1e9));
    return run_taps(be, cfg, be.stored_params(w), in, events);
  }
  return run_taps(be, cfg, w, in, events);
}

template <class R1, class R2>
void compare_references(ReferenceCheck& check, const Taps<R1>& ref, const Taps<R2>& better) {
  for (std::size_t t = 0; t < ref.size(); ++t) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < ref[t].size(); ++i) {
      const double b = layers::value_of(better[t].data[i]);
      Real d = to_real(ref[t].data[i]) - to_real(better[t].data[i]);
      const double e = d.template convert_to<double>();
      num += e * e, den += b * b;
      if (b != 0) check.max_rel = std::max(check.max_rel, std::fabs(e / b));
    }
    check.fro_rel = std::max(check.fro_rel, den > 0 ? std::sqrt(num / den) : 0.0);
  }
}

template void compare_references<double, Real>(ReferenceCheck&, const Taps<double>&, const Taps<Real>&);
template void compare_references<Real, Real>(ReferenceCheck&, const Taps<Real>&, const Taps<Real>&);
template void compare_references<DD, Real>(ReferenceCheck&, const Taps<DD>&, const Taps<Real>&);
template void compare_references<double, DD>(ReferenceCheck&, const Taps<double>&, const Taps<DD>&);

namespace {

// One emulated entry's error against the reference (formed exactly where the reference is MPFR); an Inf/NaN entry's
// is infinite.
template <class R>
double entry_error(double x, const R& reference) {
  return std::isfinite(x) ? difference(x, reference) : std::numeric_limits<double>::infinity();
}

// ||E||_F / ||R||_F from the sums of squares: infinite for an error against a zero reference, 0 for none.
double fro_ratio(long double num, long double den) {
  return den > 0 ? std::sqrt(double(num / den)) : (num > 0 ? INFINITY : 0.0);
}

}  // namespace

template <class R>
TapError compare_tap(const Matrix<double>& emulated, const Matrix<R>& reference) {
  TapError t;
  t.elements = static_cast<long>(emulated.size());
  std::vector<double> rel;
  rel.reserve(emulated.size());
  long double num = 0, den = 0;
  for (std::size_t i = 0; i < emulated.size(); ++i) {
    const double x = emulated.data[i];
    const double r = layers::value_of(reference.data[i]);
    if (!std::isfinite(x)) ++t.nonfinite;
    const double e = entry_error(x, reference.data[i]);
    num += (long double)e * e, den += (long double)r * r;
    if (r == 0) {
      ++t.zero_ref;
      continue;
    }
    rel.push_back(std::fabs(e / r));
  }
  t.ref_fro = std::sqrt(double(den));
  t.rel_fro = fro_ratio(num, den);
  if (!rel.empty()) {
    std::sort(rel.begin(), rel.end());
    t.max_rel = rel.back();
    long double s = 0;
    for (double v : rel) s += v;
    t.mean_rel = double(s / rel.size());
    t.median_rel = percentile(rel, 0.5), t.p95_rel = percentile(rel, 0.95), t.p99_rel = percentile(rel, 0.99);
  }
  return t;
}

template <class R>
void logit_metrics(TapError& t, const Matrix<double>& emulated, const Matrix<R>& reference) {
  long double kl_sum = 0, kl_max = 0;
  int agree = 0;
  double max_abs = 0;
  const int n = emulated.rows, v = emulated.cols;
  std::vector<long double> r(v), e(v);
  for (int i = 0; i < n; ++i) {
    int arg_r = 0, arg_e = 0;
    for (int j = 0; j < v; ++j) {
      r[j] = static_cast<long double>(layers::value_of(reference(i, j))), e[j] = emulated(i, j);
      if (r[j] > r[arg_r]) arg_r = j;
      if (e[j] > e[arg_e]) arg_e = j;
      max_abs = std::max(max_abs, double(std::fabs(e[j] - r[j])));
    }
    agree += arg_r == arg_e;
    // log-softmax with the row maximum taken out: KL = sum p_r (log p_r - log p_e).
    long double zr = 0, ze = 0;
    for (int j = 0; j < v; ++j) zr += std::exp(r[j] - r[arg_r]), ze += std::exp(e[j] - e[arg_e]);
    const long double lzr = std::log(zr) + r[arg_r], lze = std::log(ze) + e[arg_e];
    long double kl = 0;
    for (int j = 0; j < v; ++j) {
      const long double lr = r[j] - lzr, le = e[j] - lze;
      kl += std::exp(lr) * (lr - le);
    }
    kl = std::max(kl, 0.0L);  // rounding can leave a tiny negative value for identical rows
    kl_sum += kl, kl_max = std::max(kl_max, kl);
  }
  t.kl_mean = n ? double(kl_sum / n) : NAN, t.kl_max = double(kl_max);
  t.top1 = n ? double(agree) / n : NAN, t.logit_max_abs = max_abs;
}

template void logit_metrics<double>(TapError&, const Matrix<double>&, const Matrix<double>&);
template void logit_metrics<Real>(TapError&, const Matrix<double>&, const Matrix<Real>&);
template void logit_metrics<DD>(TapError&, const Matrix<double>&, const Matrix<DD>&);

template TapError compare_tap<double>(const Matrix<double>&, const Matrix<double>&);
template TapError compare_tap<Real>(const Matrix<double>&, const Matrix<Real>&);
template TapError compare_tap<DD>(const Matrix<double>&, const Matrix<DD>&);

// rel_fro over the rows of a tap a token mask selects (want: the value a row's mask must have); nan without rows.
template <class R>
double rows_rel_fro(const Matrix<double>& emulated, const Matrix<R>& reference, const std::vector<char>& mask, char want) {
  long double num = 0, den = 0;
  bool any = false;
  for (int i = 0; i < emulated.rows; ++i) {
    if (mask[std::size_t(i)] != want) continue;
    any = true;
    for (int j = 0; j < emulated.cols; ++j) {
      const double x = emulated(i, j), r = layers::value_of(reference(i, j));
      const double e = entry_error(x, reference(i, j));
      num += (long double)e * e, den += (long double)r * r;
    }
  }
  return any ? fro_ratio(num, den) : NAN;
}

// The routing columns of a mixture-of-experts layer's ffn and block rows.
template <class R>
void route_metrics(TapError& t, const Taps<double>& emulated, const Taps<R>& reference, std::size_t tap_index) {
  if (t.tap != Tap::ffn && t.tap != Tap::block) return;
  auto at = [&](const std::vector<Routing>& routes) -> const Routing* {
    for (const Routing& r : routes)
      if (r.layer == t.layer) return &r;
    return nullptr;
  };
  const Routing *e = at(emulated.routes), *r = at(reference.routes);
  if (!e || !r) return;
  const RouteComparison c = compare_routes(*e, *r);
  t.route_flip = c.flip, t.route_reorder = c.reorder, t.route_weight_err = c.weight_err;
  t.flipped_rel_fro = rows_rel_fro(emulated[tap_index], reference[tap_index], c.flipped, 1);
  t.kept_rel_fro = rows_rel_fro(emulated[tap_index], reference[tap_index], c.flipped, 0);
}

template <class R>
std::vector<TapError> tap_errors(const ModelConfig& cfg, const Taps<double>& emulated, const Taps<R>& reference,
                                 const std::vector<RangeEvents>& events) {
  std::vector<TapError> out;
  RangeEvents previous;
  std::vector<std::pair<int, Tap>> order;  // (layer, tap) of each stored tap, in forward order
  for (int l = 0; l < cfg.depth; ++l)
    for (Tap tap : all_taps) order.push_back({l, tap});
  for (Tap tap : head_taps(cfg)) order.push_back({cfg.depth, tap});
  for (std::size_t i = 0; i < order.size() && i < emulated.size(); ++i) {
    TapError t = compare_tap(emulated[i], reference[i]);
    t.layer = order[i].first, t.tap = order[i].second;
    if (t.tap == Tap::logits) logit_metrics(t, emulated[i], reference[i]);
    route_metrics(t, emulated, reference, i);
    if (i < events.size()) {
      t.overflows = events[i].overflows - previous.overflows;
      t.saturations = events[i].saturations - previous.saturations;
      previous = events[i];
    }
    out.push_back(t);
  }
  return out;
}

template std::vector<TapError> tap_errors<double>(const ModelConfig&, const Taps<double>&, const Taps<double>&,
                                                  const std::vector<RangeEvents>&);
template std::vector<TapError> tap_errors<Real>(const ModelConfig&, const Taps<double>&, const Taps<Real>&,
                                                const std::vector<RangeEvents>&);
template std::vector<TapError> tap_errors<DD>(const ModelConfig&, const Taps<double>&, const Taps<DD>&,
                                              const std::vector<RangeEvents>&);

void estimate_dd_error(ReferenceCheck& check, const SampledCheck& sampled, const Taps<double>& fp64, const Taps<DD>& dd) {
  ReferenceCheck f;
  compare_references(f, fp64, dd);
  check.check_bits = sampled.bits;
  check.local = check.max_rel = sampled.worst();
  check.amplification = f.fro_rel / 0x1p-53;
  check.fro_rel = check.amplification * check.local;
}

double forward_multiply_adds(const ModelConfig& cfg) {
  const double n = cfg.tokens, d = cfg.width, f = cfg.ffn, q = cfg.q_width(), kv = cfg.kv_width();
  const double mlp = (cfg.mlp == Mlp::gated ? 3 : 2) * d * f;
  const double per_layer = n * (d * q + 2 * d * kv + q * d + mlp) + 2.0 * n * n * q;
  const double embed = cfg.embedding == Embedding::patch ? n * cfg.patch_dim() * d : 0;
  return cfg.depth * per_layer + embed + (cfg.lm_head ? n * d * cfg.vocab : 0);
}

std::string choose_reference(const ModelConfig& cfg, const std::string& kind, int bits, bool check) {
  if (kind != "auto") return kind;
  const bool fits = reference_bytes(cfg, check ? 2 * bits : bits) <= std::min(2e9, 0.5 * available_memory_bytes());
  return fits && forward_multiply_adds(cfg) <= kMpfrAutoMultiplyAdds ? "mpfr" : "dd";
}

void check_study_options(const StudyOptions& o) {
  if (o.reference != "auto" && o.reference != "mpfr" && o.reference != "fp64" && o.reference != "dd")
    throw ConfigError(fmt::format("reference '{}' is not one of auto, mpfr, dd, fp64", o.reference));
  if (o.reference_bits < 64 || o.reference_bits > 100000)
    throw ConfigError(fmt::format("reference bits {} are outside 64..100000", o.reference_bits));
}

std::vector<StudyResult> compare_plans(const ModelConfig& cfg, const std::vector<PrecisionPlan>& plans,
                                       const StudyOptions& options) {
  check_study_options(options);  // the CLI, Python and every other caller alike (Python ran MPFR for 'xyz' before)
  if (plans.empty()) return {};
  for (const PrecisionPlan& plan : plans)
    if (const std::string why = plan_model_problem(cfg, plan); !why.empty()) throw ConfigError(why);
  StudyOptions o = options;
  o.reference = choose_reference(cfg, o.reference, o.reference_bits, o.check_reference);
  // Refuse before any work what cannot fit: weights, the emulated forwards (every plan's taps are kept until the
  // one reference is there), the reference and its check.
  MemoryEstimate memory;
  std::string names;
  for (const PrecisionPlan& plan : plans) {
    const MemoryEstimate m = study_memory(cfg, plan, o.reference, o.reference_bits, o.check_reference, omp_get_max_threads());
    if (m.total() > memory.total()) memory = m;
    names += (names.empty() ? "" : ", ") + plan.name;
  }
  memory.reference += (double(plans.size()) - 1) * memory.tap_bytes;
  check_memory(fmt::format("model {} ({} tokens, width {}, depth {}) under plan{} '{}' with the {} reference{}", cfg.name,
                           cfg.tokens, cfg.width, cfg.depth, plans.size() > 1 ? "s" : "", names, o.reference,
                           o.check_reference ? " and its check" : ""),
               memory, "use fewer tokens, a smaller model, --reference fp64 or dd, or --no-check");
  const Weights<double> w = make_weights(cfg, o.seed);
  const ModelInput<double> in = make_input(cfg, o.seed, o.batch);
  std::vector<StudyResult> results(plans.size());
  std::vector<std::vector<RangeEvents>> events(plans.size());
  std::vector<Taps<double>> emulated(plans.size());
  for (std::size_t i = 0; i < plans.size(); ++i) {
    results[i].memory = memory;
    const auto t0 = std::chrono::steady_clock::now();
    // The backend's rounded copies of the weights go before the next plan or the reference (a 1B model: 5 GB).
    EmulatedBackend emu(plans[i], o.seed);
    if (o.on_backend) o.on_backend(emu);
    emulated[i] = emulated_taps(emu, cfg, w, in, &events[i]);
    results[i].events = emu.events();
    results[i].emulated_seconds = seconds_since(t0);
  }

  const ReferenceRun ref = run_reference(o.reference, o.reference_bits, o.check_reference, cfg, w, in, o.seed, o.progress,
                                         [&](const auto& taps) {
                                           for (std::size_t i = 0; i < plans.size(); ++i)
                                             results[i].taps = tap_errors(cfg, emulated[i], taps, events[i]);
                                         });
  const ReferenceCheck& check = ref.check;
  const SampledCheck& sampled = ref.sampled;
  const double reference_seconds = ref.reference_seconds, check_seconds = ref.check_seconds;
  // The reference is adequate for a plan when its error is below 1% of that plan's smallest measured error.
  for (StudyResult& r : results) {
    r.reference = check;
    r.reference_seconds = reference_seconds, r.check_seconds = check_seconds;
    if (o.reference == "dd" && o.check_reference) r.sampled = sampled;
    double smallest = INFINITY;
    for (const TapError& t : r.taps)
      if (t.rel_fro > 0) smallest = std::min(smallest, t.rel_fro);
    r.reference.adequate = !o.check_reference || check.fro_rel <= 0.01 * smallest;
  }
  return results;
}

StudyResult run_study(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& options) {
  return std::move(compare_plans(cfg, {plan}, options).front());
}

std::string tap_csv_header() {
  return "model,plan,seed,batch,layer,tap,rel_fro,max_rel,mean_rel,median_rel,p95_rel,p99_rel,elements,zero_ref,"
         "nonfinite,overflows,saturations,ref_fro,u,kl_mean,kl_max,top1,logit_max_abs,route_flip,route_reorder,"
         "route_weight_err,flipped_rel_fro,kept_rel_fro";
}

std::string tap_metric_cells(const PrecisionPlan& plan, const TapError& t) {
  return fmt::format("{},{},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{},{},{},{},{},{:.9e},{},{:.9e},{:.9e},{:.9e},{:.9e},"
                     "{:.9e},{:.9e},{:.9e},{:.9e},{:.9e}",
                     t.layer, tap_name(t.tap), t.rel_fro, t.max_rel, t.mean_rel, t.median_rel, t.p95_rel, t.p99_rel,
                     t.elements, t.zero_ref, t.nonfinite, t.overflows, t.saturations, t.ref_fro, plan.unit_roundoff(),
                     t.kl_mean, t.kl_max, t.top1, t.logit_max_abs, t.route_flip, t.route_reorder, t.route_weight_err,
                     t.flipped_rel_fro, t.kept_rel_fro);
}

std::string tap_csv_row(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& o, const TapError& t) {
  return fmt::format("{},{},{},{},", csv_field(cfg.name), csv_field(plan.name), o.seed, o.batch) + tap_metric_cells(plan, t);
}

}  // namespace lpsim
