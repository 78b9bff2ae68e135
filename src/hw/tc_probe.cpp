#include "lpsim/hw/tc_probe.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {

namespace {

constexpr const char* probe_formats[] = {"fp16", "bf16", "e4m3", "e5m2"};
constexpr const char* probe_kinds[] = {"random", "wide", "cancel"};

// Exponent span of the "wide" probes: most of the format's normal range, kept so that no product under- or
// overflows float (then every discrepancy is the accumulator's, not the range's).
int wide_span(const std::string& format) { return format == "e4m3" ? 6 : format == "e5m2" ? 12 : 14; }

struct Draw {
  std::uint64_t seed, stream;
  std::uint64_t next = 0;
  double normal() { return normal_at(seed, stream, next++); }
  double uniform() { return 0.5 * (1 + std::erf(normal() / std::sqrt(2.0))); }  // in (0, 1)
};

double in_format(double x, const FormatSpec& f) { return round_to(x, f, Rounding::nearest_even); }

void fill(ProbeSet& s, const FormatSpec& f, std::uint64_t seed) {
  Draw d{seed, stream_id(s.key().c_str())};
  const std::size_t na = std::size_t(s.tiles) * probe_rows * s.k, nb = std::size_t(s.tiles) * s.k * probe_cols;
  s.a.resize(na), s.b.resize(nb);
  auto value = [&](std::size_t) {
    if (s.kind == "wide") {
      const int span = wide_span(s.format);
      const double e = std::floor(d.uniform() * (2 * span + 1)) - span;
      return in_format((d.normal() > 0 ? 1 : -1) * std::ldexp(1 + d.uniform(), int(e)), f);
    }
    return in_format(d.normal(), f);
  };
  for (std::size_t i = 0; i < na; ++i) s.a[i] = float(value(i));
  for (std::size_t i = 0; i < nb; ++i) s.b[i] = float(value(i));
  if (s.kind != "cancel") return;
  // Second half of A's rows: minus the first half, a few entries nudged by one step of the format, so the exact
  // dot products are small against the partial sums the accumulator carried half way.
  const int h = s.k / 2;
  for (int t = 0; t < s.tiles; ++t) {
    for (int kk = 0; kk < h; ++kk)
      for (int j = 0; j < probe_cols; ++j)
        s.b[(std::size_t(t) * s.k + h + kk) * probe_cols + j] = s.b[(std::size_t(t) * s.k + kk) * probe_cols + j];
    for (int i = 0; i < probe_rows; ++i)
      for (int kk = 0; kk < h; ++kk) {
        float& dst = s.a[(std::size_t(t) * probe_rows + i) * s.k + h + kk];
        const float src = s.a[(std::size_t(t) * probe_rows + i) * s.k + kk];
        dst = -src;
        if (d.uniform() < 0.1) dst = float(in_format(-src * (1 + std::ldexp(1.0, -f.mantissa_bits())), f));
      }
  }
}

Tensor as_tensor(const std::vector<float>& v, std::vector<std::int64_t> shape) {
  return {"F32", std::move(shape), std::vector<double>(v.begin(), v.end())};
}

}  // namespace

std::vector<ProbeSet> make_probe_sets(std::uint64_t seed, int tiles, int k) {
  if (k % 32 != 0 || k < 64) throw std::invalid_argument("probe K must be a multiple of 32 and at least 64");
  std::vector<ProbeSet> sets;
  for (const char* f : probe_formats)
    for (const char* kind : probe_kinds) {
      ProbeSet s{f, kind, tiles, k, {}, {}};
      fill(s, parse_format(f).spec, seed);
      sets.push_back(std::move(s));
    }
  return sets;
}

std::map<std::string, Tensor> probe_tensors(const std::vector<ProbeSet>& sets) {
  std::map<std::string, Tensor> t;
  for (const auto& s : sets) {
    t[s.key() + ".a"] = as_tensor(s.a, {s.tiles, probe_rows, s.k});
    t[s.key() + ".b"] = as_tensor(s.b, {s.tiles, s.k, probe_cols});
  }
  return t;
}

std::vector<ProbeSet> probe_sets_from(const std::map<std::string, Tensor>& tensors) {
  std::vector<ProbeSet> sets;
  for (const auto& [name, a] : tensors) {
    if (!name.ends_with(".a")) continue;
    const std::string key = name.substr(0, name.size() - 2);
    const auto dot = key.find('.');
    const auto bt = tensors.find(key + ".b");
    if (dot == std::string::npos || bt == tensors.end() || a.shape.size() != 3 || a.shape[1] != probe_rows)
      throw std::runtime_error(fmt::format("probe tensor '{}' is not a [tiles, 16, K] operand with a '.b' partner", name));
    ProbeSet s{key.substr(0, dot), key.substr(dot + 1), int(a.shape[0]), int(a.shape[2]), {}, {}};
    s.a.assign(a.values.begin(), a.values.end());
    s.b.assign(bt->second.values.begin(), bt->second.values.end());
    sets.push_back(std::move(s));
  }
  return sets;
}

std::vector<float> emulate_probe(const ProbeSet& set, const AccumPolicy& policy) {
  std::vector<float> d(std::size_t(set.tiles) * probe_rows * probe_cols);
  const std::size_t sa = std::size_t(probe_rows) * set.k, sb = std::size_t(set.k) * probe_cols,
                    sd = probe_rows * probe_cols;
  GemmOptions o;
  o.check_inputs = false;
  for (int t = 0; t < set.tiles; ++t)
    gemm(policy, probe_rows, probe_cols, set.k, std::span<const float>(set.a.data() + t * sa, sa),
         std::span<const float>(set.b.data() + t * sb, sb), std::span<float>(d.data() + t * sd, sd), o);
  return d;
}

