"""Corrupted and unusual ONNX files through `aq-export`: every one ends in a one-line error and
exit 2 (or a correct export), never a traceback. Bases: EfficientNet-B0 as torch.onnx's
TorchScript exporter writes it with dynamic batch (Shape/Gather, pad subgraphs, SE, swish) and
a MobileNetV2-shaped network from the dynamo exporter."""

import copy

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from aq_runtime.cli.export import main as export_main

from aq_runtime.bench.onnx_models import MobileNetV2, package_efficientnet, randomize_bn, to_onnx

SIDE = 32


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    to_onnx(package_efficientnet("efficientnet-b0", SIDE), (3, SIDE, SIDE), d / "b0.onnx",
            "torchscript", True)
    to_onnx(randomize_bn(MobileNetV2()), (3, SIDE, SIDE), d / "mb2.onnx", "dynamo", True)
    calib = d / "calib"
    calib.mkdir()
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(calib / f"{i}.png")
    return d, {k: onnx.load(str(d / f"{k}.onnx")) for k in ("b0", "mb2")}, calib


def _export(model_or_bytes, tmp_path, calib, capsys, name="m") -> tuple[int, str]:
    f = tmp_path / f"{name}.onnx"
    if isinstance(model_or_bytes, bytes):
        f.write_bytes(model_or_bytes)
    else:
        f.write_bytes(model_or_bytes.SerializeToString())
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # any other exception fails the test with its traceback
        export_main([str(f), str(tmp_path / f"{name}.aqz"), "--bits", "8", "--calib", str(calib),
                     "--mean", "127", "--std", "128"])
    err = capsys.readouterr().err
    return e.value.code, err


def _one_line_refusal(code, err):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err


def _conv(m, k=0):
    return [n for n in m.graph.node if n.op_type == "Conv"][k]


def _drop_initializer(m):
    name = _conv(m, 1).input[1]
    keep = [t for t in m.graph.initializer if t.name != name]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)


def _wrong_weight_shape(m):
    name = _conv(m, 2).input[1]
    for i, t in enumerate(m.graph.initializer):
        if t.name == name:
            a = numpy_helper.to_array(t)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                np.zeros((a.shape[0], a.shape[1] + 3, *a.shape[2:]), a.dtype), name))


def _nan_weight(m):
    name = _conv(m, 0).input[1]
    for i, t in enumerate(m.graph.initializer):
        if t.name == name:
            a = numpy_helper.to_array(t).copy()
            a.flat[0] = np.nan
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, name))


def _unknown_op(m):
    _conv(m, 3).op_type = "FancyConv"


def _foreign_domain(m):
    _conv(m, 3).domain = "com.example"


def _cycle(m):
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    convs[1].input[0] = convs[4].output[0]


def _huge_input(m):
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], (100_000, 100_000)):
        d.dim_value = v


def _huge_constant(m):
    shape = helper.make_node("Constant", [], ["huge_shape"], value=numpy_helper.from_array(
        np.array([1 << 20, 1 << 20], np.int64)))
    big = helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"])
    m.graph.node.insert(0, big)
    m.graph.node.insert(0, shape)


def _huge_initializer_dims(m):
    t = m.graph.initializer[0]
    t.dims[:] = [1 << 20, 1 << 20, 1 << 10]


def _rank3_input(m):
    del m.graph.input[0].type.tensor_type.shape.dim[3]


def _int_input(m):
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT32


def _two_outputs(m):
    m.graph.output.append(copy.deepcopy(m.graph.output[0]))
    m.graph.output[1].name = _conv(m, 0).output[0]


def _output_never_produced(m):
    m.graph.output[0].name = "nowhere"


def _duplicate_output(m):
    _conv(m, 2).output[0] = _conv(m, 1).output[0]


def _bad_strides(m):
    for a in _conv(m, 1).attribute:
        if a.name == "strides":
            a.ints[:] = [0, 0]


