#include "lpsim/emulation/emulated_backend.hpp"

#include "lpsim/emulation/kv_cache_store.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/format/bf16_rne.hpp"
#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/array_round.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/util/parallel_for.hpp"
#include "emulation/float_passes.hpp"
#include "emulation/host_buffers.hpp"

namespace lpsim {

using namespace host_buffers;

namespace {

constexpr std::uint64_t gemm_stream = 0x6e33;
constexpr std::uint64_t block_stream = 0xb10c;

// The power of two that brings amax closest to the format's largest finite number from below (per-tensor scaling;
// a power of two so that scaling and unscaling are exact).
// amax over the finite values: blocks on all threads when long (it was the largest serial part of a two-thread fp8
// forward), four running maxima per block; a maximum is exact and order-free, so any split gives the same scale.
double pow2_scale(std::span<const double> x, const FormatSpec& f) {
  const std::int64_t n = std::int64_t(x.size()), block = pass_block(n), blocks = (n + block - 1) / block;
  std::vector<double> block_max(std::size_t(blocks), 0.0);
  parallel_for(blocks, x.size() >= parallel_elements, [&](std::int64_t b) {
    const double* v = x.data() + b * block;
    const std::int64_t len = std::min(block, n - b * block);
    double m[4] = {0, 0, 0, 0};
    for (std::int64_t i = 0; i < len; ++i) {
      const double a = std::fabs(v[i]);
      m[i % 4] = a <= std::numeric_limits<double>::max() && a > m[i % 4] ? a : m[i % 4];  // Inf and NaN left out
    }
    block_max[std::size_t(b)] = std::max(std::max(m[0], m[1]), std::max(m[2], m[3]));
  });
  double amax = 0;
  for (double m : block_max) amax = std::max(amax, m);
  return pow2_scale_within(f.max_finite(), amax);
}

bool all_finite(std::span<const double> x) {
  return std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); });
}

// Inf and NaN among a GEMM's outputs (of finite operands: each one an overflow). On all threads when long: at 1024
// tokens a score matrix per head is 1M values, and serial passes like this one bound the speed-up on many cores.
long count_nonfinite(std::span<const double> x) {
  return parallel_count(std::int64_t(x.size()), x.size() >= parallel_elements,
                        [&](std::int64_t i, long& count, long&) { count += !std::isfinite(x[i]); }).a;
}

bool stochastic_policy(const std::optional<AccumPolicy>& p) {
  if (!p) return false;
  for (Rounding r : {p->product_rounding, p->acc_rounding, p->tc.rounding, p->output_rounding})
    if (r == Rounding::stochastic) return true;
  return false;
}

}  // namespace

EmulatedBackend::EmulatedBackend(PrecisionPlan plan, std::uint64_t seed) : plan_(std::move(plan)), seed_(seed) {
  for (Op op : all_ops) {
    const OpPrecision& p = plan_[op];
    compute_[static_cast<int>(op)] = make_rounder(p.compute, p.rounding);
    out_[static_cast<int>(op)] = make_rounder(p.out, p.rounding);
    if (p.gemm) {  // the product's policy without and with an epilogue (made once: a copy allocates its names)
      for (bool epilogue : {false, true}) {
        AccumPolicy& policy = product_policy_[static_cast<int>(op)][epilogue];
        policy = *p.gemm;
        policy.output = epilogue ? p.compute : p.out;
        policy.output_rounding = epilogue ? Rounding::nearest_even : p.rounding;
      }
    }
    computed_is_stored_[static_cast<int>(op)] =
        p.out.spec == p.compute.spec && p.rounding != Rounding::stochastic && p.out_scaling == OutputScaling::none;
    stochastic_ = stochastic_ || p.rounding == Rounding::stochastic || stochastic_policy(p.gemm) ||
                  stochastic_policy(p.reduce);
    ordered_state_ = ordered_state_ || (p.out_scaling != OutputScaling::none && p.out_scaling != OutputScaling::blocks) ||
                     (p.blocks && p.blocks->stochastic) || (p.weight_blocks && p.weight_blocks->stochastic);
    draws_streams_ = draws_streams_ || stochastic_ || (p.blocks && p.blocks->stochastic) ||
                     (p.weight_blocks && p.weight_blocks->stochastic);
  }
}

