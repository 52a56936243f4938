"""Bias correction: the measured output shift equals the mean of the weight change's
convolution written out by hand (SAME padding, stride 2, depthwise), and the correction lands
in the int32 bias codes with the weight codes untouched."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lite0_64():
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
    from aq_runtime.models.registry import build_float_graph
    return build_float_graph("efficientnet-lite0", 64), crops_of(CALIBRATION_PHOTOS[:2], 64)[0]


def test_output_shift_is_mean_of_conv_error(lite0_64):
    from aq_runtime.export.bias_correction import output_shifts
    from aq_runtime.export.float_exec import run_float_graph
    fg, x = lite0_64
    n = next(n for n in fg.conv_nodes() if n.name == "_blocks.1._depthwise_conv")
    assert tuple(n.attrs["stride"]) == (2, 2) and n.attrs["pad"][0] != n.attrs["pad"][1]  # SAME: asymmetric
    delta = np.random.default_rng(0).normal(size=n.weight.shape) * 0.01
    got = output_shifts(fg, x, {n.name: delta})[n.name]
    seen = []
    run_float_graph(fg, x, hook=lambda t, v: seen.append(v.double().numpy())
                    if t == n.inputs[0] else None)
    a = np.concatenate(seen)  # (N, C, H, W)
    t, b, l, r = n.attrs["pad"]
    a = np.pad(a, ((0, 0), (0, 0), (t, b), (l, r)))
    kh, kw = n.weight.shape[2:]
    sh, sw = n.attrs["stride"]
    ho, wo = (a.shape[2] - kh) // sh + 1, (a.shape[3] - kw) // sw + 1
    want = np.zeros(n.weight.shape[0])
    for i in range(kh):
        for j in range(kw):
            patch = a[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            want += delta[:, 0, i, j] * patch.mean(axis=(0, 2, 3))
    assert np.allclose(got, want, rtol=1e-4, atol=1e-6)  # float32 convs vs float64 sums


def test_correction_lands_in_bias_codes(lite0_64):
    from aq_runtime.export.options import ExportOptions
    from aq_runtime.export.pipeline import calibrate_ranges, export_graph
    from aq_runtime.export.bias_correction import corrected_biases
    from aq_runtime.quant.requant import implied_scale
    fg, x = lite0_64
    ranges = calibrate_ranges(fg, x)
    plain = export_graph(fg, x,
                         ExportOptions(bits=8, progress=False, bias_correction=False), ranges=ranges)
    fixed = export_graph(fg, x, ExportOptions(bits=8, progress=False), ranges=ranges)
    assert fixed.meta["calibration"]["bias_correction"] is True
    new_b = corrected_biases(fg, plain, x)
    moved = 0
    for n0, n1 in zip(plain.weight_nodes(), fixed.weight_nodes()):
        f = next(f for f in fg.conv_nodes() if f.name == n0.name)
        live = np.abs(f.weight).reshape(len(f.bias), -1).max(1) > 1e-3  # scale not floored
        assert (n0.arrays["weight"] == n1.arrays["weight"]).all()
        assert (n0.arrays["mult"][live] == n1.arrays["mult"][live]).all()
        sw = implied_scale(n0.arrays["mult"], n0.arrays["shift"], plain.tensors[n0.output].scale)
        step = (n1.arrays["bias"] - n0.arrays["bias"])[live]
        want = ((new_b[n0.name] - f.bias) / sw)[live]
        assert np.abs(step - want).max() <= 1.0 + 1e-6  # each code rounds once
        moved += int((step != 0).sum())
    assert moved > 0
