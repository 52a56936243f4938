"""The numba-cuda backend under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before
numba loads, hence a subprocess): int32 logits == reference on the digits CNN, on EfficientNet-B0
at a 16-pixel input (SE gating, swish/sigmoid tables, depthwise, residual adds) and on a graph with
grouped / strided / asymmetrically padded convs, a ternary conv, max and average pools."""

import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import numpy as np
from aq_runtime.export.options import ExportOptions
from aq_runtime.export.pipeline import export_graph
from aq_runtime.models.digits import digits_data
from aq_runtime.models.registry import build_float_graph
from aq_runtime.runtime import Session, available_backends

assert "numba-cuda" not in available_backends()  # the simulator is never picked by auto

def check(name, g, x):
    want = Session(g, "reference").run(x)
    got = Session(g, "numba-cuda").run(x)
    assert got.dtype == np.int32 and np.array_equal(got, want), name
    print("OK", name, got.shape)

fg = build_float_graph("digits-cnn")
x = digits_data()[0]
check("digits", export_graph(fg, x[:128], ExportOptions(bits=4, progress=False)), x[:2])

rng = np.random.default_rng(0)
imgs = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
b0 = build_float_graph("efficientnet-b0", 16)
check("b0", export_graph(b0, imgs[:6], ExportOptions(bits=6, progress=False)), imgs[6:7])

from aq_runtime.bench.graphs import small_ternary_graph
check("small+ternary", *small_ternary_graph())
'''


def test_numba_cuda_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    script = SCRIPT
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [l.split()[1] for l in r.stdout.splitlines() if l.startswith("OK")] == [
        "digits", "b0", "small+ternary"]


@pytest.mark.nogpu
@pytest.mark.skipif(bool(os.environ.get("NUMBA_ENABLE_CUDASIM")),
                    reason="NUMBA_ENABLE_CUDASIM is set: the simulator stands in for a GPU")
def test_numba_cuda_without_a_gpu_says_so():
    from aq_runtime import AqError
    from aq_runtime.runtime.backends import get_backend, unavailable
    assert "NVIDIA GPU" in unavailable("numba-cuda")
    try:
        get_backend("numba-cuda", None)
    except AqError as e:
        assert "NVIDIA GPU" in str(e)
    else:
        raise AssertionError("numba-cuda without a GPU must refuse")
