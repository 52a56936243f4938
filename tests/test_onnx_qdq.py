"""QDQ export: a standard QDQ graph whose ONNX Runtime predictions agree with the integer
model's (not exactly: float accumulation and float requantization, see the module doc)."""

import numpy as np
import onnxruntime as ort
import pytest

from aq_runtime.interop.onnx_qdq import to_onnx_qdq
from aq_runtime.runtime import Session


def _run(path, x, level=None):
    o = ort.SessionOptions()
    o.log_severity_level = 3
    if level is not None:
        o.graph_optimization_level = level
    s = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"images": x[i:i + 16]})[0] for i in range(0, len(x), 16)])


# Mixed widths as `--bits auto` gives them (layers above and below 8 bits), fixed here: the
# planner's cost (a minute on 2 cores) buys this test nothing; tests/test_lowbit.py tests it.
MIXED = {"weight": 8, "layers": {"_conv_stem": {"weight": 12},
                                 "_blocks.0._depthwise_conv": {"weight": 10},
                                 "_blocks.1._expand_conv": {"weight": 7},
                                 "_blocks.6._project_conv": {"weight": 6},
                                 "_conv_head": {"weight": 9}, "_fc": {"weight": 7}}}


@pytest.fixture(scope="module")
def lite0_models(tmp_path_factory):
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, crops_of
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import calibrate_ranges, export_graph
    from aq_runtime.models.efficientnet import lite0_float_graph
    fg = lite0_float_graph()
    xc = crops_of(CALIBRATION_PHOTOS)[0][::2]
    r = calibrate_ranges(fg, xc, granularity="tensor")  # QDQ takes per-tensor activations
    xh = crops_of(HELDOUT_PHOTOS)[0][::4]
    return {k: export_graph(fg, xc,
                            ExportOptions(bits=b, progress=False, granularity="tensor"), ranges=r)
            for k, b in ((8, 8), ("mixed", MIXED))}, xh


def test_uniform8_qdq_agrees(lite0_models, tmp_path):
    """With uint8 weights ONNX Runtime runs its u8 x u8 kernels, exact on every CPU, so the
    agreement does not depend on the CPU; its default int8 weights are reported (they saturate
    int16 pair sums where the CPU lacks VNNI: 68% on an AVX2-only AMD EPYC)."""
    from aq_runtime.kernels.tvm.target import cpu_flags
    graphs, x = lite0_models
    ref = Session(graphs[8]).run(x)
    agree = {}
    for w in ("u8", "s8"):
        to_onnx_qdq(graphs[8], tmp_path / f"q_{w}.onnx", weights=w)
        agree[w] = (_run(tmp_path / f"q_{w}.onnx", x).argmax(1) == ref.argmax(1)).mean()
    vnni = "avx512_vnni" in cpu_flags() or "avx_vnni" in cpu_flags()
    print(f"\nQDQ vs integer top-1 agreement (uniform 8, ORT default optimizations): "
          f"uint8 weights {agree['u8']:.1%}, int8 weights {agree['s8']:.1%} "
          f"({'VNNI' if vnni else 'no VNNI'} CPU)")
    assert agree["u8"] >= 0.9


def test_mixed_qdq_agrees_without_ort_graph_rewrites(lite0_models, tmp_path):
    # Layers above 8 bits are float convs between Q/DQ pairs. ONNX Runtime's graph optimizer
    # (even ORT_ENABLE_BASIC) changes this graph's numerics; unoptimized,
    # it follows the integer model.
    graphs, x = lite0_models
    to_onnx_qdq(graphs["mixed"], tmp_path / "q.onnx")
    ref = Session(graphs["mixed"]).run(x)
    got = _run(tmp_path / "q.onnx", x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    agree = (got.argmax(1) == ref.argmax(1)).mean()
    print(f"\nQDQ vs integer top-1 agreement (mixed 6..12 bits, ORT unoptimized): {agree:.1%}")
    assert agree >= 0.9


def test_per_channel_activations_refused(tmp_path):
    from aq_runtime import AqError
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
    from aq_runtime.export.pipeline import export_graph
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.models.registry import build_float_graph
    fg = build_float_graph("efficientnet-lite0", 64)
    g = export_graph(fg, crops_of(CALIBRATION_PHOTOS[:1], 64)[0],
                     ExportOptions(bits=8, progress=False))
    assert g.meta["calibration"]["granularity"] == "mixed"
    with pytest.raises(AqError, match="--granularity tensor"):
        to_onnx_qdq(g, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