std::uint64_t ulp_distance(float x, float y) {
  if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y) ? 0 : UINT64_MAX;
  auto ordered = [](float v) {
    const std::int64_t b = std::bit_cast<std::int32_t>(v);
    return b < 0 ? std::int64_t(INT32_MIN) - b : b;  // -0 and +0 both map to 0
  };
  const std::int64_t d = ordered(x) - ordered(y);
  return std::uint64_t(d < 0 ? -d : d);
}

ProbeScore score_probe(const ProbeSet& set, const std::vector<float>& observed, const AccumPolicy& policy) {
  const std::vector<float> e = emulate_probe(set, policy);
  if (observed.size() != e.size())
    throw std::runtime_error(fmt::format("probe {}: {} outputs observed, {} expected", set.key(), observed.size(), e.size()));
  ProbeScore s{to_string(policy)};
  std::size_t same = 0;
  double total = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    const std::uint64_t u = ulp_distance(e[i], observed[i]);
    same += u == 0;
    s.max_ulp = std::max(s.max_ulp, u);
    total += u == UINT64_MAX ? 1e300 : double(u);
  }
  s.match = double(same) / double(e.size());
  s.mean_ulp = total / double(e.size());
  return s;
}

std::vector<ProbeScore> fit_tensor_core(const std::vector<const ProbeSet*>& sets,
                                        const std::vector<const std::vector<float>*>& observed,
                                        const std::string& out) {
  if (sets.empty() || sets.size() != observed.size()) throw std::invalid_argument("fit_tensor_core: sets and outputs differ");
  const std::string& format = sets.front()->format;
  std::vector<std::string> candidates = {fmt::format("in={},acc=fp32,out={}", format, out),
                                         fmt::format("in={},acc=exact,out={}", format, out)};
  const bool fp8 = format == "e4m3" || format == "e5m2";
  for (int k : {4, 8, 16, 32, 64})
    for (int bits = fp8 ? 10 : 22; bits <= 30; ++bits)
      for (const char* align : {"trunc", "rne"})
        for (const char* round : {"rz", "rne"})
          for (const char* exp : {"product", "operands"})
            candidates.push_back(fmt::format("in={},acc=fp32,tc={},tcbits={},tcalign={},tcround={},tcexp={},out={}",
                                             format, k, bits, align, round, exp, out));
  // Hopper's mma.sync for fp8 as sm_90 compiles it (SASS: F2FP.F16.E4M3.UNPACK_B, two HMMA.16816.F32 from zero,
  // FADD): fp16 steps on dealt pairs, a chunk of 32 per instruction
  if (fp8)
    for (int deal : {1, 2, 4, 8})
      candidates.push_back(fmt::format("in={},acc=fp32,tc=16,tcbits=26,tcalign=trunc,tcround=rz,tcexp=operands,"
                                       "tcunpack=fp16,tcdeal={},order=blocked:32,out={}", format, deal, out));
  // Hopper's fp8 wgmma (cuBLASLt): 13 fraction bits in the accumulator register, alone or promoted every L terms
  if (fp8)
    for (int bits : {13, 14, 15}) {
      candidates.push_back(fmt::format("in={},acc=fp32,tc=32,tcbits={},tcalign=trunc,tcround=rz,tcexp=operands,"
                                       "tcacc=e8m13,out={}", format, bits, out));
      for (int block : {64, 128, 256})
        candidates.push_back(fmt::format("in={},acc=fp32,tc=32,tcbits={},tcalign=trunc,tcround=rz,tcexp=operands,"
                                         "tcacc=e8m13,order=blocked:{},out={}", format, bits, block, out));
    }
  // fp8 GEMMs that promote partial sums to fp32 CUDA-core registers every L terms (cuBLASLt without fast
  // accumulation; DeepSeek-V3's recipe)
  if (fp8)
    for (int block : {32, 64, 128, 256})
      for (int k : {16, 32, 64})
        for (int bits = 12; bits <= 26; ++bits)
          for (const char* exp : {"product", "operands"})
            candidates.push_back(fmt::format("in={},acc=fp32,tc={},tcbits={},tcalign=trunc,tcround=rz,tcexp={},"
                                             "order=blocked:{},out={}", format, k, bits, exp, block, out));
  std::vector<ProbeScore> scores;
  for (const auto& c : candidates) {
    const AccumPolicy p = parse_policy(c);
    ProbeScore total{to_string(p)};
    double n = 0;
    for (std::size_t i = 0; i < sets.size(); ++i) {
      const ProbeScore s = score_probe(*sets[i], *observed[i], p);
      total.match += s.match, total.mean_ulp += s.mean_ulp, total.max_ulp = std::max(total.max_ulp, s.max_ulp), ++n;
    }
    total.match /= n, total.mean_ulp /= n;
    scores.push_back(total);
  }
  std::stable_sort(scores.begin(), scores.end(), [](const ProbeScore& a, const ProbeScore& b) {
    return a.match != b.match ? a.match > b.match : a.max_ulp < b.max_ulp;
  });
  return scores;
}

}  // namespace lpsim