def _bad_group(m):
    c = _conv(m, 2)
    c.attribute.append(helper.make_attribute("group", 7))
    seen = [a for a in c.attribute if a.name == "group"]
    for a in seen[:-1]:
        c.attribute.remove(a)


def _dilated(m):
    c = _conv(m, 2)
    for a in list(c.attribute):
        if a.name == "dilations":
            c.attribute.remove(a)
    c.attribute.append(helper.make_attribute("dilations", [2, 2]))


def _no_nodes(m):
    del m.graph.node[:]


def _drop_a_node(m):
    del m.graph.node[len(m.graph.node) // 2]


WHY = {"drop_initializer": "nothing produces", "wrong_weight_shape": "does not fit",
       "nan_weight": "NaN", "unknown_op": "unsupported ONNX op FancyConv",
       "foreign_domain": "unsupported ONNX op com.example.Conv", "cycle": "nothing produces",
       "huge_input": "out of range", "huge_constant": "too large",
       "huge_initializer_dims": "too large", "rank3_input": "rank 3", "int_input": "float",
       "two_outputs": "one graph output", "output_never_produced": "never produced",
       "duplicate_output": "already exists", "bad_strides": "strides", "bad_group": "group=7",
       "dilated": "dilated", "no_nodes": "no nodes", "drop_a_node": "nothing produces"}
MUTATIONS = [_drop_initializer, _wrong_weight_shape, _nan_weight, _unknown_op, _foreign_domain,
             _cycle, _huge_input, _huge_constant, _huge_initializer_dims, _rank3_input,
             _int_input, _two_outputs, _output_never_produced, _duplicate_output, _bad_strides,
             _bad_group, _dilated, _no_nodes, _drop_a_node]


@pytest.mark.parametrize("base", ["b0", "mb2"])
@pytest.mark.parametrize("mutate", MUTATIONS, ids=[f.__name__[1:] for f in MUTATIONS])
def test_corrupted_onnx_is_one_line_and_exit_2(mutate, base, bases, tmp_path, capsys):
    _, models, calib = bases
    m = copy.deepcopy(models[base])
    mutate(m)
    code, err = _export(m, tmp_path, calib, capsys)
    _one_line_refusal(code, err)
    assert WHY[mutate.__name__[1:]] in err, err


def test_broken_bytes(bases, tmp_path, capsys):
    d, models, calib = bases
    raw = models["b0"].SerializeToString()
    for i, data in enumerate([b"", b"junk", raw[: len(raw) // 2], raw[:100] + bytes(64) + raw[164:]]):
        code, err = _export(data, tmp_path, calib, capsys, name=f"bytes{i}")
        _one_line_refusal(code, err)


def test_random_mutations_never_trace_back(bases, tmp_path, capsys):
    """Seeded random edits (an input rewired, an attribute set to an odd value, a node removed or
    duplicated): each either exports or is refused in one line."""
    _, models, calib = bases
    rng = np.random.default_rng(7)
    for k in range(24):
        m = copy.deepcopy(models["b0" if k % 2 else "mb2"])
        nodes = m.graph.node
        n = nodes[int(rng.integers(len(nodes)))]
        kind = k % 4
        if kind == 0 and n.input:
            names = [o for nd in nodes for o in nd.output] + [t.name for t in m.graph.initializer]
            n.input[int(rng.integers(len(n.input)))] = names[int(rng.integers(len(names)))]
        elif kind == 1 and n.attribute:
            a = n.attribute[int(rng.integers(len(n.attribute)))]
            v = int(rng.choice([-1, 0, 3, 1 << 20]))
            if a.type == onnx.AttributeProto.INT:
                a.i = v
            elif a.type == onnx.AttributeProto.INTS:
                a.ints[:] = [v] * max(len(a.ints), 1)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(v)
        elif kind == 2:
            nodes.remove(n)
        else:
            nodes.insert(int(rng.integers(len(nodes))), copy.deepcopy(n))
        code, err = _export(m, tmp_path, calib, capsys, name=f"r{k}")
        assert code in (0, 2), err
        if code:
            _one_line_refusal(code, err)