EmulatedBackend::~EmulatedBackend() { drop_weights(); }

void EmulatedBackend::drop_weights() {
  if (device_)
    for (const auto& [key, operand] : weights_) device_->forget(operand.id);
  weights_.clear();
}

const Weights<double>& EmulatedBackend::stored_params(const Weights<double>& w) {
  if (!plan_.params) throw std::logic_error("stored_params: the plan stores no parameter format");
  if (params_of_ != &w || !params_) {
    drop_weights();  // keyed by the addresses of a copy about to go
    params_.reset();
    params_ = std::make_unique<const Weights<double>>(params_rounded(w, plan_.params->spec));
    params_of_ = &w;
  }
  return *params_;
}

double EmulatedBackend::output_scale(Op op, const Matrix<double>& m) {
  const OpPrecision& p = plan_[op];
  double amax = 0;
  for (double v : m.data)
    if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
  auto& history = amax_history_[{static_cast<int>(op), layer_, calls_in_layer_[static_cast<int>(op)]++}];
  double reference = amax;  // current
  if (p.out_scaling == OutputScaling::delayed && !history.empty())
    reference = *std::max_element(history.begin(), history.end());
  if (p.out_scaling == OutputScaling::geometry) {
    if (layer_ >= int(geometry_.size()))
      throw std::invalid_argument("out_scaling = geometry needs bounds per layer (EmulatedBackend::set_geometry_bounds)");
    reference = geometry_[layer_];
  }
  history.push_back(amax);
  if (history.size() > 16) history.erase(history.begin());
  return pow2_scale_within(p.out.spec.max_finite(), reference);
}

void EmulatedBackend::store(Op op, Matrix<double>& m) {
  store_rounded(op, m);
  tick(op);
}

void EmulatedBackend::store_rounded(Op op, Matrix<double>& m) {
  if (plan_[op].out_scaling == OutputScaling::none) return round_all(out_[static_cast<int>(op)], m.data);
  if (plan_[op].out_scaling == OutputScaling::blocks) {  // quantised along rows, kept as the dequantised values
    const BlockQuantized q = quantize_blocks(*plan_[op].blocks, m.data, m.rows, m.cols, 1, block_rounding_stream(*plan_[op].blocks));
    long overflows = 0;
    for (int i = 0; i < m.rows; ++i)
      for (int j = 0; j < m.cols; ++j) {
        const double v = q.value(i, j);
        if (std::isfinite(m(i, j)) && !std::isfinite(v)) ++overflows;
        m(i, j) = v;
      }
    count_events(overflows, q.saturated);
    return;
  }
  const double s = output_scale(op, m);  // powers of two: scaling and unscaling are exact
  for (double& v : m.data) v *= s;
  round_all(out_[static_cast<int>(op)], m.data);
  for (double& v : m.data) v /= s;
}

// Only stochastic schemes draw a stream: the others leave the GEMM streams numbered as before.
StochasticStream EmulatedBackend::block_rounding_stream(const BlockScheme& s) {
  return s.stochastic ? next_stream(block_stream) : StochasticStream{};
}

