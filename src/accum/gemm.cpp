#include "lpsim/accum/gemm.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "fast_kernels.hpp"
#include "generic_dot.hpp"
#include "lpsim/accum/dot_reference.hpp"
#include "lpsim/accum/sr_slots.hpp"
#include "lpsim/format/round_core.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim {

namespace {

// x is a value of the format exactly when rounding to nearest leaves its bits alone (NaN aside): one pass of the
// vectorised array rounding, so the check costs a fraction of the product.
template <class T>
void check_operands(const AccumPolicy& p, char name, int cols, std::span<const T> x) {
  if (p.input.spec == (std::is_same_v<T, float> ? formats::fp32 : formats::fp64)) return;  // the carrier's own format
  // Reused per calling thread (fresh pages per call cost more than the check); bound to a reference here because
  // inside the parallel loop the name of a thread_local would mean each worker's own copy.
  static thread_local std::vector<T> buffer;
  std::vector<T>& rounded = buffer;
  rounded.resize(x.size());
  round_array(x, std::span<T>(rounded), p.input.spec, Rounding::nearest_even);
  const bool nan_ok = p.input.spec.has_nan();
  std::int64_t first_bad = std::int64_t(x.size());
#pragma omp parallel for schedule(static) reduction(min : first_bad) if (x.size() > (1u << 16))
  for (std::int64_t i = 0; i < std::int64_t(x.size()); ++i) {
    const bool same = std::bit_cast<typename Carrier<T>::Bits>(rounded[i]) == std::bit_cast<typename Carrier<T>::Bits>(x[i]);
    if (!same && !(nan_ok && x[i] != x[i])) first_bad = std::min(first_bad, i);
  }
  if (first_bad < std::int64_t(x.size())) {
    const size_t i = size_t(first_bad);
    throw std::invalid_argument(fmt::format("gemm: {}[{},{}] = {} is not a value of {} (round the operands to the "
                                            "policy's input format first)", name, i / cols, i % cols, double(x[i]),
                                            p.input.name));
  }
}

template <class T>
void check_call(const AccumPolicy& p, int m, int n, int k, std::span<const T> a, std::span<const T> b,
                std::span<T> c, const GemmOptions& o) {
  if (m < 0 || n < 0 || k < 0) throw std::invalid_argument(fmt::format("gemm: negative size {}x{}x{}", m, n, k));
  if (a.size() != size_t(m) * k || b.size() != size_t(k) * n || c.size() != size_t(m) * n)
    throw std::invalid_argument(fmt::format("gemm: array sizes {}, {}, {} do not match m={} n={} k={}", a.size(),
                                            b.size(), c.size(), m, n, k));
  if (std::string bad = validate(p); !bad.empty()) throw PolicyError(bad);
  if (o.check_inputs) check_operands(p, 'A', k, a), check_operands(p, 'B', n, b);
}

void generic_gemm(const AccumPolicy& p, int m, int n, int k, std::span<const double> a, std::span<const double> b,
                  std::span<double> c, const StochasticStream& sr) {
  std::vector<double> bt(size_t(k) * n);  // B transposed: each output element reads two contiguous rows
  for (int t = 0; t < k; ++t)
    for (int j = 0; j < n; ++j) bt[size_t(j) * k + t] = b[size_t(t) * n + j];
  const accum::GenericPlan plan = accum::make_generic_plan(p);
#pragma omp parallel for schedule(dynamic, 4)
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      c[size_t(i) * n + j] = accum::generic_dot(plan, a.data() + size_t(i) * k, bt.data() + size_t(j) * k, k,
                                                SrSlots(sr, std::uint64_t(i) * n + j, k));
}

}  // namespace

void accumulate_gemm(const AccumPolicy& p, int m, int n, int k, std::span<const double> a, std::span<const double> b,
                     std::span<double> c, const GemmOptions& o) {
  check_call(p, m, n, k, a, b, c, o);
  if (!p.acc) throw PolicyError("acc: accumulating into a given value needs an accumulator format, not exact");
  std::vector<double> bt(size_t(k) * n);
  for (int t = 0; t < k; ++t)
    for (int j = 0; j < n; ++j) bt[size_t(j) * k + t] = b[size_t(t) * n + j];
  const bool generic = accum::generic_supports(p);
  const accum::GenericPlan plan = accum::make_generic_plan(p);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double& cij = c[size_t(i) * n + j];
      const std::uint64_t e = std::uint64_t(i) * n + j;
      cij = generic ? accum::generic_accumulate_dot(plan, cij, a.data() + size_t(i) * k, bt.data() + size_t(j) * k, k,
                                                    SrSlots(o.sr, e, k))
                    : reference_accumulate_dot(p, cij, a.subspan(size_t(i) * k, k),
                                               std::span<const double>(bt.data() + size_t(j) * k, k), o.sr, e);
    }
}

namespace {

// The fast kernels leave the accumulator's value in c; the output rounding is elementwise.
void round_output(const AccumPolicy& p, int k, std::span<float> c, const StochasticStream& sr) {
  if (p.output.spec == formats::fp32 || (p.acc && p.output.spec == p.acc->spec && p.tc.k == 0 &&
                                         p.output_rounding != Rounding::stochastic))
    return;  // the accumulator's values are already values of the output format
  if (p.output_rounding != Rounding::stochastic) {
    round_array(c, c, p.output.spec, p.output_rounding, {}, Isa::best);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::int64_t e = 0; e < std::int64_t(c.size()); ++e)
    c[e] = float(round_to(c[e], p.output.spec, Rounding::stochastic, SrSlots(sr, std::uint64_t(e), k).output()));
}

bool resolved_avx512(Isa isa) {
  if (isa == Isa::avx512 && !isa_available(Isa::avx512))
    throw std::invalid_argument("gemm: AVX-512 kernels are not available on this CPU/build");
  return isa != Isa::portable && isa_available(Isa::avx512);
}

}  // namespace

