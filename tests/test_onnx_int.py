"""The integer-exact ONNX export run in ONNX Runtime equals the reference, `==` on int32 logits:
an external oracle for the semantics of docs/SEMANTICS.md."""

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aq_runtime.interop.onnx_int import to_onnx_int
from aq_runtime.runtime import Session


def _ort(path, x):
    o = ort.SessionOptions()
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]


def _check(g, x, tmp_path):
    p = tmp_path / "m.onnx"
    to_onnx_int(g, p)
    got = _ort(p, x)
    assert got.dtype == np.int32
    assert np.array_equal(got, Session(g, "reference").run(x))


def test_digits(digits_graph, tmp_path):
    from aq_runtime.models.digits import digits_data
    _check(digits_graph, digits_data()[2][:64], tmp_path)


def test_b0_and_lite0_mixed(tmp_path):
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.bits_spec import resolve_bits
    from aq_runtime.export.calibrate import calibrate, per_tensor
    from aq_runtime.export.integerize import integerize
    from aq_runtime.models.registry import build_float_graph
    xc = crops_of(CALIBRATION_PHOTOS[:2], 96)[0][::4]
    xh = crops_of(HELDOUT_PHOTOS[:1], 96)[0][:4]
    b0 = build_float_graph("efficientnet-b0", 96)
    _check(export_graph(b0, xc, ExportOptions(bits=8, progress=False)), xh, tmp_path)
    fg = build_float_graph("efficientnet-lite0", 96)
    r = per_tensor(calibrate(fg, xc))
    plan = resolve_bits(fg, 8)
    wb, ab = plan.weight, plan.act
    rng = np.random.default_rng(3)
    for k in wb:
        wb[k] = rng.choice([1, 2, 4, 8], size=wb[k].shape)
    for k in ab:
        ab[k] = rng.integers(4, 9, size=ab[k].shape)
    wb["_conv_stem"][:] = 16
    wb["_blocks.0._depthwise_conv"][:] = 12
    g = integerize(fg, r, wb, ab, {"_blocks.3._project_conv": 0.05})
    _check(g, xh, tmp_path)


def test_cli_onnx_int(digits_aqz, tmp_path):
    import subprocess
    import sys
    out = tmp_path / "d.onnx"
    r = subprocess.run([sys.executable, "-m", "aq_runtime.cli.export", str(digits_aqz), str(out),
                        "--to", "onnx-int"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from aq_runtime.models.digits import digits_data
    x = digits_data()[2][:16]
    assert np.array_equal(_ort(out, x), Session(digits_aqz).run(x))


from aq_runtime.bench.graphs import random_graph  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2 ** 32 - 1).map(random_graph))
def test_random_graphs(tmp_path, case):
    g, x = case
    _check(g, x, tmp_path)
