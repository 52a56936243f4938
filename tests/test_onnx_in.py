"""ONNX in: a float model exported from torch to ONNX and imported back gives the same float
graph and the same integers as the torch path; unsupported ops fail with one line."""

import warnings

import numpy as np
import pytest
import torch

from aq_runtime import AqError
from aq_runtime.export.api import export_graph
from aq_runtime.interop.onnx_in import float_graph_from_onnx


def _to_onnx(module, shape, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), torch.zeros(1, *shape), str(path), input_names=["x"],
                          output_names=["y"], opset_version=17, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE)


def _same(fo, ft, x):
    assert [n.op for n in fo.nodes] == [n.op for n in ft.nodes]
    for a, b in zip(fo.nodes, ft.nodes):
        assert a.attrs == b.attrs
        if a.op == "conv":
            assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    g1, g2 = export_graph(fo, x, 8, progress=False), export_graph(ft, x, 8, progress=False)
    for n1, n2 in zip(g1.nodes, g2.nodes):
        assert n1.op == n2.op and n1.attrs == n2.attrs
        if n1.op == "conv":  # module paths survive the trip (bits files keep working)
            assert n1.name == n2.name
        for k in n1.arrays:
            assert np.array_equal(n1.arrays[k], n2.arrays[k]), (n1.name, k)


@pytest.mark.parametrize("model", ["efficientnet-lite0", "efficientnet-b0"])
def test_efficientnets_round_trip_through_onnx(model, tmp_path):
    from aq_runtime.data.photos import CALIBRATION_PHOTOS, crops_of
    from aq_runtime.models import efficientnet as E
    size = 224 if model.endswith("lite0") else 96
    module = E.load_lite0() if model.endswith("lite0") else E.make_b0()
    ft = (E.lite0_float_graph if model.endswith("lite0") else E.b0_float_graph)((size, size))
    _to_onnx(module, (3, size, size), tmp_path / "m.onnx")
    fo = float_graph_from_onnx(tmp_path / "m.onnx", ft.pixel_mean, ft.pixel_std)
    _same(fo, ft, crops_of(CALIBRATION_PHOTOS[:1], size)[0][::4])


def test_digits_round_trip(digits_fg, tmp_path):
    from aq_runtime.models.digits import digits_data, train_digits_cnn
    _to_onnx(train_digits_cnn(), (1, 8, 8), tmp_path / "d.onnx")
    fo = float_graph_from_onnx(tmp_path / "d.onnx", digits_fg.pixel_mean, digits_fg.pixel_std)
    _same(fo, digits_fg, digits_data()[0][:64])


def test_unsupported_op_names_op_and_node(tmp_path):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)
            self.p = torch.nn.MaxPool2d(2)

        def forward(self, x):
            return self.p(self.c(x))
    _to_onnx(M(), (3, 16, 16), tmp_path / "m.onnx")
    with pytest.raises(AqError, match="unsupported ONNX op MaxPool .*node"):
        float_graph_from_onnx(tmp_path / "m.onnx", [0, 0, 0], [1, 1, 1])
    (tmp_path / "bad.onnx").write_bytes(b"junk")
    with pytest.raises(AqError, match="not a readable ONNX"):
        float_graph_from_onnx(tmp_path / "bad.onnx", [0], [1])


def test_cli_export_from_onnx(tmp_path):
    import subprocess
    import sys
    from aq_runtime.models.digits import train_digits_cnn
    _to_onnx(train_digits_cnn(), (1, 8, 8), tmp_path / "d.onnx")
    calib = tmp_path / "calib"
    calib.mkdir()
    from PIL import Image
    from aq_runtime.models.digits import digits_data
    for i, im in enumerate(digits_data()[0][:20]):
        Image.fromarray(im[..., 0]).save(calib / f"{i}.png")
    out = tmp_path / "d.aqz"
    r = subprocess.run([sys.executable, "-m", "aq_runtime.cli.export", str(tmp_path / "d.onnx"),
                        str(out), "--calib", str(calib), "--mean", "0", "--std", "240"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
