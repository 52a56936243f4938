"""ONNX in: a float model exported from torch to ONNX and imported back gives the same float
graph and the same integers as the torch path; unsupported ops fail with one line."""

import warnings

import numpy as np
import pytest
import torch

from aq_runtime import AqError
from aq_runtime.export.options import ExportOptions
from aq_runtime.export.pipeline import export_graph
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
    opts = ExportOptions(bits=8, progress=False)
    g1, g2 = export_graph(fo, x, opts), export_graph(ft, x, opts)
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

        def forward(self, x):
            return torch.nn.functional.leaky_relu(self.c(x))
    _to_onnx(M(), (3, 16, 16), tmp_path / "m.onnx")
    with pytest.raises(AqError, match="unsupported ONNX op LeakyRelu .*node"):
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


class PoolNet(torch.nn.Module):
    """Exercises MaxPool, AveragePool (count_include_pad), HardSigmoid gating and HardSwish."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = torch.nn.BatchNorm2d(8)
        self.mp = torch.nn.MaxPool2d(3, 2, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.ap = torch.nn.AvgPool2d(3, 1, padding=1, count_include_pad=True)
        self.se = torch.nn.Conv2d(8, 8, 1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.mp(torch.relu(self.b1(self.c1(x))))
        x = torch.nn.functional.hardswish(self.c2(x))
        x = self.ap(x)
        g = torch.nn.functional.hardsigmoid(self.se(x.mean(dim=(2, 3), keepdim=True)))
        return self.fc(torch.flatten((x * g).mean(dim=(2, 3), keepdim=True), 1))


def test_pools_and_hard_activations_exact_everywhere(tmp_path):
    """ONNX in -> .aqz -> reference == numba == ONNX Runtime (onnx-int); QDQ close."""
    import onnxruntime as ort

    from aq_runtime.format import read_aqz, write_aqz
    from aq_runtime.interop.onnx_int import to_onnx_int
    from aq_runtime.interop.onnx_qdq import to_onnx_qdq
    from aq_runtime.runtime import Session
    m = PoolNet().eval()
    with torch.no_grad():
        m.b1.running_mean.uniform_(-0.5, 0.5)
        m.b1.running_var.uniform_(0.5, 2.0)
    _to_onnx(m, (3, 20, 20), tmp_path / "p.onnx")
    fg = float_graph_from_onnx(tmp_path / "p.onnx", [128.0] * 3, [64.0] * 3)
    assert {"maxpool", "avgpool", "hsigmoid", "hswish", "mul"} <= {n.op for n in fg.nodes}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 20, 20, 3), dtype=np.uint8)
    from aq_runtime.export.float_exec import normalize_input, run_float_graph
    with torch.no_grad():
        want = m(normalize_input(x, fg)).numpy()
    assert np.abs(run_float_graph(fg, x) - want).max() < 1e-4  # the float graph is the model
    g = export_graph(fg, x,
                     ExportOptions(bits=8, progress=False, granularity="tensor"))  # QDQ below: per tensor
    write_aqz(g, tmp_path / "p.aqz")
    g = read_aqz(tmp_path / "p.aqz")
    ref = Session(g, "reference").run(x)
    assert np.array_equal(Session(g, "numba").run(x), ref)
    to_onnx_int(g, tmp_path / "pi.onnx")
    o = ort.SessionOptions()
    o.log_severity_level = 3
    got = ort.InferenceSession(str(tmp_path / "pi.onnx"), o, providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    assert np.array_equal(got, ref)
    to_onnx_qdq(g, tmp_path / "pq.onnx")
    q = ort.InferenceSession(str(tmp_path / "pq.onnx"), o, providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    assert (q.argmax(1) == ref.argmax(1)).mean() >= 0.8


class OddOps(torch.nn.Module):
    """Ops exporters write that the models above do not: normalization inside the graph,
    Mul/Add of constants after BN, MaxPool with ceil_mode, Pad into AveragePool,
    GlobalMaxPool, a Softmax at the end."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 1)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x):
        x = (x - torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)) / 0.5
        y = torch.relu(self.b1(self.c1(x)) * 0.5 + 0.25)
        y = torch.nn.functional.max_pool2d(y, 3, 2, ceil_mode=True)
        y = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(y, (1, 1, 1, 1)), 3, 1)
        y = torch.relu(self.c2(y))
        g = torch.nn.functional.adaptive_max_pool2d(y, 1) + y.mean(dim=(2, 3), keepdim=True)
        return torch.softmax(self.fc(torch.flatten(g, 1)), dim=1)


@pytest.mark.parametrize("dynamo", [False, True])
def test_odd_ops_import_and_compute_the_model(dynamo, tmp_path):
    from aq_runtime.export.float_exec import run_float_graph
    from aq_runtime.bench.onnx_models import randomize_bn, to_onnx
    m = randomize_bn(OddOps())
    to_onnx(m, (3, 15, 15), tmp_path / "odd.onnx", "dynamo" if dynamo else "torchscript", True)
    fg = float_graph_from_onnx(tmp_path / "odd.onnx", [128.0], [64.0])
    assert any("Softmax" in n for n in fg.notes)
    assert fg.pixel_mean != [128.0] * 3 and fg.pixel_std == [32.0] * 3  # folded in
    assert {n.op for n in fg.nodes} == {"conv", "maxpool", "avgpool", "gap", "add"}
    x = np.random.default_rng(0).integers(0, 256, size=(4, 15, 15, 3), dtype=np.uint8)
    with torch.no_grad():
        want = m(torch.from_numpy(x).permute(0, 3, 1, 2).float().sub(128).div(64)).numpy()
    got = torch.softmax(torch.from_numpy(run_float_graph(fg, x)), 1).numpy()
    assert np.abs(got - want).max() < 1e-5
    g = export_graph(fg, x, ExportOptions(bits=8, progress=False))
    from aq_runtime.runtime import Session, available_backends
    ref = Session(g, "reference").run(x)
    for b in available_backends():
        assert np.array_equal(Session(g, b).run(x), ref), b


@pytest.mark.parametrize("body,match", [
    (lambda s, x: torch.nn.functional.avg_pool2d(s.c(x), 3, 2, ceil_mode=True),
     "AveragePool with ceil_mode"),
    (lambda s, x: torch.cat([s.c(x), s.c(x)], 1), "unsupported ONNX op Concat"),
    (lambda s, x: torch.nn.functional.pad(s.c(x), (1, 1, 1, 1), mode="reflect"),
     "reflect padding"),
    (lambda s, x: torch.nn.functional.max_pool2d(torch.nn.functional.pad(s.c(x), (1, 1, 1, 1)), 3),
     "a Pad may only feed"),
    (lambda s, x: torch.relu(s.c(x).flatten(1)), "Flatten of a 4 x 6 x 6 tensor"),
])
def test_what_cannot_import_says_op_node_and_why(body, match, tmp_path):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return body(self, x)
    _to_onnx(M(), (3, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(AqError, match=match) as e:
        float_graph_from_onnx(tmp_path / "m.onnx", [0.0], [1.0])
    assert "\n" not in str(e.value) and "node" in str(e.value)
