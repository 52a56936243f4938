"""Every available backend equals the reference, int32 logits compared with `==`: real models
(digits, B0 with SE and swish tables, Lite0 with mixed bits incl. 1-, 2- and 16-bit channels,
ternary layers) and randomized small graphs (hypothesis)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aq_runtime.bench.graphs import random_graph
from aq_runtime.quant import requantize
from aq_runtime.runtime import Session, available_backends

FAST = [b for b in available_backends() if b != "reference"]


def test_numba_is_available_here():
    assert "numba" in FAST  # a missing backend must not pass silently


def test_listing_the_backends_imports_none_of_them():
    """Each backend's folder says whether it can run here without importing its kernels:
    listing them in a fresh process imports neither TVM, nor its runtime, nor torch."""
    code = ("import sys\nfrom aq_runtime.runtime.backends import backend_report\n"
            "backend_report()\n"
            "print(sorted(m for m in ('tvm', 'tvm_ffi', 'torch') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)


def test_tvm_is_available_where_the_cpu_runs_it():
    """Where the CPU lacks what the tvm backend needs, it says so in one line; elsewhere tvm
    (installed by the test extras) is the first CPU backend "auto" offers."""
    from aq_runtime.kernels.tvm.target import missing_features
    from aq_runtime.runtime.backends import unavailable
    if missing_features():
        assert "AVX2" in unavailable("tvm") and "\n" not in unavailable("tvm")
    else:
        assert [b for b in FAST if b in ("tvm", "numba")][0] == "tvm"


@pytest.mark.tvm
def test_tvm_gemm_edges():
    """The microkernel on odd sizes (M, K, N not multiples of 4/4/64 before padding), extreme
    codes (0/255 activations, the largest weight digits of this instruction set: +-127, or
    +-64 with AVX2), against int64 numpy."""
    from aq_runtime.kernels.tvm.target import isa
    from aq_runtime.kernels.tvm.buffers import aligned_zeros
    from aq_runtime.kernels.tvm.dot import digit_limit
    from aq_runtime.kernels.tvm.gemm import gemm_fn, pack_weights, packed_columns
    rng = np.random.default_rng(0)
    lim = digit_limit(isa())
    for m, k, n in [(1, 1, 1), (5, 3, 65), (7, 33, 10), (64, 256, 128)]:
        w = rng.choice([-lim, lim, 0, 1, -1], size=(n, k)).astype(np.int8)
        packed = pack_weights(w)
        kp, np_ = packed.shape[1] * 4, packed_columns(packed)
        a = aligned_zeros((m + (-m % 4), kp), np.uint8)
        a[:m, :k] = rng.choice([0, 255, 1, 128], size=(m, k))
        c = aligned_zeros((a.shape[0], np_), np.int32)
        gemm_fn(kp, np_)(a, packed, c)
        want = a[:m, :k].astype(np.int64) @ w.astype(np.int64).T
        assert np.array_equal(c[:m, :n], want), (m, k, n)


@pytest.mark.tvm
def test_tvm_requantizing_gemm_edges():
    """The GEMM with the float64 requantization in registers (gemm.fused_fn): odd sizes, 1..3
    base-128 digits, negative sums, clamps inside [0, 255], == the int64 requantize."""
    from aq_runtime.kernels.tvm.target import isa
    from aq_runtime.kernels.tvm.buffers import aligned_zeros
    from aq_runtime.kernels.tvm.dot import digit_limit, takes_words
    from aq_runtime.kernels.tvm.gemm import fused_fn, pack_fused
    from aq_runtime.kernels.tvm.ops import digit_rows
    from aq_runtime.kernels.tvm.vec_requant import float_params
    from aq_runtime.quant.requant import float_exact
    rng = np.random.default_rng(5)
    for m, k, o, wbits in [(1, 1, 1, 8), (5, 3, 17, 12), (7, 33, 40, 16), (13, 70, 130, 5)]:
        w = rng.integers(-(2 ** (wbits - 1)) + 1, 2 ** (wbits - 1), (o, k))
        w[0, 0] = -(2 ** (wbits - 1))  # the most negative code (-32768 at 16 bits)
        rows, ndig = digit_rows(w, digit_limit(isa()), takes_words(isa()))
        packed = pack_fused(rows, o, ndig)
        kp, ncol = packed.shape[1] * 4, packed.shape[0] * packed.shape[2] // ndig * 16
        c16 = o + (-o % 16)
        a = aligned_zeros((m + (-m % 4), kp), np.uint8)
        a[:m, :k] = rng.choice([0, 255, 1, 128, 77], size=(m, k))
        bias = rng.integers(-2 ** 20, 2 ** 20, o)
        mult, shift = rng.integers(2 ** 15, 2 ** 16, o), rng.integers(14, 30, o)
        z, lo, hi = rng.integers(0, 30, o), rng.integers(0, 20, o), rng.integers(200, 256, o)
        v = a[:m, :k].astype(np.int64) @ w.T + bias
        assert float_exact(np.abs(w).sum(1) * 255 + np.abs(bias), mult, shift, z)
        b = aligned_zeros((ncol,), np.int32)
        b[:o] = bias
        out = aligned_zeros((a.shape[0], c16), np.uint8)
        fused_fn(kp, o, ndig, c16, word=rows.dtype == np.int16)(
            a, packed, b, *float_params(mult, shift, z, lo, hi, ncol), out)
        assert np.array_equal(out[:m, :o], requantize(v, mult, shift, z, lo, hi)), (m, k, o)


@pytest.mark.tvm
def test_tvm_int64_paths_where_float64_is_not_exact(lite0_mixed, photos96):
    """Layers whose float64 requantization could round (a huge multiplier here) take the int64
    kernels; the logits still equal the reference."""
    import copy

    g = copy.deepcopy(lite0_mixed)
    dw = next(n for n in g.nodes if n.op == "conv" and n.attrs["groups"] > 1)
    pw = next(n for n in g.nodes if n.op == "conv" and n.attrs["groups"] == 1
              and n.attrs.get("mode") == "int"
              and np.abs(n.arrays["weight"]).sum((1, 2, 3)).max() >= 2 ** 15)
    for n in (dw, pw):  # same factor m / 2^n, with m near 2^31: v*m no longer below 2^53
        n.arrays["mult"] = np.asarray(n.arrays["mult"], np.int64) << 15
        n.arrays["shift"] = np.asarray(n.arrays["shift"], np.int64) + 15
    x = photos96[1][:2]
    s = Session(g, "tvm")
    assert np.array_equal(s.run(x), Session(g, "reference").run(x))
    assert "q" not in s.ops._params[dw] and "fused" not in s.ops._params[pw]


def _check(graph, x):
    want = Session(graph, "reference").run(x)
    for b in FAST:
        got = Session(graph, b).run(x)
        assert got.dtype == np.int32 and got.shape == want.shape
        assert np.array_equal(got, want), b


def test_digits(digits_graph):
    from aq_runtime.models.digits import digits_data
    _check(digits_graph, digits_data()[2][:64])


@pytest.fixture(scope="module")
def photos96():
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
    return crops_of(CALIBRATION_PHOTOS[:2], 96)[0][::4], crops_of(HELDOUT_PHOTOS[:2], 96)[0][:6]


def test_b0_se_swish(photos96):
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.models.registry import build_float_graph
    fg = build_float_graph("efficientnet-b0", 96)
    _check(export_graph(fg, photos96[0], ExportOptions(bits=6, progress=False)), photos96[1])


@pytest.fixture(scope="module")
def lite0_mixed(photos96):
    from aq_runtime.bench.graphs import lite0_mixed_graph
    g = lite0_mixed_graph(photos96[0])
    bits = np.concatenate([n.arrays["wbits"] for n in g.weight_nodes()])
    assert {1, 2, 16} <= set(bits.tolist())
    assert sum(n.attrs["mode"] == "ternary" for n in g.weight_nodes()) == 2
    return g


def test_lite0_mixed_low_and_high_bits_and_ternary(lite0_mixed, photos96):
    _check(lite0_mixed, photos96[1])


@pytest.mark.parametrize("backend,forced", [
    *(pytest.param("tvm", k, marks=pytest.mark.tvm) for k in (
        "gemm", "rows", "fused", "fused-cols", "depthwise", "depthwise-padded", "depthwise-rows")),
    ("numba", "int8"), ("numba", "bitserial")])
def test_every_kernel_candidate_is_exact(backend, forced, lite0_mixed, photos96, monkeypatch):
    """The per-layer timing picks one candidate per layer; here each candidate is forced on every
    layer that has it (Lite0 with 1..16-bit and ternary layers; a graph whose pointwise layer
    has binary weights), and the logits must still equal the reference."""
    from aq_runtime.kernels import choice
    used = []

    def forced_run(chooser, node, shape, cands):
        name = forced if forced in cands else next(iter(cands))
        used.append(name)
        return cands[name]()
    monkeypatch.setattr(choice.Chooser, "run_fastest", forced_run)
    from aq_runtime.bench.graphs import binary_pointwise_graph
    rng = np.random.default_rng(3)
    binary = binary_pointwise_graph(40, 70, 5, 7, seed=3,
                                    abits=lambda r, n: r.integers(1, 9, n))
    for g, x in [(lite0_mixed, photos96[1][:2]),
                 (binary, rng.integers(0, 256, (3, 5, 7, 70), dtype=np.uint8))]:
        assert np.array_equal(Session(g, backend).run(x), Session(g, "reference").run(x))
    assert forced in used




@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2 ** 32 - 1).map(random_graph))
def test_random_graphs(case):
    g, x = case
    _check(g, x)


def test_bitserial_pointwise_equals_int_math():
    """AND + popcount on bit-planes == int64 matmul + requantization, for 1-bit {-1, +1},
    2- and 3-bit weight codes, channel counts across word boundaries, activations of 1..8 bits."""
    from aq_runtime.kernels.numba_cpu import bitserial
    from aq_runtime.quant import requantize
    rng = np.random.default_rng(0)
    for n, c, p, o, wmax, abits in [(1, 1, 1, 1, 1, 1), (2, 63, 5, 3, 1, 8), (1, 64, 7, 4, 2, 3),
                                    (3, 65, 9, 5, 3, 2), (1, 200, 11, 16, 3, 8)]:
        w = rng.integers(-wmax, wmax + 1, (o, c))
        if wmax == 1:
            w[w == 0] = 1  # binary weights
        x = rng.integers(0, 1 << abits, (n, c, p)).astype(np.int32)
        x[0, :, 0] = (1 << abits) - 1  # the largest code present
        bias = rng.integers(-500, 500, o)
        mult = rng.integers(1 << 15, 1 << 16, o)
        shift = rng.integers(10, 20, o)
        z, lo, hi = rng.integers(0, 20, o), np.zeros(o, np.int64), np.full(o, 255)
        planes, off = bitserial.weight_planes(w)
        got = bitserial.pointwise(x, planes, off, bias, mult, shift, z, lo, hi)
        acc = np.einsum("oc,ncp->nop", w, x.astype(np.int64))
        want = requantize(acc + bias[None, :, None], mult[None, :, None], shift[None, :, None],
                          z[None, :, None], lo[None, :, None], hi[None, :, None])
        assert np.array_equal(got, want), (n, c, p, o, wmax, abits)


@pytest.mark.tvm
def test_tvm_batch_sizes_in_one_session(lite0_mixed, photos96, monkeypatch):
    """One session at batch 1, then 3, then 1 again: every conv keeps to the backend's own
    kernels (timed per input shape; never the NCHW fallback, which Lite0 does not need) and the
    logits equal the reference each time."""
    from aq_runtime.kernels.tvm.ops import TvmCpuOps

    def no_fallback(*a):
        raise AssertionError("a Lite0 conv took the NCHW Numba fallback")
    monkeypatch.setattr(TvmCpuOps, "_fallback_conv", no_fallback)
    s, ref = Session(lite0_mixed, "tvm"), Session(lite0_mixed, "reference")
    for n in (1, 3, 1):
        x = photos96[1][:n]
        assert np.array_equal(s.run(x), ref.run(x)), n


def test_numba_picks_bitserial_or_int8_by_timing_and_remembers(tmp_path, monkeypatch):
    """A pointwise layer with 1-bit weights: the numba backend times both kernels on the first
    run, keeps the faster, writes the choice to the cache, and a new session reads it back;
    the logits equal the reference either way."""
    from aq_runtime.kernels import choice
    monkeypatch.setenv("AQ_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(choice, "_disk", None)
    from aq_runtime.bench.graphs import binary_pointwise_graph
    rng = np.random.default_rng(0)
    g = binary_pointwise_graph(96, 130, 12, 12)
    x = rng.integers(0, 256, (2, 12, 12, 130), dtype=np.uint8)
    want = Session(g, "reference").run(x)
    s = Session(g, "numba")
    assert np.array_equal(s.run(x), want)
    picked = s.ops.kernel_choice(g.node("pw"))
    assert picked in ("int8", "bitserial")
    assert list(json.loads(choice.choices_file().read_text()).values()) == [picked]
    monkeypatch.setattr(choice, "_disk", None)  # a new process: read back, not measured

    def no_measuring(*a):
        raise AssertionError("measured again instead of reading the cache")
    monkeypatch.setattr(choice, "_remember", no_measuring)
    g2 = binary_pointwise_graph(96, 130, 12, 12)
    s2 = Session(g2, "numba")
    assert np.array_equal(s2.run(x), want)
    assert s2.ops.kernel_choice(g2.node("pw")) == picked


def test_a_new_kernel_version_is_timed_again(monkeypatch):
    """A backend's remembered kernel choices are keyed by its KERNEL_VERSION too (the tvm
    backend registers compiled.VERSION): changed kernels are timed again, not shadowed."""
    from aq_runtime.kernels import choice
    from aq_runtime.bench.graphs import binary_pointwise_graph
    node = binary_pointwise_graph(16, 16, 4, 4).node("pw")
    monkeypatch.setitem(choice.KERNEL_VERSION, "x", 1)
    k1 = choice._key("x", node, (4, 16), ("a", "b"))
    assert choice._key("x", node, (4, 16), ("a", "b")) == k1
    monkeypatch.setitem(choice.KERNEL_VERSION, "x", 2)
    assert choice._key("x", node, (4, 16), ("a", "b")) != k1


def test_auto_picks_the_backend_measured_fastest(digits_graph, tmp_path, monkeypatch):
    """`auto` = what aq-bench measured fastest for this model here (per batch size), when that
    backend is available; else the registry's first available backend."""
    from aq_runtime.runtime import fastest
    monkeypatch.setenv("AQ_CACHE_DIR", str(tmp_path))
    default = available_backends()[0]
    assert Session(digits_graph).backend_name == default
    fastest.record(digits_graph.digest(), {1: "reference", 32: "numba"})
    assert Session(digits_graph, batch_size=8).backend_name == "reference"
    assert Session(digits_graph, batch_size=64).backend_name == "numba"
    fastest.record(digits_graph.digest(), {1: "no-such-backend"})
    assert Session(digits_graph).backend_name == default
