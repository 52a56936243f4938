"""The TVM CPU kernels on every instruction set: compiled for each target (cross-compiling
where this CPU lacks it) the GEMM uses that instruction set's dot product (AVX-512 VNNI zmm
`vpdpbusd`, AVX-VNNI ymm `vpdpbusd`, AVX2 `vpmaddubsw` + `vpmaddwd`, aarch64 `sdot`); and run
on every instruction set this CPU has, the committed golden models give the committed logit
hashes (the default one runs in the rest of the suite)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tvm")

EXPECT = {  # instruction set -> (mnemonics that must appear, that must not)
    "avx512_vnni": ((r"vpdpbusd\s+%?zmm",), ()),
    "avx_vnni": ((r"vpdpbusd\s+%?ymm",), (r"zmm",)),
    "avx2": ((r"vpmaddubsw", r"vpmaddwd"), (r"zmm", r"vpdpbusd")),
    "neon_dot": ((r"\bsdot\b",), ()),
}


@pytest.mark.parametrize("isa", list(EXPECT))
def test_gemm_compiles_to_the_instruction_sets_dot_product(isa):
    import tvm

    from aq_runtime.kernels.tvm.gemm import _fused_func
    from aq_runtime.kernels.tvm.target import llvm_target
    f = _fused_func(64, 1, 4, 1, 64, "uint8", isa=isa)
    asm = tvm.compile(tvm.IRModule({"main": f}), target=llvm_target(isa)).mod.inspect_source("asm")
    must, must_not = EXPECT[isa]
    for pat in must:
        assert re.search(pat, asm), (isa, pat)
    for pat in must_not:
        assert not re.search(pat, asm), (isa, pat)


def test_cpu_features_are_what_the_process_can_execute(monkeypatch):
    """The kernels' instruction set follows LLVM's host detection (CPUID and the register state
    the OS enables, as numba, ONNX Runtime and PyTorch see it), not /proc/cpuinfo: under
    valgrind, an AVX2-only CPU on any x86-64 host, /proc/cpuinfo still lists the host's
    AVX-512. /proc/cpuinfo only where LLVM cannot tell."""
    import llvmlite.binding as llvm

    from aq_runtime.kernels.tvm import target

    def flags(features):
        monkeypatch.setattr(llvm, "get_host_cpu_features", features)
        target.cpu_flags.cache_clear()
        try:
            return target.cpu_flags(), target.supported_isas()
        finally:
            target.cpu_flags.cache_clear()

    haswell = {"avx": True, "avx2": True, "fma": True, "avx512f": False, "avx512vnni": False}
    assert flags(lambda: haswell) == (frozenset({"avx2", "fma"}), ["avx2"])
    zen4 = dict(haswell, avx512f=True, avx512bw=True, avx512vl=True, avx512vnni=True)
    assert flags(lambda: zen4)[1] == ["avx512_vnni", "avx2"]
    assert flags(lambda: dict(haswell, avxvnni=True))[1] == ["avx_vnni", "avx2"]

    def unknown():
        raise RuntimeError("failed to get host cpu features")
    proc = Path("/proc/cpuinfo")
    if proc.is_file():
        line = next(s for s in proc.read_text().splitlines() if s.startswith(("flags", "Features")))
        assert flags(unknown)[0] == frozenset(line.split(":", 1)[1].split())


@pytest.mark.tvm
def test_every_instruction_set_of_this_cpu_gives_the_golden_logits(tmp_path):
    from aq_runtime.kernels.tvm.target import isa, supported_isas
    others = [i for i in supported_isas() if i != isa()]
    if not others:
        pytest.skip(f"this CPU runs one instruction set ({isa()}): test_golden_logits ran on it")
    tests = Path(__file__).parent
    for name in others:
        env = dict(os.environ, AQ_TVM_ISA=name, AQ_CACHE_DIR=str(tmp_path / name))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(tests / "test_golden_logits.py")], capture_output=True,
                           text=True, env=env, cwd=tests.parent, timeout=900)
        assert r.returncode == 0, (name, r.stdout[-3000:])


@pytest.mark.slow  # about 3 minutes; CI keeps the AVX2 kernels' golden logits and unit tests
@pytest.mark.tvm
def test_the_backend_tests_pass_on_the_avx2_kernels(tmp_path):
    """An AVX2-only CPU, as far as this CPU can play it: tests/test_backends.py (every
    backend == reference on Lite0 with 1..16-bit and ternary layers, B0, digits, random graphs,
    every kernel candidate forced) in a process whose tvm kernels are built for AVX2 alone
    (AQ_TVM_ISA=avx2: AVX2 + FMA, no AVX-512, no VNNI), whatever this CPU's fastest set."""
    from aq_runtime.kernels.tvm.target import isa
    if isa() == "avx2":
        pytest.skip("this CPU's own kernels are the AVX2 ones: tests/test_backends.py ran on them")
    tests = Path(__file__).parent
    env = dict(os.environ, AQ_TVM_ISA="avx2", AQ_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tests / "test_backends.py")], capture_output=True, text=True,
                       env=env, cwd=tests.parent, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout, r.stdout[-1000:]


