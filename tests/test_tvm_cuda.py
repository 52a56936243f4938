"""The tvm-cuda backend without a GPU: its TE requantization equals quant.requant's functions
value by value; the very same scheduled loops (one thread per output, register accumulators,
predicated tails), compiled for the CPU instead of binding GPU threads, give int32 logits `==`
the reference on the digits CNN, EfficientNet-B0 (SE, swish tables), a graph with grouped /
strided / asymmetrically padded convs, a ternary conv and pools, and random small graphs; and
the CUDA code generated for Lite0 compiles with nvcc. (On a GPU, benchmarks/gpu_check.py runs
the exactness checks there.)"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aq_runtime.export.options import ExportOptions
from aq_runtime.export.pipeline import export_graph
from aq_runtime.models.registry import build_float_graph
from aq_runtime.quant.requant import requantize_product_one, requant_one
from aq_runtime.runtime import Session
from aq_runtime.kernels.executor import execute

tvm = pytest.importorskip("tvm")
from aq_runtime.kernels.tvm_cuda.ops import TvmCudaOps  # noqa: E402
from aq_runtime.kernels.tvm_cuda.compute import requantize_product_expr, requant_expr  # noqa: E402


def test_requant_expressions_equal_the_one_definition():
    from tvm import te
    rng = np.random.default_rng(0)
    n = 4000
    acc = rng.integers(-2 ** 31, 2 ** 31, n)
    acc[:4] = [-(2 ** 31), 2 ** 31 - 1, 0, -1]
    bias = rng.integers(-2 ** 20, 2 ** 20, n)
    shift = rng.integers(1, 63, n)
    shift[:8] = [1, 62, 31, 32, 1, 62, 16, 17]
    m = rng.integers(1, 2 ** 16, n)
    m = np.minimum(m, (2 ** 62) // (np.abs(acc) + np.abs(bias) + 1))  # keep (acc+bias)*m in int64
    z = rng.integers(-128, 256, n)
    lo = rng.integers(-128, 1, n)
    hi = lo + rng.integers(0, 256, n)
    p = rng.integers(-2 ** 62, 2 ** 62, n)
    ins = {k: te.placeholder((n,), "int64", name=k) for k in
           ("acc", "bias", "m", "s", "z", "lo", "hi", "p")}
    v = ins
    r = te.compute((n,), lambda i: requant_expr(v["acc"][i].astype("int32"), v["bias"][i], v["m"][i],
                                                v["s"][i], v["z"][i], v["lo"][i], v["hi"][i]), name="r")
    f = te.compute((n,), lambda i: requantize_product_expr(v["p"][i], v["s"][i], v["z"][i],
                                                           v["lo"][i], v["hi"][i]), name="f")
    lib = tvm.compile(te.create_prim_func(list(ins.values()) + [r, f]), target="llvm")
    got_r, got_f = np.zeros(n, np.int32), np.zeros(n, np.int32)
    lib(*(np.ascontiguousarray(a, np.int64) for a in (acc, bias, m, shift, z, lo, hi, p)),
        got_r, got_f)
    want_r = [requant_one(*t) for t in zip(acc, bias, m, shift, z, lo, hi)]
    want_f = [requantize_product_one(*t) for t in zip(p, shift, z, lo, hi)]
    assert got_r.tolist() == [int(x) for x in want_r]
    assert got_f.tolist() == [int(x) for x in want_f]


def _check(graph, images):
    want = Session(graph, "reference").run(images)
    x = np.asarray(images).transpose(0, 3, 1, 2).astype(np.int64)
    got = execute(graph, TvmCudaOps(graph, gpu=False), x).reshape(want.shape)
    assert got.dtype == np.int32 and np.array_equal(got, want)


def test_digits(digits_graph):
    from aq_runtime.models.digits import digits_data
    _check(digits_graph, digits_data()[2][:9])


def test_b0_se_swish():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    g = export_graph(build_float_graph("efficientnet-b0", 32), imgs[:6],
                     ExportOptions(bits=6, progress=False))
    _check(g, imgs[6:])


def test_ternary_groups_pools_padding():
    from aq_runtime.bench.graphs import small_ternary_graph
    _check(*small_ternary_graph())


from aq_runtime.bench.graphs import random_graph  # noqa: E402


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2 ** 32 - 1).map(random_graph))
def test_random_graphs(case):
    g, x = case
    _check(g, x)


def test_lite0_cuda_code_compiles_with_nvcc():
    from aq_runtime.kernels.tvm_cuda.build import compile_module, plan
    from aq_runtime.kernels.tvm_cuda.nvcc import compile_cubin, find_nvcc
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    g = export_graph(build_float_graph("efficientnet-lite0", 224), imgs,
                     ExportOptions(bits=8, progress=False))
    names, by_sig = plan(g)
    assert set(names) == {n.name for n in g.nodes} and len(by_sig) < len(g.nodes)
    lib = compile_module(by_sig, gpu=True)
    src = lib.mod.imports[0].inspect_source()
    assert all(f"{name}_kernel" in src for name in by_sig.values())
    if find_nvcc() is None:
        pytest.skip("nvcc (CUDA toolkit) is not installed here: CUDA C generated, not compiled")
    assert compile_cubin(src, "sm_90")[:4] == b"\x7fELF"
