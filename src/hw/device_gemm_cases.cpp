#include "lpsim/hw/device_gemm_cases.hpp"

#include <bit>
#include <cmath>

#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/util/fnv1a.hpp"

namespace lpsim {

std::vector<DeviceGemmCase> device_gemm_cases() {
  std::vector<std::string> policies;
  for (const auto& preset : policy_presets())
    if (parse_policy(preset.name).acc) policies.push_back(preset.name);
  for (const char* p : {"in=bf16,acc=bf16,round=sr", "in=fp16,acc=fp32,out=fp16,outround=sr", "in=fp16,acc=fp16,round=rz",
                        "in=fp16,acc=fp32,order=pairwise", "in=e4m3,acc=fp16,order=blocked:32",
                        "in=fp16,acc=fp32,order=splitk:3", "in=bf16,prod=fp32,nofma,acc=fp32,out=bf16",
                        "in=fp16,acc=fp32,order=blocked:64,out=e5m2", "fp16-tc,tcround=sr",
                        "in=e5m2,acc=e8m13,round=ru,out=fp32"})
    policies.emplace_back(p);
  std::vector<DeviceGemmCase> cases;
  const int shapes[][3] = {{1, 1, 1}, {3, 5, 0}, {37, 53, 129}, {70, 130, 300}};
  std::uint64_t seed = 1;
  for (const auto& p : policies)
    for (const auto& s : shapes) cases.push_back({p, s[0], s[1], s[2], seed++});
  for (const auto& preset : policy_presets())
    if (parse_policy(preset.name).tc.k > 0) cases.push_back({preset.name, 37, 53, 129, seed++, true});
  return cases;
}

GemmOperands make_operands(const DeviceGemmCase& c, const AccumPolicy& p) {
  const FormatSpec& f = p.input.spec;
  auto value = [&](std::uint64_t stream, std::uint64_t i) {
    const std::uint64_t r = random_bits(c.seed, stream, i);
    const int kind = int(r % 100);
    const double sign = (r >> 7) & 1 ? -1.0 : 1.0;
    const double significand = 1.0 + double(r >> 11) * 0x1p-53;  // [1, 2)
    int e = int((r >> 8) % 9) - 4;                                  // 2^-4 .. 2^4
    if (c.extreme) {
      if (r % 500 == 0 && f.has_inf()) return sign * INFINITY;
      if (r % 500 == 1 && f.has_nan()) return double(NAN);
      e = f.emin - f.precision + 1 + int((r >> 8) % unsigned(f.emax - f.emin + f.precision));  // subnormals to emax
      return round_to(sign * std::ldexp(significand, e), f, Rounding::nearest_even);
    }
    if (kind < 4) return 0.0 * sign;
    if (kind < 8) e = f.emin - 1 - int((r >> 8) % unsigned(f.precision));  // below 2^emin: subnormals (or zero)
    return round_to(sign * std::ldexp(significand, e), f, Rounding::nearest_even);
  };
  GemmOperands o;
  o.a.resize(std::size_t(c.m) * c.k);
  o.b.resize(std::size_t(c.k) * c.n);
  for (std::size_t i = 0; i < o.a.size(); ++i) o.a[i] = value(1, i);
  for (std::size_t i = 0; i < o.b.size(); ++i) o.b[i] = value(2, i);
  return o;
}

StochasticStream case_stream(const DeviceGemmCase& c) { return {c.seed, 0x5eed, 0}; }

std::uint64_t value_digest(std::span<const double> values) {
  std::uint64_t h = fnv1a_basis;
  for (double v : values) h = fnv1a_add(h, v != v ? 0x7ff8000000000000ULL : std::bit_cast<std::uint64_t>(v), 8);
  return h;
}

}  // namespace lpsim