@pytest.mark.tvm
def test_256_bit_int16_kernels_are_exact():
    """The paths of the 256-bit instruction sets (AVX2, AVX-VNNI) that take int16 weights, run
    on this CPU whatever its fastest instruction set: the GEMM on codes too wide for one byte
    digit (`word`: vpmaddwd on pairs of activations) and the depthwise conv summing taps in
    pairs; extreme codes (the most negative 16-bit weight, 0/255 activations), odd sizes,
    stride 2 and borders, == int64."""
    import numpy as np
    import tvm

    from aq_runtime.kernels.tvm.buffers import aligned_zeros
    from aq_runtime.kernels.tvm.depthwise import depthwise_fn, padded_fn, pair_weights
    from aq_runtime.kernels.tvm.gemm import _fused_func, pack_fused
    from aq_runtime.kernels.tvm.layout import pad_fn
    from aq_runtime.kernels.tvm.target import llvm_target, supported_isas
    from aq_runtime.kernels.tvm.vec_requant import float_params
    from aq_runtime.quant import requantize
    rng = np.random.default_rng(11)

    def params(c, vmax):
        mult = rng.integers(2 ** 14, 2 ** 15, c)
        shift = np.full(c, int(np.ceil(np.log2(vmax))) + 15 - 7)  # codes spread over 0..255
        z, lo, hi = rng.integers(0, 30, c), rng.integers(0, 3, c), rng.integers(250, 256, c)
        return mult, shift, z, lo, hi

    for m, k, o, wbits in [(1, 4, 1, 16), (5, 12, 17, 12), (13, 72, 130, 9)]:
        w = rng.integers(-(2 ** (wbits - 1)), 2 ** (wbits - 1), (o, k))
        w[0, 0] = -(2 ** (wbits - 1))
        packed = pack_fused(w.astype(np.int16), o, 1)
        nbn, cv = packed.shape[0], packed.shape[2]
        c16, ncol = o + (-o % 16), nbn * cv * 16
        a = aligned_zeros((m + (-m % 4), k), np.uint8)
        a[:m] = rng.choice([0, 255, 1, 128, 77], size=(m, k))
        v = a[:m].astype(np.int64) @ w.T
        mult, shift, z, lo, hi = params(o, np.abs(v).max() + 1)
        for isa in [i for i in ("avx2", "avx_vnni") if i in supported_isas()]:
            f = tvm.compile(tvm.IRModule({"main": _fused_func(k, nbn, cv, 1, c16, "uint8",
                                                              isa=isa, word=True)}),
                            target=llvm_target(isa))["main"]
            out = aligned_zeros((a.shape[0], c16), np.uint8)
            f(a, packed, aligned_zeros((ncol,), np.int32),
              *float_params(mult, shift, z, lo, hi, ncol), out)
            assert np.array_equal(out[:m, :o], requantize(v, mult, shift, z, lo, hi)), (
                isa, m, k, o)

    # strips of inner pixels (depthwise.STRIP) with stride 1 and 2, an overlapped last strip,
    # 5x5, and kernels of 1 and 2 rows (no pair / no odd row)
    for h, c, kk, s, pt, pb in [(9, 16, 3, 1, 1, 1), (10, 32, 5, 2, 1, 2), (7, 48, 3, 2, 0, 1),
                                (18, 16, 3, 1, 1, 1), (23, 32, 5, 2, 2, 2), (18, 16, 3, 2, 0, 1),
                                (6, 16, 1, 1, 0, 0), (9, 16, 2, 1, 0, 1)]:
        ho = (h + pt + pb - kk) // s + 1
        x = aligned_zeros((h * h + (-(h * h) % 4), c), np.uint8)
        x[:h * h] = rng.choice([0, 255, 3, 200], size=(h * h, c))
        wt = aligned_zeros((kk, kk, c), np.int32)
        wt[...] = rng.integers(-2 ** 15, 2 ** 15, (kk, kk, c))
        wt[0, 0, 0] = -2 ** 15
        zin = rng.integers(0, 256, c)
        wz = aligned_zeros((kk, kk, c), np.int32)
        wz[...] = wt * zin
        xp = np.pad(x[:h * h].reshape(h, h, c).astype(np.int64), ((pt, pb), (pt, pb), (0, 0)))
        xp[:pt], xp[h + pt:], xp[:, :pt], xp[:, h + pt:] = zin, zin, zin, zin
        v = sum(xp[i:i + s * ho:s, j:j + s * ho:s] * wt[i, j] for i in range(kk)
                for j in range(kk)).reshape(-1, c)
        mult, shift, z, lo, hi = params(c, np.abs(v).max() + 1)
        want = requantize(v, mult, shift, z, lo, hi)
        q, lh = float_params(mult, shift, z, lo, hi, c)
        b, wp = aligned_zeros((c,), np.int32), pair_weights(wt, c)
        out = aligned_zeros((ho * ho + (-(ho * ho) % 4), c), np.uint8)
        depthwise_fn(h, h, kk, kk, s, s, pt, pt, ho, ho, c, pairs=True)(
            x, wt, wz, wp, b, q, lh, out, 1)
        assert np.array_equal(out[:ho * ho], want), ("inline", h, c, kk, s)
        zp = aligned_zeros((c,), np.uint8)
        zp[:] = zin
        xpad = aligned_zeros((1, h + pt + pb, h + pt + pb, c), np.uint8)
        pad_fn(h, h, c, pt, pb, pt, pb)(x, zp, xpad)
        out[...] = 0
        padded_fn(h + pt + pb, h + pt + pb, kk, kk, s, s, c, pairs=True)(
            xpad.reshape(-1, c), wt, wz, wp, b, q, lh, out, 1)
        assert np.array_equal(out[:ho * ho], want), ("padded", h, c, kk, s)


