"""The numba-cuda backend under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before
numba loads, hence a subprocess): int32 logits == reference on the digits CNN, on EfficientNet-B0
at a small input (SE gating, swish/sigmoid tables, depthwise, residual adds) and on a graph with
grouped / strided / asymmetrically padded convs, a ternary conv, max and average pools."""

import os
import subprocess
import sys

SCRIPT = r'''
import numpy as np
from aq_runtime.export.api import export_graph
from aq_runtime.export.calibrate import calibrate, per_tensor
from aq_runtime.export.float_graph import FloatGraph, FloatNode
from aq_runtime.export.integerize import integerize
from aq_runtime.export.bits_spec import resolve_bits
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
check("digits", export_graph(fg, x[:128], 4, progress=False), x[:2])

rng = np.random.default_rng(0)
imgs = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
b0 = build_float_graph("efficientnet-b0", 32)
check("b0", export_graph(b0, imgs[:6], 6, progress=False), imgs[6:7])

def conv(name, x, o, c, k, s, pad, groups, act):
    return FloatNode("conv", name, [x], name, dict(stride=[s, s], pad=pad, groups=groups, act=act),
                     rng.normal(size=(o, c // groups, k, k)), rng.normal(size=o) * 0.1)
nodes = [conv("a", "input", 4, 3, 3, 2, [0, 1, 1, 0], 1, "relu6"),
         FloatNode("maxpool", "mp", ["a"], "mp", dict(kernel=[2, 2], stride=[1, 1], pad=[1, 0, 0, 1])),
         conv("b", "mp", 4, 4, 3, 1, [1, 1, 1, 1], 2, "relu"),
         conv("t", "b", 6, 4, 1, 1, [0, 0, 0, 0], 1, "none"),
         FloatNode("avgpool", "ap", ["t"], "ap", dict(kernel=[3, 3], stride=[2, 2], pad=[1, 1, 1, 1])),
         FloatNode("gap", "g", ["ap"], "g"),
         conv("fc", "g", 5, 6, 1, 1, [0, 0, 0, 0], 1, "none")]
fg = FloatGraph("small", "input", "fc", (3, 11, 9), [127.0] * 3, [128.0] * 3, nodes,
                [str(i) for i in range(5)])
x = rng.integers(0, 256, (3, 11, 9, 3), dtype=np.uint8)
r = per_tensor(calibrate(fg, x))
wb, ab, _ = resolve_bits(fg, 5)
check("small+ternary", integerize(fg, r, wb, ab, {"t": 0.05}), x)
'''


def test_numba_cuda_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [l.split()[1] for l in r.stdout.splitlines() if l.startswith("OK")] == [
        "digits", "b0", "small+ternary"]


def test_numba_cuda_without_a_gpu_says_so():
    if os.environ.get("NUMBA_ENABLE_CUDASIM"):
        return
    from aq_runtime import AqError
    from aq_runtime.runtime.backends import cuda_unavailable, get_backend
    why = cuda_unavailable()
    if why is None:  # a real GPU is present: nothing to refuse
        return
    try:
        get_backend("numba-cuda", None)
    except AqError as e:
        assert "NVIDIA GPU" in str(e)
    else:
        raise AssertionError("numba-cuda without a GPU must refuse")
