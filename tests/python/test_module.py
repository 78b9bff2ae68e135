"""The Python module against oracles that are not lpsim: NumPy's float16 casts, PyTorch's bfloat16 casts, exact
rational arithmetic (fractions), and the OCP MX definition written out by hand."""
import math
import re
import os
from fractions import Fraction

import numpy as np
import pytest

import lpsim

SOURCE = os.environ.get("LPSIM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def spread(n, lo, hi, seed):
    """Random signs and significands, exponents spread over [lo, hi] (subnormals and overflow included)."""
    g = np.random.default_rng(seed)
    return g.choice([-1.0, 1.0], n) * (1 + g.random(n)) * np.exp2(g.integers(lo, hi, n).astype(float))


def test_round_fp16_is_numpys_cast():
    x = spread(200000, -30, 20, 1)
    with np.errstate(over="ignore"):  # values beyond 65504 become inf, which is the point
        want = x.astype(np.float16).astype(np.float64)
    np.testing.assert_array_equal(lpsim.round(x, "fp16"), want)


def test_round_toward_zero_up_down_against_nextafter():
    x = spread(50000, -26, 15, 2)
    x = x[np.abs(x) < 65504]
    near = x.astype(np.float16)
    beyond = np.abs(near.astype(np.float64)) > np.abs(x)
    toward_zero = np.where(beyond, np.nextafter(near, np.float16(0)), near).astype(np.float64)
    np.testing.assert_array_equal(lpsim.round(x, "fp16", "rz"), toward_zero)
    up = np.where(near.astype(np.float64) < x, np.nextafter(near, np.float16(np.inf)), near).astype(np.float64)
    np.testing.assert_array_equal(lpsim.round(x, "fp16", "ru"), up)
    down = np.where(near.astype(np.float64) > x, np.nextafter(near, np.float16(-np.inf)), near).astype(np.float64)
    np.testing.assert_array_equal(lpsim.round(x, "fp16", "rd"), down)


def test_round_bf16_is_torchs_cast():
    torch = pytest.importorskip("torch")
    x = spread(200000, -140, 120, 3).astype(np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float64).numpy()
    np.testing.assert_array_equal(lpsim.round(x, "bf16"), want)


def test_stochastic_rounding_is_unbiased_and_seeded():
    x = np.full(20000, 1 + 2.0**-12)  # a quarter of fp16's ulp above 1
    r = lpsim.round(x, "fp16", "sr", seed=5)
    up = np.mean(r > 1)
    assert set(np.unique(r)) <= {1.0, 1 + 2.0**-10}
    assert abs(up - 0.25) < 4 * math.sqrt(0.25 * 0.75 / x.size)
    np.testing.assert_array_equal(r, lpsim.round(x, "fp16", "sr", seed=5))
    assert not np.array_equal(r, lpsim.round(x, "fp16", "sr", seed=6))


def test_round_keeps_the_shape_and_names_a_bad_format():
    x = np.arange(12.0).reshape(3, 4) / 7
    assert lpsim.round(x, "e4m3").shape == (3, 4)
    with pytest.raises(ValueError, match="e9m9"):
        lpsim.round(x, "e9m9x")
    assert "e4m3" in lpsim.formats()


def test_dot_half_accumulator_against_a_numpy_hfma_loop():
    g = np.random.default_rng(4)
    a = g.standard_normal(3000).astype(np.float16).astype(np.float64)
    b = g.standard_normal(3000).astype(np.float16).astype(np.float64)
    s = np.float16(0)
    for x, y in zip(a, b):  # each partial sum the exact s + a b rounded once to half
        s = np.float16(float(s) + x * y)
    assert lpsim.dot(a, b, "fp16-fp16acc") == float(s)


def test_gemm_exact_policy_against_fractions():
    g = np.random.default_rng(5)
    a, b = g.standard_normal((3, 40)), g.standard_normal((40, 2))
    b[:, 1] = -b[:, 1] * 1e-9
    c = lpsim.gemm(a, b, "exact")
    for i in range(3):
        for j in range(2):
            want = float(sum(Fraction(x) * Fraction(y) for x, y in zip(a[i], b[:, j])))
            assert c[i, j] == want
    with pytest.raises(ValueError):
        lpsim.gemm(a, b.T, "exact")


def e2m1_rne(v):
    """Nearest e2m1 value, ties to the even code, saturating at 6 (OCP MX v1.0)."""
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    m = min(abs(v), 6.0)
    best = min(range(8), key=lambda c: (abs(grid[c] - m), c % 2))
    return math.copysign(grid[best], v)


def test_quantize_mxfp4_against_the_ocp_definition():
    g = np.random.default_rng(6)
    x = g.standard_normal((3, 64)) * np.exp2(g.integers(-6, 6, (3, 1)))
    q = lpsim.quantize(x, "mxfp4", axis=1)
    assert q["scales"].shape == (3, 2)
    for r in range(3):
        for blk in range(2):
            block = x[r, 32 * blk:32 * (blk + 1)]
            scale = 2.0 ** (math.floor(math.log2(np.max(np.abs(block)))) - 2)  # emax of e2m1 is 2
            assert q["scales"][r, blk] == scale
            want = [e2m1_rne(v / scale) * scale for v in block]
            np.testing.assert_array_equal(q["values"][r, 32 * blk:32 * (blk + 1)], want)


def test_quantize_mxfp4_sr_is_unbiased_between_the_ocp_neighbours():
    # The stochastic scheme: each element is one of the two e2m1 neighbours of x / scale (the OCP grid written out
    # here), and the mean over seeds approaches x (5 sigma).
    x = np.array([[0.3, 1.7, -2.2, 5.1, 0.9, -0.05] + [0.0] * 26])
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    draws = [lpsim.quantize(x, "mxfp4-sr", axis=1, seed=s)["values"][0] for s in range(3000)]
    scale = 2.0 ** (math.floor(math.log2(5.1)) - 2)
    for i in range(6):
        m = abs(x[0, i]) / scale
        lo = max(g for g in grid if g <= m)
        hi = min(g for g in grid if g >= m)
        got = {abs(d[i]) / scale for d in draws}
        assert got <= {lo, hi}
        p = 0.0 if hi == lo else (m - lo) / (hi - lo)
        sigma = (hi - lo) * scale * math.sqrt(p * (1 - p) / len(draws))
        assert abs(np.mean([d[i] for d in draws]) - x[0, i]) <= 5 * sigma + 1e-12


def test_study_errors_sit_where_the_formats_put_them():
    model = os.path.join(SOURCE, "models", "tiny.toml")
    exact = lpsim.study(model, "fp64", reference="mpfr", check=False)
    assert exact["reference"]["kind"] == "mpfr"
    assert all(t["rel_fro"] < 1e-13 for t in exact["taps"])
    bf16 = lpsim.study(model, "autocast-bf16", seed=1)
    u = bf16["u"]
    assert u == 2.0**-8
    assert all(0.1 * u < t["rel_fro"] < 300 * u for t in bf16["taps"])
    assert bf16["reference"]["adequate"]
    with pytest.raises(ValueError, match="autocast-bf16"):
        lpsim.study(model, "autocast-bf61")


def test_inputs_that_cannot_be_honoured_are_refused():
    """Issue 40: an unknown reference ran MPFR under its name, a complex array lost its imaginary part, a string
    array was parsed as numbers, and a 2^32 + 3 row count became 3."""
    with pytest.raises(ValueError, match="reference 'xyz' is not one of auto, mpfr, dd, fp64"):
        lpsim.study(os.path.join(SOURCE, "models", "tiny.toml"), "fp32", reference="xyz")
    with pytest.raises(TypeError, match="complex"):
        lpsim.round(np.array([1 + 2j]), "fp16")
    with pytest.raises(TypeError, match="dtype <U"):
        lpsim.round(np.array(["1.5", "2"]), "fp16")
    with pytest.raises(TypeError, match="gemm: a has dtype complex"):
        lpsim.gemm(np.ones((2, 2), dtype=complex), np.ones((2, 2)), "fp16-fp32acc")
    with pytest.raises(ValueError, match="gemm: m = 4294967299 is larger"):
        lpsim.gemm(np.empty((2**32 + 3, 0)), np.empty((0, 2)), "fp32")
    np.testing.assert_array_equal(lpsim.round(np.array([True, False]), "fp16"), [1.0, 0.0])  # bools are numbers


def test_dot_and_gemm_round_their_operands_as_the_cli_does():
    """The README's first call: operands that are not fp16 values are rounded to fp16 (NumPy's cast is the oracle
    here) before the policy's products; round_inputs=False keeps the old contract and names the bad value."""
    x = np.random.default_rng(0).standard_normal(1000)
    x16 = x.astype(np.float16).astype(np.float64)
    assert lpsim.dot(x, x, "fp16-fp16acc") == lpsim.dot(x16, x16, "fp16-fp16acc", round_inputs=False)
    np.testing.assert_array_equal(lpsim.gemm(x[None], x[:, None], "fp16-tc"),
                                  lpsim.gemm(x16[None], x16[:, None], "fp16-tc", round_inputs=False))
    with pytest.raises(ValueError, match="is not a value of fp16"):
        lpsim.dot(x, x, "fp16-fp16acc", round_inputs=False)


def test_round_keeps_float32_and_the_module_has_a_version():
    """float32 in, float32 out (NumPy's float16 cast of the float32 values is the oracle); float64 stays float64."""
    x = spread(20000, -20, 14, 7).astype(np.float32).reshape(100, 200)
    y = lpsim.round(x, "fp16")
    assert y.dtype == np.float32 and y.shape == x.shape
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(y, x.astype(np.float16).astype(np.float32))
    assert lpsim.round(x.astype(np.float64), "fp16").dtype == np.float64
    assert re.fullmatch(r"\d+\.\d+\.\d+", lpsim.__version__)


def test_compare_gives_each_plan_the_rows_of_its_own_study():
    """compare: one reference for several plans; each plan's rows are what study() of that plan alone gives."""
    model = os.path.join(SOURCE, "models", "tiny.toml")
    rows = lpsim.compare(model, ["autocast-bf16", "pure-fp16"], reference="fp64", check=False, threads=1)
    for plan in ("autocast-bf16", "pure-fp16"):
        alone = lpsim.study(model, plan, reference="fp64", check=False)["taps"]
        mine = [r for r in rows if r["plan"] == plan]
        assert [(r["layer"], r["tap"], r["rel_fro"]) for r in mine] == [(t["layer"], t["tap"], t["rel_fro"]) for t in alone]
    with pytest.raises(ValueError, match="threads = -1"):
        lpsim.study(model, "fp32", threads=-1)


def test_bits_are_numpys_float16_and_float32_patterns():
    x = spread(20000, -30, 20, 11)
    with np.errstate(over="ignore"):
        want16 = x.astype(np.float16).view(np.uint16)
    got16 = lpsim.bits(x, "fp16")
    assert got16.dtype == np.uint16 and got16.shape == x.shape
    np.testing.assert_array_equal(got16, want16)
    x32 = spread(20000, -140, 120, 12).reshape(100, 200)
    got32 = lpsim.bits(x32, "fp32")
    assert got32.dtype == np.uint32 and got32.shape == (100, 200)
    np.testing.assert_array_equal(got32, x32.astype(np.float32).view(np.uint32))
    back = lpsim.from_bits(got16, "fp16")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(back, x.astype(np.float16).astype(np.float64))


def test_bits_of_e4m3_by_the_ocp_definition():
    # Every one of the 256 patterns decodes as OCP E4M3FN defines it (sign, 4 exponent bits with bias 7, 3 mantissa
    # bits, subnormals at exponent 0, S.1111.111 the only NaN) and encodes back to itself.
    b = np.arange(256, dtype=np.uint8)
    v = lpsim.from_bits(b, "e4m3")
    for p, value in zip(b.tolist(), v.tolist()):
        sign, e, m = -1.0 if p & 0x80 else 1.0, (p >> 3) & 0xF, p & 7
        if e == 0xF and m == 7:
            assert math.isnan(value)
            continue
        want = sign * (m / 8) * 2.0 ** -6 if e == 0 else sign * (1 + m / 8) * 2.0 ** (e - 7)
        assert value == want, (p, value, want)
    finite = ~np.isnan(v)
    np.testing.assert_array_equal(lpsim.bits(v[finite], "e4m3"), b[finite])
    assert lpsim.bits(np.array([0.3]), "e4m3").dtype == np.uint8
    with pytest.raises(ValueError):
        lpsim.bits(np.array([1.0]), "p5:emax20")  # a value set with no bit layout