@pytest.mark.tvm
def test_avx2_grouped_dot_is_exact_at_its_bound():
    """AVX2 sums 2 or 4 groups of 4 k in int16 before each vpmaddwd (dot.dot_grouped) for
    weight codes within +-32 / +-16: exact up to the bound, where every activation is 255 and
    every weight at the limit (int16 sums of exactly +-32640), and on random codes; the group
    size follows the codes (dot.group_size)."""
    import numpy as np
    import tvm

    from aq_runtime.kernels.tvm.buffers import aligned_zeros
    from aq_runtime.kernels.tvm.dot import group_size
    from aq_runtime.kernels.tvm.gemm import _fused_func, pack_fused
    from aq_runtime.kernels.tvm.target import llvm_target
    from aq_runtime.kernels.tvm.vec_requant import float_params
    from aq_runtime.quant import requantize
    assert [group_size("avx2", a, 8) for a in (64, 33, 32, 17, 16, 1)] == [1, 1, 2, 2, 4, 4]
    assert group_size("avx2", 16, 6) == 2 and group_size("avx512_vnni", 16, 8) == 1
    rng = np.random.default_rng(3)
    for g, m, k, o in [(2, 8, 32, 16), (4, 8, 64, 40), (4, 13, 144, 24), (2, 5, 24, 17)]:
        lim = 64 // g
        for kind in ("bound", "random"):
            if kind == "bound":
                w = np.where(rng.random((o, k)) < 0.5, lim, -lim)
                w[:, :] = w[:, :1]  # every weight of a channel alike: the largest int16 sums
                x = np.full((m, k), 255)
            else:
                w, x = rng.integers(-lim, lim + 1, (o, k)), rng.choice([0, 1, 128, 255], (m, k))
            packed = pack_fused(w.astype(np.int8), o, 1)
            nbn, cv = packed.shape[0], packed.shape[2]
            c16, ncol = o + (-o % 16), nbn * cv * 16
            a = aligned_zeros((m + (-m % 4), k), np.uint8)
            a[:m] = x
            v = x.astype(np.int64) @ w.T
            mult = np.full(o, 2 ** 14)  # codes z + v / 2^(shift - 14) spread over 0..255
            shift = np.full(o, 14 + int(np.ceil(np.log2(np.abs(v).max() / 127 + 1))))
            z, lo, hi = np.full(o, 128), np.zeros(o, np.int64), np.full(o, 255)
            f = tvm.compile(tvm.IRModule({"main": _fused_func(k, nbn, cv, 1, c16, "uint8",
                                                              isa="avx2", group=g)}),
                            target=llvm_target("avx2"))["main"]
            out = aligned_zeros((a.shape[0], c16), np.uint8)
            f(a, packed, aligned_zeros((ncol,), np.int32),
              *float_params(mult, shift, z, lo, hi, ncol), out)
            assert np.array_equal(out[:m, :o], requantize(v, mult, shift, z, lo, hi)), (
                g, m, k, o, kind)