// The input casts and dot()'s binary32 loop (is_float_loop) in one pass: s = x0 y0, then s = fma(x, y, s) or
// s + x y in float. Without y a sum: x * 1 is exact, so fma(x, 1, s) = s + x and the first term is the cast x0. A
// finite value that a cast made infinite counts, as in round_all. The stream dot() would take is drawn all the
// same where a plan draws streams at all (later GEMMs and block schemes are numbered after it); elsewhere no number
// is ever seen, and the shared counter's atomic, once per row on two threads, cost a Tiny-ViT forward 4%.
double EmulatedBackend::float_loop(const AccumPolicy& policy, std::span<const double> x, const double* y) {
  if (draws_streams_) next_stream(gemm_stream);
  long overflows = 0;
  auto cast = [&](double v) {
    const float f = static_cast<float>(v);
    overflows += std::isinf(f) && !std::isinf(v);
    return f;
  };
  float s = y ? cast(x[0]) * cast(y[0]) : cast(x[0]);
  for (std::size_t t = 1; t < x.size(); ++t) {
    const float a = cast(x[t]);
    if (!y) s = s + a;
    else if (policy.fma) s = std::fma(a, cast(y[t]), s);
    else s = s + a * cast(y[t]);
  }
  if (overflows) [[unlikely]] count_events(overflows, 0);
  return s;
}

double EmulatedBackend::sum(Op op, std::span<const double> x) {
  if (const AccumPolicy& policy = *plan_[op].reduce; is_float_loop(policy) && !x.empty())
    return float_loop(policy, x, nullptr);
  thread_local std::vector<double> ones;
  if (ones.size() < x.size()) ones.assign(x.size(), 1.0);
  return dot(op, x, std::span<const double>(ones.data(), x.size()));
}

double EmulatedBackend::dot(Op op, std::span<const double> x, std::span<const double> y) {
  const AccumPolicy& policy = *plan_[op].reduce;
  if (is_float_loop(policy) && !x.empty() && x.size() == y.size()) return float_loop(policy, x, y.data());
  // A kernel loads its operands into the compute type: values of other formats are converted first.
  const Rounder in = make_rounder(policy.input, Rounding::nearest_even);
  thread_local std::vector<double> xa, ya;  // dot runs in the layers' parallel row loops
  xa.assign(x.begin(), x.end());
  ya.assign(y.begin(), y.end());
  round_all(in, xa);
  round_all(in, ya);
  GemmOptions options;
  options.check_inputs = false;
  options.sr = next_stream(gemm_stream);
  return lpsim::dot(policy, xa, ya, options);
}

EmulatedBackend::Operand EmulatedBackend::prepare(Op op, const Matrix<double>& m) {
  const OpPrecision& p = plan_[op];
  const FormatSpec& in = p.gemm->input.spec;
  Operand o;
  const std::span<const double> values = m.data;
  o.scale = p.scaling ? pow2_scale(values, in) : 1.0;
  // Operands are converted on entry (autocast casts activations and weights; a cast rounds to nearest even). In
  // float when every scaled value already is a float (then float -> format is the same single rounding).
  const Rounder r = make_rounder(p.gemm->input, Rounding::nearest_even);
  bool as_float = fits_float(in) && fits_float(p.compute.spec) && fits_float(p.out.spec);
  long beyond = 0;
  const std::int64_t n = std::int64_t(values.size());
  const bool threads = values.size() >= parallel_elements;
  const bool bf16 = in == formats::bf16;  // r rounds to nearest even: the bit trick, in the same pass
  // Where the cast is not the whole rounding (a narrower input: e4m3, fp16, ...), each block is rounded to the format
  // in the same pass, after its cast (round_array rounds each value on its own, so blocks give the same bits), and its
  // result's Inf/NaN are counted there too: one parallel region where there were three.
  const bool cast_is_final = !(r.fast == Fast::general && !bf16);
  const std::int64_t block = pass_block(n);  // vectorised passes (emulation/float_passes.hpp) in blocks over the threads
  const std::int64_t blocks = (n + block - 1) / block;
  std::vector<long> infinite_in_block(std::size_t(blocks), 0);
  if (as_float) {
    o.f.resize(values.size());
    float* out = o.f.data();
    const double scale = o.scale;
    // Where a scaled value is not a float, the double path below starts again.
    const Counts c = parallel_count(blocks, threads, [&](std::int64_t b, long& inexact, long& over) {
      const std::int64_t first = b * block, len = std::min(block, n - first);
      const passes::CastCounts k = passes::cast_operand(values.data() + first, out + first, len, scale, bf16, r.max);
      inexact += k.inexact, over += k.beyond;
      if (!cast_is_final) {
        const std::span<float> rounded(out + first, std::size_t(len));
        round_array(rounded, rounded, in, Rounding::nearest_even);
      }
      infinite_in_block[std::size_t(b)] = passes::count_nonfinite(out + first, len);
    });
    as_float = c.a == 0;
    beyond = c.b;
  }
  if (as_float) {
    long now_infinite = 0;
    for (long count : infinite_in_block) now_infinite += count;
    o.finite = now_infinite == 0;
    if (beyond) {  // the values that left the range became Inf/NaN or were clamped (inputs were finite floats)
      o.overflows = std::min(beyond, now_infinite);
      o.saturations = in.overflow == Overflow::saturate ? beyond - o.overflows : 0;
      count_events(o.overflows, o.saturations);
    }
  } else {
    o.f.clear();
    o.d.resize(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) o.d[i] = values[i] * o.scale;
    round_all(r, o.d);
    o.finite = all_finite(o.d);
  }
  return o;
}

