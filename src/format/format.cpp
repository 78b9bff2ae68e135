#include "lpsim/format/format.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <fmt/format.h>

namespace lpsim {

double FormatSpec::max_finite() const {
  return std::ldexp(static_cast<double>(max_significand()), emax - precision + 1);
}
double FormatSpec::min_normal() const { return std::ldexp(1.0, emin); }
double FormatSpec::min_subnormal() const { return subnormals ? std::ldexp(1.0, emin - precision + 1) : min_normal(); }
double FormatSpec::unit_roundoff() const { return std::ldexp(1.0, -precision); }

std::string validate(const FormatSpec& s) {
  if (s.precision < 1 || s.precision > 53) return fmt::format("precision {} is outside 1..53", s.precision);
  if (s.emax > 1023) return fmt::format("emax {} is above binary64's 1023", s.emax);
  if (s.emin < -1022) return fmt::format("emin {} is below binary64's -1022", s.emin);
  if (s.emin > s.emax) return fmt::format("emin {} is above emax {}", s.emin, s.emax);
  if (s.overflow == Overflow::infinity && !s.has_inf())
    return "overflow to infinity needs a format with infinities (use :sat or :nan)";
  if (s.overflow == Overflow::nan && !s.has_nan()) return "overflow to NaN needs a format with NaN (use :sat)";
  if (s.encodable() && s.width() > 64) return fmt::format("width {} bits is above 64", s.width());
  return "";
}

namespace {

Format named(std::string name, std::string description, FormatSpec spec) {
  return Format{std::move(name), std::move(description), spec};
}

struct Alias {
  const char* alias;
  const char* canonical;
};
constexpr Alias aliases[] = {
    {"binary16", "fp16"},       {"half", "fp16"},          {"float16", "fp16"},         {"e5m10", "fp16"},
    {"bfloat16", "bf16"},       {"e8m7", "bf16"},          {"binary32", "fp32"},        {"float32", "fp32"},
    {"single", "fp32"},         {"float", "fp32"},         {"e8m23", "fp32"},           {"binary64", "fp64"},
    {"float64", "fp64"},        {"double", "fp64"},        {"e11m52", "fp64"},          {"e4m3fn", "e4m3"},
    {"fp8e4m3", "e4m3"},        {"float8_e4m3fn", "e4m3"}, {"fp8e5m2", "e5m2"},         {"float8_e5m2", "e5m2"},
    {"float8_e4m3fnuz", "e4m3fnuz"}, {"float8_e5m2fnuz", "e5m2fnuz"}, {"fp6e2m3", "e2m3"}, {"fp6e3m2", "e3m2"},
    {"fp4e2m1", "e2m1"},        {"float6_e2m3fn", "e2m3"}, {"float6_e3m2fn", "e3m2"},   {"float4_e2m1fn", "e2m1"},
    {"e8m10", "tf32"},          {"float8_e4m3", "e4m3ieee"}, {"float8_e3m4", "e3m4"},
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

// e<E>m<M> with an optional encoding suffix fn, fnuz or fo (finite only).
bool parse_layout(std::string_view s, FormatSpec& spec, std::string& error) {
  if (s.size() < 4 || s[0] != 'e') return false;
  const auto m = s.find('m');
  if (m == std::string_view::npos) return false;
  std::string_view exp_text = s.substr(1, m - 1), rest = s.substr(m + 1);
  Encoding enc = Encoding::ieee;
  for (auto [suffix, e] : {std::pair{"fnuz", Encoding::fnuz}, {"fn", Encoding::fn}, {"fo", Encoding::finite_only}}) {
    std::string_view sv(suffix);
    if (rest.size() > sv.size() && rest.substr(rest.size() - sv.size()) == sv) {
      enc = e;
      rest.remove_suffix(sv.size());
      break;
    }
  }
  int e_bits = 0, m_bits = 0;
  if (!parse_int(exp_text, e_bits) || !parse_int(rest, m_bits)) return false;
  if (e_bits < 1 || e_bits > 11) {
    error = fmt::format("exponent bits {} in '{}' are outside 1..11", e_bits, s);
    return true;
  }
  if (m_bits < 0 || m_bits > 52) {
    error = fmt::format("mantissa bits {} in '{}' are outside 0..52", m_bits, s);
    return true;
  }
  if (enc == Encoding::ieee && e_bits < 2) {
    error = fmt::format("'{}': an IEEE layout needs at least 2 exponent bits", s);
    return true;
  }
  if (enc == Encoding::ieee && m_bits == 0) {
    error = fmt::format("'{}': an IEEE layout needs a mantissa bit for its NaN", s);
    return true;
  }
  if (enc == Encoding::fn && m_bits == 0) {
    error = fmt::format("'{}': fn needs a mantissa bit for its NaN", s);
    return true;
  }
  spec = make_spec(e_bits, m_bits, enc);
  return true;
}

}  // namespace

const std::vector<Format>& named_formats() {
  static const std::vector<Format> formats = [] {
    std::vector<Format> v;
    using namespace formats;
    v.push_back(named("fp64", "IEEE binary64", fp64));
    v.push_back(named("fp32", "IEEE binary32", fp32));
    v.push_back(named("tf32", "NVIDIA TensorFloat-32 (19 bits, float32 range)", tf32));
    v.push_back(named("fp16", "IEEE binary16", fp16));
    v.push_back(named("bf16", "bfloat16 (float32 range, 8-bit significand)", bf16));
    v.push_back(named("e5m2", "OCP fp8 E5M2 (IEEE-like, with inf)", e5m2));
    v.push_back(named("e4m3", "OCP fp8 E4M3FN (no inf, NaN on overflow as ml_dtypes)", e4m3));
    v.push_back(named("e4m3:sat", "OCP fp8 E4M3FN, saturating conversion (NVIDIA SATFINITE)", e4m3_sat));
    v.push_back(named("e5m2:sat", "OCP fp8 E5M2, saturating conversion", e5m2_sat));
    v.push_back(named("e4m3fnuz", "fp8 E4M3FNUZ (AMD/Graphcore: bias 8, no -0, NaN = 0x80)", e4m3fnuz));
    v.push_back(named("e5m2fnuz", "fp8 E5M2FNUZ (bias 16, no -0, NaN = 0x80)", e5m2fnuz));
    v.push_back(named("e4m3ieee", "fp8 E4M3 with IEEE specials (ml_dtypes float8_e4m3: bias 7, inf, max 240)", e4m3ieee));
    v.push_back(named("e2m3", "OCP MX fp6 E2M3 (finite only, saturating)", e2m3));
    v.push_back(named("e3m2", "OCP MX fp6 E3M2 (finite only, saturating)", e3m2));
    v.push_back(named("e2m1", "OCP MX fp4 E2M1 (finite only, saturating)", e2m1));
    return v;
  }();
  return formats;
}

Format parse_format(std::string_view text) {
  const std::string full = lower(text);
  if (full.empty()) throw FormatError("empty format name");
  std::string_view rest(full);
  const auto colon = rest.find(':');
  std::string_view head = rest.substr(0, colon);
  std::string_view mods = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);

