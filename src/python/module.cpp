// The Python face of lpsim (import lpsim): the same core as the command line, on NumPy arrays.
//   lpsim.round(x, "e4m3", mode="rne", seed=0)       -> float64 array of x rounded to the format
//   lpsim.gemm(a, b, "fp16-fp32acc")                  -> a @ b under an accumulation policy
//   lpsim.dot(a, b, policy)                           -> float
//   lpsim.quantize(x, "mxfp4", axis=1)                -> dict: values, elements, scales, tensor_scale, tensor_amax, saturated
//   lpsim.bits(x, "e4m3"), lpsim.from_bits(b, "e4m3") -> bit patterns (uint8/16/32/64) of x rounded, and back
//   lpsim.study("models/tiny-vit.toml", "autocast-bf16", seed=0, reference="auto", input=None)
//                                                     -> dict: taps (list of dicts), reference, times
// PyTorch tensors pass through NumPy (t.numpy()). Errors are Python exceptions (ValueError) with lpsim's message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fmt/format.h>
#include <omp.h>

#include <limits>
#include <string>
#include <vector>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/accum/policy.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/format/array_round.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/encoding.hpp"
#include "lpsim/format/format.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/format/rounding.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace py = pybind11;

#ifndef LPSIM_VERSION
#define LPSIM_VERSION "unknown"
#endif
using namespace lpsim;