const EmulatedBackend::Operand& EmulatedBackend::weight(Op op, const Matrix<double>& w) {
  const auto key = std::make_tuple(w.data.data(), w.data.size(), static_cast<int>(op));
  auto it = weights_.find(key);
  if (it == weights_.end()) {
    if (const auto& scheme = plan_[op].weight_only) {  // quantised along k, dequantised, then cast like any operand
      const BlockQuantized q = quantize_blocks(*scheme, w.data, w.rows, w.cols, 0, block_rounding_stream(*scheme));
      count_events(0, q.saturated);
      Matrix<double> dequantized(w.rows, w.cols, uninitialized);
      for (int r = 0; r < w.rows; ++r)
        for (int c = 0; c < w.cols; ++c) dequantized(r, c) = q.value(r, c);
      it = weights_.emplace(key, prepare(op, dequantized)).first;
    } else {
      it = weights_.emplace(key, prepare(op, w)).first;
    }
    it->second.id = new_weight_id();
  }
  return it->second;
}

void EmulatedBackend::tick(Op op) {
  if (!timing_) return;
#pragma omp critical(lpsim_emulated_backend_tick)
  {
    const auto now = std::chrono::steady_clock::now();
    op_seconds_[static_cast<int>(op)] += std::chrono::duration<double>(now - last_tick_).count();
    last_tick_ = now;
  }
}

Matrix<double> EmulatedBackend::gemm(Op op, const Matrix<double>& a, const Matrix<double>& b,
                                     const std::vector<double>* bias) {
  Matrix<double> c = plan_[op].blocks ? block_product(op, a, b, bias, false)
                                      : product(op, a.rows, b.cols, a.cols, prepare(op, a), prepare(op, b), bias);
  tick(op);
  return c;
}

Matrix<double> EmulatedBackend::linear(Op op, const Matrix<double>& x, const Matrix<double>& w,
                                       const std::vector<double>* bias) {
  Matrix<double> c = plan_[op].blocks ? block_product(op, x, w, bias, true)
                                      : product(op, x.rows, w.cols, x.cols, prepare(op, x), weight(op, w), bias);
  tick(op);
  return c;
}

Matrix<double> EmulatedBackend::block_product(Op op, const Matrix<double>& a, const Matrix<double>& b,
                                              const std::vector<double>* bias, bool b_is_weight) {
  const OpPrecision& p = plan_[op];
  const BlockScheme& sb = b_is_weight && p.weight_blocks ? *p.weight_blocks : *p.blocks;
  // Stochastic schemes draw per call, numbered in forward order (quantisation runs outside the row loops).
  const BlockQuantized qa = quantize_blocks(*p.blocks, a.data, a.rows, a.cols, 1, block_rounding_stream(*p.blocks));
  const BlockQuantized qb = quantize_blocks(sb, b.data, b.rows, b.cols, 0, block_rounding_stream(sb));
  count_events(0, qa.saturated + qb.saturated);
  Matrix<double> c(a.rows, b.cols, uninitialized);
  const std::vector<double> values = block_scaled_gemm(*p.gemm, qa, qb, device_);  // fp32 values
  c.data.assign(values.begin(), values.end());
  const bool finite = all_finite(a.data) && all_finite(b.data);
  if (finite) count_events(count_nonfinite(c.data), 0);
  if (bias) {  // the epilogue in compute, the bias a value of out (as product's)
    const std::vector<double> rb = rounded_bias(op, *bias);
    const Rounder& cr = compute_[static_cast<int>(op)];
    for (int i = 0; i < c.rows; ++i)
      for (int j = 0; j < c.cols; ++j) c(i, j) = round_one(cr, c(i, j) + rb[j]);
  }
  store(op, c);
  return c;
}

