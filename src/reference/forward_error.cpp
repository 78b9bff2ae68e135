#include "lpsim/reference/forward_error.hpp"

#include <fmt/format.h>
#include <mpfr.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "lpsim/model/init.hpp"
#include "lpsim/model/native_backend.hpp"

namespace lpsim {

namespace {

double difference(double emulated, double reference) { return emulated - reference; }
double difference(double emulated, const Real& reference) {
  Real d(emulated);
  mpfr_sub(d.backend().data(), d.backend().data(), reference.backend().data(), MPFR_RNDN);
  return d.convert_to<double>();
}
double to_double(double v) { return v; }
double to_double(const Real& v) { return v.convert_to<double>(); }

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * double(sorted.size() - 1);  // linear interpolation between order statistics
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class B, class T = typename B::Scalar>
Taps<T> run_taps(B& be, const ModelConfig& cfg, const Weights<T>& w, const ModelInput<T>& in,
                 std::vector<RangeEvents>* events = nullptr) {
  Taps<T> taps;
  forward(be, cfg, w, in, TapSink<T>([&](int, Tap, const Matrix<T>& m) {
            taps.push_back(m);
            if constexpr (std::is_same_v<B, EmulatedBackend>)
              if (events) events->push_back(be.events());
          }));
  return taps;
}

}  // namespace

Taps<Real> reference_taps(int bits, const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  if (bits > 0) set_reference_bits(bits);
  MpfrBackend be;
  return run_taps(be, cfg, convert_weights<Real>(w), convert_input<Real>(in));
}

Taps<double> fp64_taps(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  NativeBackend<double> native;
  return run_taps(native, cfg, w, in);
}

Taps<double> emulated_taps(EmulatedBackend& be, const ModelConfig& cfg, const Weights<double>& w,
                           const ModelInput<double>& in, std::vector<RangeEvents>* events) {
  return run_taps(be, cfg, w, in, events);
}

template <class R1, class R2>
void compare_references(ReferenceCheck& check, const Taps<R1>& ref, const Taps<R2>& better) {
  for (std::size_t t = 0; t < ref.size(); ++t) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < ref[t].size(); ++i) {
      const double b = to_double(better[t].data[i]);
      Real d = Real(ref[t].data[i]) - Real(better[t].data[i]);
      const double e = d.template convert_to<double>();
      num += e * e, den += b * b;
      if (b != 0) check.max_rel = std::max(check.max_rel, std::fabs(e / b));
    }
    check.fro_rel = std::max(check.fro_rel, den > 0 ? std::sqrt(num / den) : 0.0);
  }
}

template void compare_references<double, Real>(ReferenceCheck&, const Taps<double>&, const Taps<Real>&);
template void compare_references<Real, Real>(ReferenceCheck&, const Taps<Real>&, const Taps<Real>&);

template <class R>
TapError compare_tap(const Matrix<double>& emulated, const Matrix<R>& reference) {
  TapError t;
  t.elements = static_cast<long>(emulated.size());
  std::vector<double> rel;
  rel.reserve(emulated.size());
  long double num = 0, den = 0;
  for (std::size_t i = 0; i < emulated.size(); ++i) {
    const double x = emulated.data[i];
    const double r = to_double(reference.data[i]);
    if (!std::isfinite(x)) ++t.nonfinite;
    const double e = std::isfinite(x) ? difference(x, reference.data[i]) : std::numeric_limits<double>::infinity();
    num += (long double)e * e, den += (long double)r * r;
    if (r == 0) {
      ++t.zero_ref;
      continue;
    }
    rel.push_back(std::fabs(e / r));
  }
  t.ref_fro = std::sqrt(double(den));
  t.rel_fro = den > 0 ? std::sqrt(double(num / den)) : (num > 0 ? INFINITY : 0.0);
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

template TapError compare_tap<double>(const Matrix<double>&, const Matrix<double>&);
template TapError compare_tap<Real>(const Matrix<double>&, const Matrix<Real>&);

template <class R>
std::vector<TapError> tap_errors(const ModelConfig& cfg, const Taps<double>& emulated, const Taps<R>& reference,
                                 const std::vector<RangeEvents>& events) {
  std::vector<TapError> out;
  RangeEvents previous;
  for (int l = 0; l < cfg.depth; ++l)
    for (int k = 0; k < 4; ++k) {
      const std::size_t i = std::size_t(l) * 4 + k;
      TapError t = compare_tap(emulated[i], reference[i]);
      t.layer = l, t.tap = all_taps[k];
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

StudyResult run_study(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& o) {
  const Weights<double> w = make_weights(cfg, o.seed);
  const ModelInput<double> in = make_input(cfg, o.seed, o.batch);
  StudyResult result;

  auto t0 = std::chrono::steady_clock::now();
  EmulatedBackend emu(plan, o.seed);
  std::vector<RangeEvents> events;
  const Taps<double> emulated = run_taps(emu, cfg, w, in, &events);
  result.emulated_seconds = seconds_since(t0);
  result.events = emu.events();

  ReferenceCheck& check = result.reference;
  check.kind = o.reference;
  auto measure = [&](const auto& ref) { result.taps = tap_errors(cfg, emulated, ref, events); };
  if (o.reference == "fp64") {
    t0 = std::chrono::steady_clock::now();
    const Taps<double> ref = fp64_taps(cfg, w, in);
    result.reference_seconds = seconds_since(t0);
    check.bits = 53;
    measure(ref);
    if (o.check_reference) {
      t0 = std::chrono::steady_clock::now();
      const Taps<Real> better = reference_taps(o.reference_bits, cfg, w, in);
      check.check_bits = reference_bits();
      compare_references(check, ref, better);
      result.check_seconds = seconds_since(t0);
    }
  } else {
    t0 = std::chrono::steady_clock::now();
    const Taps<Real> ref = reference_taps(o.reference_bits, cfg, w, in);
    check.bits = reference_bits();
    result.reference_seconds = seconds_since(t0);
    measure(ref);
    if (o.check_reference) {
      t0 = std::chrono::steady_clock::now();
      const Taps<Real> better = reference_taps(2 * o.reference_bits, cfg, w, in);
      check.check_bits = reference_bits();
      compare_references(check, ref, better);
      result.check_seconds = seconds_since(t0);
      set_reference_bits(o.reference_bits);
    }
  }
  double smallest = INFINITY;
  for (const TapError& t : result.taps)
    if (t.rel_fro > 0) smallest = std::min(smallest, t.rel_fro);
  check.adequate = !o.check_reference || check.fro_rel <= 0.01 * smallest;
  return result;
}

std::string tap_csv_header() {
  return "model,plan,seed,batch,layer,tap,rel_fro,max_rel,mean_rel,median_rel,p95_rel,p99_rel,elements,zero_ref,"
         "nonfinite,overflows,saturations,ref_fro,u";
}

std::string tap_csv_row(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& o, const TapError& t) {
  return fmt::format("{},{},{},{},{},{},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{},{},{},{},{},{:.9e},{}", cfg.name,
                     plan.name, o.seed, o.batch, t.layer, tap_name(t.tap), t.rel_fro, t.max_rel, t.mean_rel,
                     t.median_rel, t.p95_rel, t.p99_rel, t.elements, t.zero_ref, t.nonfinite, t.overflows,
                     t.saturations, t.ref_fro, plan.unit_roundoff());
}

}  // namespace lpsim