std::string_view path_name(GemmPath path) {
  switch (path) {
    case GemmPath::fp32_fma: return "avx512 fp32 fma";
    case GemmPath::rounded_acc: return "avx512 rounded accumulator";
    case GemmPath::tensor_core: return "avx512 tensor-core model";
    case GemmPath::generic: return "portable exact";
    case GemmPath::reference: return "MPFR reference";
  }
  return "?";
}

GemmPath gemm_path(const AccumPolicy& policy, Isa isa, bool float_operands) {
  if (!accum::generic_supports(policy)) return GemmPath::reference;
  const bool float_ok = carrier_holds<float>(policy.input.spec) && carrier_holds<float>(policy.output.spec);
  if (resolved_avx512(isa) && (float_operands || float_ok)) return accum::fast_path(policy);
  return GemmPath::generic;
}

void gemm(const AccumPolicy& p, int m, int n, int k, std::span<const double> a, std::span<const double> b,
          std::span<double> c, const GemmOptions& o) {
  check_call(p, m, n, k, a, b, c, o);
  if (o.device && o.device->gemm(p, m, n, k, a, b, c, o.sr, o.b_id)) return;
  const GemmPath path = gemm_path(p, o.isa, false);
  if (path == GemmPath::reference) return reference_gemm(p, m, n, k, a, b, c, o.sr);
  if (path == GemmPath::generic) return generic_gemm(p, m, n, k, a, b, c, o.sr);
  // A fast kernel on float copies: every operand and output value is a float, so nothing changes.
  std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), cf(c.size());
  GemmOptions unchecked = o;
  unchecked.check_inputs = false;
  gemm(p, m, n, k, af, bf, cf, unchecked);
  std::copy(cf.begin(), cf.end(), c.begin());
}

void gemm(const AccumPolicy& p, int m, int n, int k, std::span<const float> a, std::span<const float> b,
          std::span<float> c, const GemmOptions& o) {
  check_call(p, m, n, k, a, b, c, o);
  if (!carrier_holds<float>(p.input.spec) || !carrier_holds<float>(p.output.spec))
    throw std::invalid_argument(fmt::format("gemm: float arrays cannot hold {} values; use double arrays",
                                            carrier_holds<float>(p.input.spec) ? p.output.name : p.input.name));
  if (o.device && o.device->gemm(p, m, n, k, a, b, c, o.sr, o.b_id)) return;
  const GemmPath path = gemm_path(p, o.isa, true);
  if (path == GemmPath::reference || path == GemmPath::generic) {
    std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(c.size());
    if (path == GemmPath::reference) reference_gemm(p, m, n, k, ad, bd, cd, o.sr);
    else generic_gemm(p, m, n, k, ad, bd, cd, o.sr);
    std::transform(cd.begin(), cd.end(), c.begin(), [](double v) { return float(v); });
    return;
  }
  accum::fast_gemm(p, path, m, n, k, a.data(), b.data(), c.data());
  round_output(p, k, c, o.sr);
}

namespace {

// The binary32 reduction of a CUDA kernel's loop (input and accumulator fp32, sequential, RNE, output fp32): in
// float arithmetic directly, s = a0*b0, then s = fma(a_t, b_t, s) or s = s + a_t*b_t.
double float_loop_dot(const AccumPolicy& p, std::span<const double> a, std::span<const double> b) {
  if (a.empty()) return 0;
  float s = float(a[0]) * float(b[0]);
  if (p.fma)
    for (std::size_t t = 1; t < a.size(); ++t) s = std::fma(float(a[t]), float(b[t]), s);
  else
    for (std::size_t t = 1; t < a.size(); ++t) s = s + float(a[t]) * float(b[t]);
  return s;
}

}  // namespace

std::uint64_t new_weight_id() {
  static std::atomic<std::uint64_t> last{0};
  return ++last;
}

bool is_float_loop(const AccumPolicy& p) {
  return p.input.spec == formats::fp32 && p.acc && p.acc->spec == formats::fp32 && p.output.spec == formats::fp32 &&
         !p.product && p.order == Order::sequential && p.tc.k == 0 && p.acc_rounding == Rounding::nearest_even &&
         p.output_rounding == Rounding::nearest_even;
}

double dot(const AccumPolicy& p, std::span<const double> a, std::span<const double> b, const GemmOptions& o) {
  if (a.size() != b.size())
    throw std::invalid_argument(fmt::format("dot: the vectors have {} and {} elements", a.size(), b.size()));
  const int k = int(a.size());
  // One dot product is too small for packing and threads: the scalar loop or the portable exact kernel directly.
  if (o.isa != Isa::avx512 && (is_float_loop(p) || accum::generic_supports(p))) {
    if (std::string bad = validate(p); !bad.empty()) throw PolicyError(bad);
    if (o.check_inputs) check_operands(p, 'A', k, a), check_operands(p, 'B', 1, b);
    if (is_float_loop(p) && o.isa == Isa::best) return float_loop_dot(p, a, b);
    return accum::generic_dot(accum::make_generic_plan(p), a.data(), b.data(), k, SrSlots(o.sr, 0, k));
  }
  double c = 0;
  gemm(p, 1, 1, k, a, b, std::span<double>(&c, 1), o);
  return c;
}

}  // namespace lpsim
