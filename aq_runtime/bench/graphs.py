"""Graphs the tests and benchmarks share (integer graphs with their input images): small
hand-built ones (ternary, grouped and padded convs, pools), Lite0 with mixed 1- to 16-bit
channels, binary pointwise convs, and random small graphs drawn from a seed."""

import numpy as np


def small_ternary_graph(seed: int = 0):
    """Grouped, strided and asymmetrically padded convs, a max pool with padding, a ternary
    1x1 conv, an average pool with padding, global pooling and a dense layer: (graph, images)."""
    from aq_runtime.export.bits_spec import resolve_bits
    from aq_runtime.export.calibrate import calibrate, per_tensor
    from aq_runtime.ir.float_graph import FloatGraph, FloatNode
    from aq_runtime.export.integerize import integerize
    rng = np.random.default_rng(seed)

    def conv(name, x, o, c, k, s, pad, groups, act):
        return FloatNode("conv", name, [x], name, dict(stride=[s, s], pad=pad, groups=groups,
                                                       act=act),
                         rng.normal(size=(o, c // groups, k, k)), rng.normal(size=o) * 0.1)
    nodes = [conv("a", "input", 4, 3, 3, 2, [0, 1, 1, 0], 1, "relu6"),
             FloatNode("maxpool", "mp", ["a"], "mp", dict(kernel=[2, 2], stride=[1, 1],
                                                          pad=[1, 0, 0, 1])),
             conv("b", "mp", 4, 4, 3, 1, [1, 1, 1, 1], 2, "relu"),
             conv("t", "b", 6, 4, 1, 1, [0, 0, 0, 0], 1, "none"),
             FloatNode("avgpool", "ap", ["t"], "ap", dict(kernel=[3, 3], stride=[2, 2],
                                                          pad=[1, 1, 1, 1])),
             FloatNode("gap", "g", ["ap"], "g"),
             conv("fc", "g", 5, 6, 1, 1, [0, 0, 0, 0], 1, "none")]
    fg = FloatGraph("small", "input", "fc", (3, 11, 9), [127.0] * 3, [128.0] * 3, nodes,
                    [str(i) for i in range(5)])
    x = rng.integers(0, 256, (3, 11, 9, 3), dtype=np.uint8)
    plan = resolve_bits(fg, 5)
    wb, ab = plan.weight, plan.act
    g = integerize(fg, per_tensor(calibrate(fg, x)), wb, ab, {"t": 0.05})
    assert g.node("t").attrs["mode"] == "ternary"
    return g, x


def lite0_mixed_graph(calibration: np.ndarray):
    """Lite0 at the calibration images' size with random per-channel bits (weights 1, 2, 3, 4, 6,
    8; activations 4..8), 16-bit stem and first depthwise conv, two ternary layers."""
    from aq_runtime.export.bits_spec import resolve_bits
    from aq_runtime.export.calibrate import calibrate, per_tensor
    from aq_runtime.export.integerize import integerize
    from aq_runtime.models.registry import build_float_graph
    fg = build_float_graph("efficientnet-lite0", calibration.shape[1])
    r = per_tensor(calibrate(fg, calibration))
    plan = resolve_bits(fg, 8)
    wb, ab = plan.weight, plan.act
    rng = np.random.default_rng(1)
    for k in wb:
        wb[k] = rng.choice([1, 2, 3, 4, 6, 8], size=wb[k].shape)
    for k in ab:
        ab[k] = rng.integers(4, 9, size=ab[k].shape)
    wb["_conv_stem"][:] = 16
    wb["_blocks.0._depthwise_conv"][:] = 16
    tern = {"_blocks.2._project_conv": 0.05, "_blocks.5._expand_conv": 0.05}
    return integerize(fg, r, wb, ab, tern)


def binary_pointwise_graph(o: int, c: int, h: int, w: int, seed: int = 0, abits=None):
    """One pointwise conv with binary (1-bit) weights + global pooling: the bit-serial kernel's
    case. `abits`: per-tensor activation bits (default 8)."""
    from aq_runtime.ir.float_graph import FloatGraph, FloatNode
    from aq_runtime.export.integerize import integerize, tensor_shapes
    rng = np.random.default_rng(seed)
    nodes = [FloatNode("conv", "pw", ["input"], "pw", dict(stride=[1, 1], pad=[0, 0, 0, 0],
                                                           groups=1, act="relu"),
                       rng.normal(size=(o, c, 1, 1)), rng.normal(size=o)),
             FloatNode("gap", "gap", ["pw"], "gap")]
    fg = FloatGraph("bs", "input", "gap", (c, h, w), [0.0] * c, [1.0] * c, nodes)
    shapes = tensor_shapes(fg)
    ranges = {k: (-np.ones(s[0]), np.ones(s[0]) * 3) for k, s in shapes.items()}
    ab = {k: (abits(rng, s[0]) if abits else np.full(s[0], 8)) for k, s in shapes.items()}
    return integerize(fg, ranges, {"pw": np.ones(o, np.int64)}, ab)


def random_graph(seed: int):
    """A random small graph from one seed: 1-3 convs (grouped or dense, 1-5 kernels, strides,
    asymmetric padding, none/relu/relu6), maybe a residual add, global pooling and a dense layer,
    random per-channel ranges and 1-8 weight and activation bits per channel: (graph, 3 images)."""
    from aq_runtime.export.integerize import integerize, tensor_shapes
    from aq_runtime.ir.float_graph import FloatGraph, FloatNode
    rng = np.random.default_rng(seed)
    c = int(rng.integers(1, 7))
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    nodes, x, shape = [], "input", (c, h, w)
    for i in range(int(rng.integers(1, 4))):
        cin = shape[0]
        groups = int(rng.choice([1, cin]))
        o = cin if groups == cin and rng.random() < 0.5 else int(rng.integers(1, 7)) * groups
        k = int(rng.choice([1, 2, 3, 5]))
        s = int(rng.choice([1, 2]))
        pad = [int(rng.integers(0, k)) for _ in range(4)]
        if (shape[1] + pad[0] + pad[1] < k) or (shape[2] + pad[2] + pad[3] < k):
            pad = [k, k, k, k]
        act = str(rng.choice(["none", "relu", "relu6"]))
        nodes.append(FloatNode("conv", f"c{i}", [x], f"c{i}", dict(
            stride=[s, s], pad=pad, groups=groups, act=act),
            rng.normal(size=(o, cin // groups, k, k)), rng.normal(size=o)))
        x = f"c{i}"
        shape = tensor_shapes(FloatGraph("r", "input", x, (c, h, w), [0] * c, [1] * c, nodes))[x]
    if rng.random() < 0.5 and shape[0] > 0:
        nodes.append(FloatNode("add", "add", [x, x], "add"))
        x = "add"
    nodes.append(FloatNode("gap", "gap", [x], "gap"))
    nodes.append(FloatNode("conv", "fc", ["gap"], "fc", dict(stride=[1, 1], pad=[0, 0, 0, 0],
                                                              groups=1, act="none"),
                           rng.normal(size=(3, shape[0], 1, 1)), rng.normal(size=3)))
    mean = rng.uniform(0, 255, size=c).tolist()
    fg = FloatGraph("random", "input", "fc", (c, h, w), mean,
                    rng.uniform(20, 120, size=c).tolist(), nodes, ["a", "b", "c"])
    shapes = tensor_shapes(fg)
    ranges = {}
    for name, shp in shapes.items():
        lo = -rng.uniform(0, 4, size=shp[0])
        ranges[name] = (lo, lo + rng.uniform(0.1, 8, size=shp[0]))
    wb = {n.name: rng.integers(1, 9, size=n.weight.shape[0]) for n in nodes if n.op == "conv"}
    ab = {n.output: rng.integers(1, 9, size=shapes[n.output][0]) for n in nodes}
    g = integerize(fg, ranges, wb, ab)
    imgs = rng.integers(0, 256, size=(3, h, w, c), dtype=np.uint8)
    return g, imgs