@pytest.mark.tvm
def test_full_range_requantization_saturates_exactly():
    """`full` requantization (every channel clamps to 0..255: the saturating packs are the
    clamp, vec_requant.full_range) on every instruction set of this CPU: sums far below 0 and
    far above 255, values in (-1, 0) (truncation and floor differ there) and ties, == int64."""
    import numpy as np
    import tvm

    from aq_runtime.kernels.tvm.buffers import aligned_zeros
    from aq_runtime.kernels.tvm.dot import digit_limit
    from aq_runtime.kernels.tvm.gemm import _fused_func, pack_fused
    from aq_runtime.kernels.tvm.target import llvm_target, supported_isas
    from aq_runtime.kernels.tvm.vec_requant import float_params, full_range
    from aq_runtime.quant import requantize
    assert full_range(np.zeros(3), np.full(3, 255)) and not full_range(np.zeros(3), [255, 254, 255])
    rng = np.random.default_rng(12)
    m, k, o = 37, 8, 40
    for isa in supported_isas():
        lim = digit_limit(isa)
        w = rng.integers(-lim, lim + 1, (o, k))
        a = aligned_zeros((m + (-m % 4), k), np.uint8)
        a[:m] = rng.integers(0, 256, (m, k))
        a[0], a[1] = 0, 255
        bias = rng.integers(-3000, 3000, o)
        v = a[:m].astype(np.int64) @ w.T + bias
        # factors that spread the sums from far below 0 to far above 255, and 1/2 (ties)
        mult = np.full(o, 2 ** 15)
        shift = rng.integers(15, 24, o)
        shift[:4] = 16
        z = rng.integers(0, 256, o)
        lo, hi = np.zeros(o, np.int64), np.full(o, 255)
        want = requantize(v, mult, shift, z, lo, hi)
        assert (want == 0).any() and (want == 255).any() and ((want > 0) & (want < 255)).any()
        packed = pack_fused(w.astype(np.int8), o, 1)
        nbn, cv = packed.shape[0], packed.shape[2]
        ncol, c16 = nbn * cv * 16, o + (-o % 16)
        b = aligned_zeros((ncol,), np.int32)
        b[:o] = bias
        f = tvm.compile(tvm.IRModule({"main": _fused_func(k, nbn, cv, 1, c16, "uint8", isa=isa,
                                                          full=True)}),
                        target=llvm_target(isa))["main"]
        out = aligned_zeros((a.shape[0], c16), np.uint8)
        f(a, packed, b, *float_params(mult, shift, z, lo, hi, ncol), out)
        assert np.array_equal(out[:m, :o], want), isa