namespace {

// A C-contiguous float64 copy (or view) of a real numeric array.
using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Real numbers only: a complex array lost its imaginary part and a string array was parsed as numbers before
// (forcecast converts anything); both are refused with the argument's name.
Doubles real_array(const py::handle& x, const char* what) {
  const py::array a = py::array::ensure(x);
  if (!a) throw py::type_error(fmt::format("{} must be an array of real numbers", what));
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(fmt::format("{} has dtype {}: lpsim takes real numbers (float, int or bool arrays)", what,
                                     std::string(py::str(a.dtype()))));
  return Doubles::ensure(a);
}

// A dimension as the C++ kernels take it (int): a 2^32 + 3 row count became 3 before.
int checked_dim(py::ssize_t n, const char* what) {
  if (n < 0 || n > std::numeric_limits<int>::max())
    throw std::invalid_argument(fmt::format("{} = {} is larger than lpsim's kernels take (2^31 - 1)", what, n));
  return int(n);
}

// x rounded element by element in lpsim's float or double arrays, same shape, same element type.
template <class T>
py::array round_as(const py::array& a, const Format& f, Rounding r, std::uint64_t seed) {
  const auto x = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  py::array_t<T> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  std::span<const T> in(x.data(), std::size_t(x.size()));
  std::span<T> o(out.mutable_data(), std::size_t(out.size()));
  {
    py::gil_scoped_release release;
    round_array(in, o, f.spec, r, StochasticStream{seed, 0, 0});
  }
  return out;
}

// float32 in, float32 out (lpsim's float arrays: formats with p <= 24 and emin >= -126 exactly, wider ones through
// double and stored as float); any other real array in, float64 out.
py::array round_values(const py::object& x_in, const std::string& format, const std::string& mode, std::uint64_t seed) {
  const py::array a = real_array(x_in, "round: x");  // refuses complex, strings, objects
  const Format f = parse_format(format);
  const Rounding r = parse_rounding(mode);
  const bool is_float = py::array::ensure(x_in).dtype().is(py::dtype::of<float>());
  return is_float ? round_as<float>(py::array::ensure(x_in), f, r, seed) : round_as<double>(a, f, r, seed);
}

// The bit patterns of x rounded to the format (as `round`), any shape, in the narrowest unsigned type that holds
// the format's width (as ml_dtypes' `.view(np.uint8)` gives them for fp8).
template <class U>
py::array patterns_as(const Doubles& x, const Format& f, Rounding r, std::uint64_t seed) {
  py::array_t<U> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  std::vector<double> v(x.data(), x.data() + x.size());
  round_array(std::span<const double>(v), std::span<double>(v), f.spec, r, StochasticStream{seed, 0, 0});
  U* o = out.mutable_data();
  for (std::size_t i = 0; i < v.size(); ++i) o[i] = static_cast<U>(encode(v[i], f.spec));
  return out;
}

py::array bits_of(const py::object& x_in, const std::string& format, const std::string& mode, std::uint64_t seed) {
  const Doubles x = real_array(x_in, "bits: x");
  const Format f = parse_format(format);
  if (!f.spec.encodable())
    throw FormatError(fmt::format("bits: format '{}' is a value set with no bit encoding", f.name));
  const Rounding r = parse_rounding(mode);
  const int w = f.spec.width();
  return w <= 8 ? patterns_as<std::uint8_t>(x, f, r, seed) : w <= 16 ? patterns_as<std::uint16_t>(x, f, r, seed)
         : w <= 32 ? patterns_as<std::uint32_t>(x, f, r, seed) : patterns_as<std::uint64_t>(x, f, r, seed);
}

py::array_t<double> from_bits(const py::object& b_in, const std::string& format) {
  const py::array a = py::array::ensure(b_in);
  if (!a || (a.dtype().kind() != 'u' && a.dtype().kind() != 'i'))
    throw py::type_error("from_bits: b must be an array of integers (bit patterns)");
  const auto b = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  const Format f = parse_format(format);
  py::array_t<double> out(std::vector<py::ssize_t>(b.shape(), b.shape() + b.ndim()));
  double* o = out.mutable_data();
  for (py::ssize_t i = 0; i < b.size(); ++i) o[i] = decode(b.data()[i], f.spec);  // names a pattern too wide
  return out;
}

// The operands as the policy takes them: rounded to its input format with RNE first (as `lpsim dot` does) unless
// the caller says they already are; then a value outside the format is an error naming it.
std::vector<double> policy_operand(const Doubles& x, const AccumPolicy& p, bool round_inputs) {
  std::vector<double> v(x.data(), x.data() + x.size());
  if (round_inputs)
    for (double& e : v) e = round_to(e, p.input.spec, Rounding::nearest_even);
  return v;
}

py::array_t<double> gemm_values(const py::object& a_in, const py::object& b_in, const std::string& policy,
                                bool round_inputs) {
  const Doubles a = real_array(a_in, "gemm: a"), b = real_array(b_in, "gemm: b");
  if (a.ndim() != 2 || b.ndim() != 2 || a.shape(1) != b.shape(0))
    throw std::invalid_argument("gemm: a (m x k) and b (k x n) must be matrices with matching k");
  const AccumPolicy p = parse_policy(policy);
  const std::vector<double> av = policy_operand(a, p, round_inputs), bv = policy_operand(b, p, round_inputs);
  const int m = checked_dim(a.shape(0), "gemm: m"), k = checked_dim(a.shape(1), "gemm: k"),
            n = checked_dim(b.shape(1), "gemm: n");
  py::array_t<double> c({py::ssize_t(m), py::ssize_t(n)});
  {
    py::gil_scoped_release release;
    gemm(p, m, n, k, std::span<const double>(av), std::span<const double>(bv), std::span<double>(c.mutable_data(), c.size()));
  }
  return c;
}

double dot_value(const py::object& a_in, const py::object& b_in, const std::string& policy, bool round_inputs) {
  const Doubles a = real_array(a_in, "dot: a"), b = real_array(b_in, "dot: b");
  if (a.ndim() != 1 || b.ndim() != 1 || a.size() != b.size())
    throw std::invalid_argument("dot: a and b must be vectors of the same length");
  const AccumPolicy p = parse_policy(policy);
  return dot(p, std::span<const double>(policy_operand(a, p, round_inputs)),
             std::span<const double>(policy_operand(b, p, round_inputs)));
}

py::dict quantize_values(const py::object& x_in, const std::string& scheme, int axis, std::uint64_t seed) {
  const Doubles x = real_array(x_in, "quantize: x");
  if (x.ndim() != 2) throw std::invalid_argument("quantize: x must be a matrix (rows x cols)");
  if (axis < 0) axis += 2;
  if (axis != 0 && axis != 1) throw std::invalid_argument("quantize: axis must be 0 or 1 (or -1)");
  const BlockScheme s = block_scheme(scheme);
  const int rows = checked_dim(x.shape(0), "quantize: rows"), cols = checked_dim(x.shape(1), "quantize: cols");
  const BlockQuantized q =
      quantize_blocks(s, std::span<const double>(x.data(), x.size()), rows, cols, axis, {seed, 0, 0});
  py::array_t<double> values({py::ssize_t(rows), py::ssize_t(cols)}), elements({py::ssize_t(rows), py::ssize_t(cols)});
  py::array_t<double> scales({py::ssize_t(q.block_rows), py::ssize_t(q.block_cols)});
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      values.mutable_at(r, c) = q.value(r, c);
      elements.mutable_at(r, c) = q.elements[std::size_t(r) * cols + c];
    }
  std::copy(q.scales.begin(), q.scales.end(), scales.mutable_data());
  py::dict d;
  d["values"] = values, d["elements"] = elements, d["scales"] = scales;
  d["tensor_scale"] = q.tensor_scale, d["tensor_amax"] = q.tensor_amax, d["saturated"] = q.saturated;
  return d;
}