Matrix<double> EmulatedBackend::accumulate(Op op, const Matrix<double>& a, const Matrix<double>& b,
                                          const Matrix<double>* c) {
  const OpPrecision& p = plan_[op];
  const Rounder r = make_rounder(p.gemm->input, Rounding::nearest_even);  // a cast on entry, as in prepare
  std::vector<double> ad = as_vector(a.data), bd = as_vector(b.data);
  round_all(r, ad);
  round_all(r, bd);
  Matrix<double> out = c ? *c : Matrix<double>(a.rows, b.cols, 0.0);
  GemmOptions options;
  options.check_inputs = false;
  options.sr = next_stream(gemm_stream);
  const bool finite = all_finite(ad) && all_finite(bd) && all_finite(out.data);
  accumulate_gemm(*p.gemm, a.rows, b.cols, a.cols, ad, bd, out.data, options);
  if (finite) count_events(count_nonfinite(out.data), 0);
  return out;
}

Matrix<double> EmulatedBackend::product(Op op, int m, int n, int k, const Operand& a, const Operand& b,
                                        const std::vector<double>* bias) {
  const double unscale = 1 / (a.scale * b.scale);
  const bool epilogue = bias || unscale != 1;
  const AccumPolicy& policy = product_policy_[static_cast<int>(op)][epilogue];
  GemmOptions options;
  options.check_inputs = false;
  options.sr = next_stream(gemm_stream);
  options.device = device_;
  Matrix<double> c;
  const std::size_t size = std::size_t(m) * n;
  const bool both_float = !a.f.empty() || a.d.empty() ? (!b.f.empty() || b.d.empty()) : false;
  if (both_float && fits_float(policy.output.spec)) {
    const std::span<float> fc = result_buffer(ResultUse::product, size);
    options.b_id = b.id;  // a weight's floats: a device may keep them
    lpsim::gemm(policy, m, n, k, a.f, b.f, fc, options);
    if (fused_result(op, m, n, fc.data(), a.finite && b.finite, epilogue ? bias : nullptr, unscale, c)) return c;
    c = from_floats(m, n, fc.data());
  } else {
    c = Matrix<double>(m, n);
    auto as_double = [](const Operand& o) { return o.f.empty() ? o.d : std::vector<double>(o.f.begin(), o.f.end()); };
    options.b_id = b.f.empty() ? b.id : 0;  // a device keeps a weight in one carrier: its own
    lpsim::gemm(policy, m, n, k, as_double(a), as_double(b), c.data, options);
  }
  if (!epilogue) {
    if (a.finite && b.finite) count_events(count_nonfinite(c.data), 0);
    return c;
  }
  // Epilogue in the compute precision: unscale, add the bias (stored in the output format), round to the output.
  const std::vector<double> rb = bias ? rounded_bias(op, *bias) : std::vector<double>{};
  const bool threads = rows_in_parallel() && c.size() >= parallel_elements;
  if (compute_[static_cast<int>(op)].fast == Fast::to_float) {  // binary32 compute: casts, counting new infinities
    const Counts made_infinite = parallel_count(c.rows, threads, [&](std::int64_t i, long& over, long&) {
      double* row = c.data.data() + std::size_t(i) * std::size_t(c.cols);
      for (int j = 0; j < c.cols; ++j) {
        double v = row[j];
        if (unscale != 1) {
          const double x = v * unscale;
          v = static_cast<double>(static_cast<float>(x));
          over += std::isinf(v) && !std::isinf(x);
        }
        if (bias) {
          const double x = v + rb[std::size_t(j)];
          v = static_cast<double>(static_cast<float>(x));
          over += std::isinf(v) && !std::isinf(x);
        }
        row[j] = v;
      }
    });
    count_events(made_infinite.a, 0);
  } else {
    parallel_for(c.rows, threads, [&](std::int64_t i) {
      for (int j = 0; j < c.cols; ++j) {
        double v = c(int(i), j);
        if (unscale != 1) v = compute(op, v * unscale);
        if (bias) v = compute(op, v + rb[j]);
        c(int(i), j) = v;
      }
    });
  }
  store(op, c);
  return c;
}

