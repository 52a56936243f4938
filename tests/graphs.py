"""Small hand-built graphs shared by the backend tests and benchmarks/gpu_check.py."""

import numpy as np


def small_ternary_graph(seed: int = 0):
    """Grouped, strided and asymmetrically padded convs, a max pool with padding, a ternary
    1x1 conv, an average pool with padding, global pooling and a dense layer: (graph, images)."""
    from aq_runtime.export.bits_spec import resolve_bits
    from aq_runtime.export.calibrate import calibrate, per_tensor
    from aq_runtime.export.float_graph import FloatGraph, FloatNode
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
    wb, ab, _ = resolve_bits(fg, 5)
    g = integerize(fg, per_tensor(calibrate(fg, x)), wb, ab, {"t": 0.05})
    assert g.node("t").attrs["mode"] == "ternary"
    return g, x