  std::string base(head);
  for (const Alias& a : aliases)
    if (base == a.alias) base = a.canonical;
  if (base == "e4m3sat") base = "e4m3", mods = mods.empty() ? "sat" : mods;

  FormatSpec spec;
  bool found = false;
  for (const Format& f : named_formats())
    if (f.name == base) spec = f.spec, found = true;
  std::string error;
  if (!found && parse_layout(base, spec, error)) {
    if (!error.empty()) throw FormatError(fmt::format("format '{}': {}", text, error));
    found = true;
  }
  std::vector<std::string_view> parts;
  for (std::string_view m = mods; !m.empty();) {
    auto c = m.find(':');
    parts.push_back(m.substr(0, c));
    m = c == std::string_view::npos ? std::string_view{} : m.substr(c + 1);
  }
  size_t first_modifier = 0;
  if (!found && head.size() > 1 && head[0] == 'p') {  // p<P>:emax<N>[:emin<M>], a value set with no encoding
    int p = 0, emax = 0;
    if (!parse_int(head.substr(1), p))
      throw FormatError(fmt::format("format '{}': '{}' is not p<precision>", text, head));
    if (parts.empty() || parts[0].substr(0, 4) != "emax" || !parse_int(parts[0].substr(4), emax))
      throw FormatError(fmt::format("format '{}': after p{} comes emax<N>, e.g. p11:emax15", text, p));
    constexpr int exponent_limit = 1 << 24;  // far beyond any format; keeps 1 - emax and later sums in int range
    if (emax < -exponent_limit || emax > exponent_limit)
      throw FormatError(fmt::format("format '{}': emax {} is outside -{}..{}", text, emax, exponent_limit, exponent_limit));
    spec = FormatSpec{};
    spec.precision = p;
    spec.emax = emax;
    spec.emin = 1 - emax;
    spec.encoding = Encoding::none;
    first_modifier = 1;
    if (parts.size() > 1 && parts[1].substr(0, 4) == "emin") {
      if (!parse_int(parts[1].substr(4), spec.emin))
        throw FormatError(fmt::format("format '{}': '{}' is not emin<N>", text, parts[1]));
      if (spec.emin < -exponent_limit || spec.emin > exponent_limit)
        throw FormatError(fmt::format("format '{}': emin {} is outside -{}..{}", text, spec.emin, exponent_limit, exponent_limit));
      first_modifier = 2;
    }
    // A value set that matches an IEEE layout gets that layout's bit encoding.
    for (int e = 2; e <= 11; ++e)
      if (spec.emax == (1 << (e - 1)) - 1 && spec.emin == 1 - spec.emax) spec.exponent_bits = e, spec.encoding = Encoding::ieee;
    found = true;
  }
  if (!found)
    throw FormatError(fmt::format("unknown format '{}' (named formats: see `lpsim formats`; custom: e5m10, "
                                  "e4m3fn, e4m3fnuz, e2m1fo, p11:emax15[:emin-14], with :sat :nan :inf :nosub)",
                                  text));
  for (size_t i = first_modifier; i < parts.size(); ++i) {
    std::string_view m = parts[i];
    if (m == "sat" || m == "satfinite") spec.overflow = Overflow::saturate;
    else if (m == "nan") spec.overflow = Overflow::nan;
    else if (m == "inf") spec.overflow = Overflow::infinity;
    else if (m == "nosub" || m == "ftz") spec.subnormals = false;
    else throw FormatError(fmt::format("format '{}': unknown modifier '{}' (known: sat, nan, inf, nosub)", text, m));
  }
  if (std::string bad = validate(spec); !bad.empty()) throw FormatError(fmt::format("format '{}': {}", text, bad));

  // Canonical name: a named format with the same spec, else the text as given (lower case).
  for (const Format& f : named_formats())
    if (f.spec == spec) return Format{f.name, f.description, spec};
  return Format{full, "custom format", spec};
}

}  // namespace lpsim