// One tap's metrics as a flat dict (what pandas.DataFrame(rows) takes).
py::dict tap_row(const TapError& t) {
  py::dict d;
    d["layer"] = t.layer, d["tap"] = std::string(tap_name(t.tap)), d["rel_fro"] = t.rel_fro, d["max_rel"] = t.max_rel;
    d["mean_rel"] = t.mean_rel, d["median_rel"] = t.median_rel, d["p95_rel"] = t.p95_rel, d["p99_rel"] = t.p99_rel;
    d["elements"] = t.elements, d["nonfinite"] = t.nonfinite, d["overflows"] = t.overflows;
    d["saturations"] = t.saturations, d["ref_fro"] = t.ref_fro;
    if (t.tap == Tap::logits) d["kl_mean"] = t.kl_mean, d["kl_max"] = t.kl_max, d["top1"] = t.top1, d["logit_max_abs"] = t.logit_max_abs;
    if (t.route_flip == t.route_flip)  // a mixture-of-experts layer's ffn and block rows
      d["route_flip"] = t.route_flip, d["route_reorder"] = t.route_reorder, d["route_weight_err"] = t.route_weight_err,
      d["flipped_rel_fro"] = t.flipped_rel_fro, d["kept_rel_fro"] = t.kept_rel_fro;
  return d;
}

// threads > 0: OpenMP threads for this call (results do not depend on it).
void use_threads(int threads) {
  if (threads < 0) throw std::invalid_argument(fmt::format("threads = {} must be >= 0 (0: all cores)", threads));
  if (threads > 0) omp_set_num_threads(threads);
}

py::dict study(const std::string& model, const std::string& plan_name, std::uint64_t seed, int batch,
               const std::string& reference, bool check, const std::string& input, int threads) {
  use_threads(threads);
  ModelConfig cfg = load_model_config(model);
  if (!input.empty()) use_input_file(cfg, input);
  const PrecisionPlan plan = load_plan(plan_name);
  StudyOptions o;
  o.seed = seed, o.batch = batch, o.reference = reference, o.check_reference = check;
  StudyResult r;
  {
    py::gil_scoped_release release;
    r = run_study(cfg, plan, o);
  }
  py::list taps;
  for (const TapError& t : r.taps) taps.append(tap_row(t));
  py::dict ref;
  ref["kind"] = r.reference.kind, ref["bits"] = r.reference.bits, ref["check_bits"] = r.reference.check_bits;
  ref["error"] = r.reference.fro_rel, ref["adequate"] = r.reference.adequate;
  py::dict out;
  out["model"] = cfg.name, out["plan"] = plan.name, out["u"] = plan.unit_roundoff(), out["taps"] = taps;
  out["reference"] = ref;
  out["seconds"] = py::dict(py::arg("emulated") = r.emulated_seconds, py::arg("reference") = r.reference_seconds,
                            py::arg("check") = r.check_seconds);
  return out;
}

py::list compare(const std::string& model, const std::vector<std::string>& plan_names, std::uint64_t seed, int batch,
                 const std::string& reference, bool check, const std::string& input, int threads) {
  use_threads(threads);
  if (plan_names.empty()) throw std::invalid_argument("compare: give at least one plan");
  ModelConfig cfg = load_model_config(model);
  if (!input.empty()) use_input_file(cfg, input);
  std::vector<PrecisionPlan> plans;
  for (const std::string& p : plan_names) plans.push_back(load_plan(p));
  StudyOptions o;
  o.seed = seed, o.batch = batch, o.reference = reference, o.check_reference = check;
  std::vector<StudyResult> results;
  {
    py::gil_scoped_release release;
    results = compare_plans(cfg, plans, o);
  }
  py::list rows;
  for (std::size_t i = 0; i < plans.size(); ++i)
    for (const TapError& t : results[i].taps) {
      py::dict d = tap_row(t);
      d["model"] = cfg.name, d["plan"] = plans[i].name, d["u"] = plans[i].unit_roundoff(), d["seed"] = seed;
      d["reference"] = results[i].reference.kind, d["reference_adequate"] = results[i].reference.adequate;
      rows.append(d);
    }
  return rows;
}

}  // namespace