std::vector<double> EmulatedBackend::rounded_bias(Op op, const std::vector<double>& b) {
  std::vector<double> rb = b;
  round_all(make_rounder(plan_[op].out, Rounding::nearest_even), rb);
  return rb;
}

std::vector<float> EmulatedBackend::bias_floats(Op op, const std::vector<double>& b) {
  if (b.empty()) return {};
  const std::vector<double> rb = rounded_bias(op, b);
  return {rb.begin(), rb.end()};
}

// The float results of a product as doubles, with what product() does next, in one pass on all threads where that is
// one of the common cases (each a separate pass otherwise: the regions and passes cost a small forward as much as
// the work): no epilogue (the result counted for Inf/NaN where the operands were finite), or an epilogue in binary32
// compute (per-tensor unscaling, a bias) and the op's store to binary32 or to bf16 by nearest even (autocast's and
// Transformer Engine's linear layers). Each value on its own, with the same roundings and counts as the separate
// passes. false, with nothing done, otherwise.
bool EmulatedBackend::fused_result(Op op, int m, int n, const float* values, bool finite_operands,
                                   const std::vector<double>* bias, double unscale, Matrix<double>& c) {
  const Rounder& out = out_[static_cast<int>(op)];
  const bool store_float = out.fast == Fast::to_float;
  const bool store_bf16 = out.mode == Rounding::nearest_even && out.spec == formats::bf16;
  const bool epilogue = bias || unscale != 1;
  if (epilogue && (compute_[static_cast<int>(op)].fast != Fast::to_float ||
                   plan_[op].out_scaling != OutputScaling::none || !(store_float || store_bf16)))
    return false;
  const std::vector<double> rb = bias ? rounded_bias(op, *bias) : std::vector<double>{};
  c = Matrix<double>(m, n, uninitialized);
  const std::size_t size = std::size_t(m) * n;
  const Counts counts = parallel_count(m, size >= parallel_elements, [&](std::int64_t i, long& over, long& nonfinite) {
    const float* from = values + std::size_t(i) * n;
    double* to = c.data.data() + std::size_t(i) * n;
    if (epilogue) over += passes::epilogue_store(from, unscale, bias ? rb.data() : nullptr, to, n, store_bf16);
    else nonfinite += passes::widen(from, to, n);
  });
  if (!epilogue) {
    if (finite_operands) count_events(counts.b, 0);
    return true;
  }
  count_events(counts.a, 0);
  tick(op);  // as store() does
  return true;
}

}  // namespace lpsim

namespace lpsim {

void EmulatedBackend::store_kv(std::vector<Matrix<double>>& keys, std::vector<Matrix<double>>& values) {
  if (!plan_.kv_cache.active()) return;
  // Read back in the dtype attention computes in: the qkv class's out (its range events counted as any rounding).
  const auto read = [this](double v) { return round_one(out_[static_cast<int>(Op::qkv)], v); };
  const long saturated = kv_cache_roundtrip(plan_.kv_cache, keys, read) + kv_cache_roundtrip(plan_.kv_cache, values, read);
  count_events(0, saturated);
}

}  // namespace lpsim