@pytest.mark.tvm
def test_depthwise_rows_kernel_is_exact_on_every_isa():
    """depthwise.rows_fn (input rows widened once per output row, kernel rows summed in pairs
    by `vpmaddwd`) compiled for every instruction set of this CPU: extreme codes (the most
    negative 16-bit weight, 0/255 activations), zero points in the padding, stride 1 and 2,
    3x3, 5x5, 2x2 and 1x1 kernels, asymmetric padding, == int64."""
    import numpy as np
    import tvm

    from aq_runtime.kernels.tvm.buffers import aligned_zeros
    from aq_runtime.kernels.tvm.depthwise import _rows_func, row_weights
    from aq_runtime.kernels.tvm.target import llvm_target, supported_isas
    from aq_runtime.kernels.tvm.vec_requant import float_params
    from aq_runtime.quant import requantize
    rng = np.random.default_rng(13)
    for h, c, kk, s, pt, pb in [(9, 16, 3, 1, 1, 1), (12, 32, 5, 2, 1, 2), (7, 48, 3, 2, 0, 1),
                                (11, 16, 5, 1, 2, 2), (6, 16, 2, 1, 0, 1), (5, 16, 1, 1, 0, 0)]:
        ho = (h + pt + pb - kk) // s + 1
        x = aligned_zeros((h * h + (-(h * h) % 4), c), np.uint8)
        x[:h * h] = rng.choice([0, 255, 3, 200], size=(h * h, c))
        wt = rng.integers(-2 ** 15, 2 ** 15, (kk, kk, c))
        wt[0, 0, 0] = -2 ** 15
        zin = rng.integers(0, 256, c)
        xp = np.pad(x[:h * h].reshape(h, h, c).astype(np.int64), ((pt, pb), (pt, pb), (0, 0)))
        xp[:pt], xp[h + pt:], xp[:, :pt], xp[:, h + pt:] = zin, zin, zin, zin
        v = sum(xp[i:i + s * ho:s, j:j + s * ho:s] * wt[i, j] for i in range(kk)
                for j in range(kk)).reshape(-1, c)
        mult = rng.integers(2 ** 14, 2 ** 15, c)
        shift = np.full(c, int(np.ceil(np.log2(np.abs(v).max() + 1))) + 15 - 7)
        for full in (False, True):
            z = rng.integers(0, 30, c)
            lo, hi = (0, 255) if full else (rng.integers(0, 3, c), rng.integers(250, 256, c))
            lo, hi = np.broadcast_to(lo, c), np.broadcast_to(hi, c)
            want = requantize(v, mult, shift, z, lo, hi)
            wpr, wl = row_weights(wt, c)
            zp = aligned_zeros((c,), np.uint8)
            zp[:] = zin
            for isa in supported_isas():
                f = tvm.compile(tvm.IRModule({"main": _rows_func(
                    h, h, kk, kk, s, s, pt, pt, ho, ho, c, full, isa)}),
                    target=llvm_target(isa))["main"]
                out = aligned_zeros((ho * ho + (-(ho * ho) % 4), c), np.uint8)
                f(x, wpr, wl, zp, aligned_zeros((c,), np.int32),
                  *float_params(mult, shift, z, lo, hi, c), out, 1)
                assert np.array_equal(out[:ho * ho], want), (isa, h, kk, s, full)
