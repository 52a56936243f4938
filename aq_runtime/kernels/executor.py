"""Graph executor: walks the IR in order and calls one backend's ops object (`kernels.ops.Ops`:
`conv`, `add`, `mul`, `gap`, `lut`, `maxpool`, `avgpool`, with the arguments of
`kernels.reference`); the executor owns tensor lifetimes (freed after their last use)."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from .ops import Ops


def last_uses(graph: Graph) -> dict[str, int]:
    """Index of the last node reading each tensor (the graph output is never freed)."""
    last: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for t in n.inputs:
            last[t] = i
    last[graph.output] = len(graph.nodes)
    return last


def execute(graph: Graph, ops: Ops, x) -> np.ndarray:
    """Run the graph on the backend's input tensor (`ops.from_images`); returns the output
    tensor's NCHW codes on the host."""
    env: dict[str, np.ndarray] = {graph.input: x}
    last = last_uses(graph)
    zp = {name: t.zero_point for name, t in graph.tensors.items()}
    for i, node in enumerate(graph.nodes):
        ins = [env[t] for t in node.inputs]
        z_out = zp[node.output]
        if node.op == "conv":
            y = ops.conv(node, ins[0], zp[node.inputs[0]], z_out)
        elif node.op == "add":
            y = ops.add(node, ins[0], zp[node.inputs[0]], ins[1], zp[node.inputs[1]], z_out)
        elif node.op == "mul":
            y = ops.mul(node, ins[0], zp[node.inputs[0]], ins[1], zp[node.inputs[1]], z_out)
        elif node.op == "gap":
            y = ops.gap(node, ins[0], zp[node.inputs[0]], z_out)
        elif node.op == "lut":
            y = ops.lut(node, ins[0])
        elif node.op == "maxpool":
            y = ops.maxpool(node, ins[0])
        elif node.op == "avgpool":
            y = ops.avgpool(node, ins[0], zp[node.inputs[0]], z_out)
        else:  # validated at load; kept as a guard for hand-built graphs
            raise ValueError(f"unknown op {node.op!r} in node {node.name!r}")
        env[node.output] = y
        for t in set(node.inputs):  # an input may appear twice (x + x)
            if last.get(t) == i:
                del env[t]
    return ops.to_host(env[graph.output])