PYBIND11_MODULE(lpsim, m) {
  m.doc() = "lpsim: emulated low precision for forward-error studies of transformers (the C++ core)";
  m.attr("__version__") = LPSIM_VERSION;
  py::register_exception<ConfigError>(m, "ConfigError", PyExc_ValueError);
  py::register_exception<FormatError>(m, "FormatError", PyExc_ValueError);
  m.def("round", &round_values, py::arg("x"), py::arg("format"), py::arg("mode") = "rne", py::arg("seed") = 0,
        "x rounded to the format (fp16, bf16, e4m3, e5m2:sat, p5:emax3, ...) in the mode (rne, rz, ru, rd, rna, odd, "
        "sr), any shape. float32 in gives float32 out (formats wider than float32 are rounded through double and "
        "stored as float32); any other real array (float64, integers, bools) gives float64 out, exact. Stochastic "
        "rounding draws element i's bits from (seed, i), so results do not depend on threads or shape.");
  m.def("bits", &bits_of, py::arg("x"), py::arg("format"), py::arg("mode") = "rne", py::arg("seed") = 0,
        "the bit patterns of x rounded to the format (as round), any shape, as uint8 (formats of up to 8 bits), "
        "uint16, uint32 or uint64: sign, exponent and mantissa fields as the format lays them out (e4m3: OCP "
        "E4M3FN, so lpsim.bits(x, 'e4m3') equals ml_dtypes' x.astype(float8_e4m3fn).view(uint8)).");
  m.def("from_bits", &from_bits, py::arg("b"), py::arg("format"),
        "the values (float64) that the bit patterns b stand for in the format, any shape; NaN patterns give NaN.");
  m.def("formats", [] {
    std::vector<std::string> names;
    for (const Format& f : named_formats()) names.push_back(f.name);
    return names;
  }, "the named formats");
  m.def("gemm", &gemm_values, py::arg("a"), py::arg("b"), py::arg("policy"), py::arg("round_inputs") = true,
        "a @ b (m x k times k x n, real arrays) under an accumulation policy: a preset such as fp16-fp32acc or "
        "fp16-tc, or 'in=bf16,acc=fp32,...' (`lpsim dot --list`). The operands are first rounded to the policy's "
        "input format with round-to-nearest-even, as `lpsim dot` does; with round_inputs=False they must already "
        "be values of that format (ValueError otherwise). Returns float64 values of the policy's output format.");
  m.def("dot", &dot_value, py::arg("a"), py::arg("b"), py::arg("policy"), py::arg("round_inputs") = true,
        "the dot product of two real vectors under an accumulation policy; operands rounded to the policy's input "
        "format first unless round_inputs=False (see gemm)");
  m.def("quantize", &quantize_values, py::arg("x"), py::arg("scheme"), py::arg("axis") = 1, py::arg("seed") = 0,
        "block-scaled quantisation (mxfp8-e4m3, mxfp4, nvfp4, fp8-1x128, ...) along axis; values are dequantised; "
        "seed: the random stream of the stochastic (-sr) schemes");
  m.def("block_schemes", [] {
    std::vector<std::string> names;
    for (const BlockScheme& s : block_schemes()) names.push_back(s.name);
    return names;
  }, "the block-scaling schemes");
  m.def("study", &study, py::arg("model"), py::arg("plan") = "fp32", py::arg("seed") = 0, py::arg("batch") = 0,
        py::arg("reference") = "auto", py::arg("check") = true, py::arg("input") = "", py::arg("threads") = 0,
        "one forward of a model (models/*.toml or a Hugging Face directory) under a plan against the reference "
        "(auto, mpfr, dd or fp64; check: the reference's own check): a dict with the per-tap errors as `lpsim run` "
        "prints them (taps: a list of dicts), the reference, u and the times. input: a token-id or image file; "
        "threads: OpenMP threads (0: all cores; results do not depend on it).");
  m.def("compare", &compare, py::arg("model"), py::arg("plans"), py::arg("seed") = 0, py::arg("batch") = 0,
        py::arg("reference") = "auto", py::arg("check") = true, py::arg("input") = "", py::arg("threads") = 0,
        "several plans against one reference, as `lpsim compare`: a list of flat rows (model, plan, u, seed, layer, "
        "tap, rel_fro, componentwise statistics, events, KL and top-1 on the logits row), one per plan and tap, "
        "ready for pandas.DataFrame(rows).");
}
