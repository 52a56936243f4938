"""The tvm-cuda ops object (`TvmCudaOps`): calls the graph's compiled TVM functions (build.py)
on torch tensors (int32 NCHW codes, kept on the device between ops; DLPack hands them to TVM
without copies). Per-node parameters are uploaded once, as int64 vectors and int32 weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.graph import Graph, Node
from ..ops import Ops
from .build import load_or_build


class TvmCudaOps(Ops):
    """Executor ops (conv, add, mul, gap, lut, maxpool, avgpool, to_host) for one graph."""

    name = "tvm-cuda"

    def __init__(self, graph: Graph, gpu: bool = True):
        super().__init__(graph)
        import torch
        self.torch = torch
        self.device = torch.device("cuda" if gpu else "cpu")
        self.mod, self.names = load_or_build(graph, gpu)
        self.shapes = {name: t.shape for name, t in graph.tensors.items()}
        self._fn: dict[str, Any] = {}
        self._params: dict[str, list] = {}

    def _func(self, node: Node):
        fname = self.names[node.name]
        if fname not in self._fn:
            self._fn[fname] = self.mod[fname]
        return self._fn[fname]

    def _codes(self, x):
        if isinstance(x, self.torch.Tensor):
            return x
        # torch allocates 64-byte aligned memory, as TVM's code assumes
        return self.torch.tensor(np.ascontiguousarray(x, np.int32), device=self.device)

    def _vec(self, a) -> Any:
        return self.torch.tensor(np.ascontiguousarray(a, np.int64).reshape(-1),
                                 device=self.device)

    def _node_params(self, node: Node, keys: tuple[str, ...], extra: dict) -> list:
        if node.name not in self._params:
            vals = []
            for k in keys:
                if k in extra:
                    vals.append(self._vec(extra[k]))
                elif k in ("weight", "table"):
                    vals.append(self._codes(node.arrays[k]))
                else:
                    vals.append(self._vec(node.arrays[k]))
            self._params[node.name] = vals
        return self._params[node.name]

    def _out(self, node: Node, n: int):
        return self.torch.empty((n,) + tuple(self.shapes[node.output]), dtype=self.torch.int32,
                                device=self.device)

    def _run(self, node: Node, inputs: list, keys: tuple[str, ...], extra: dict):
        xs = [self._codes(x) for x in inputs]
        p = self._node_params(node, keys, extra)
        out = self._out(node, xs[0].shape[0])
        args = [xs[0]]
        if node.op in ("add", "mul"):
            args = [xs[0], p[0], xs[1], p[1]]
            p = p[2:]
        self._func(node)(*args, *p, out)
        return out

    def conv(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray):
        if node.attrs.get("mode", "int") == "ternary":
            keys = ("weight", "zin", "bias", "bias_n", "mult", "mult_n", "shift", "z", "lo", "hi")
        else:
            keys = ("weight", "zin", "bias", "mult", "shift", "z", "lo", "hi")
        return self._run(node, [x], keys, {"zin": z_in, "z": z_out})

    def add(self, node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray):
        return self._run(node, [x1, x2], ("z1", "z2", "mult_a", "mult_b", "shift", "z", "lo", "hi"),
                         {"z1": z1, "z2": z2, "z": z_out})

    def mul(self, node: Node, x1, z1: np.ndarray, x2, z2: np.ndarray, z_out: np.ndarray):
        return self._run(node, [x1, x2], ("z1", "z2", "mult", "shift", "z", "lo", "hi"),
                         {"z1": z1, "z2": z2, "z": z_out})

    def gap(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray):
        return self._run(node, [x], ("zin", "mult", "shift", "z", "lo", "hi"),
                         {"zin": z_in, "z": z_out})

    def avgpool(self, node: Node, x, z_in: np.ndarray, z_out: np.ndarray):
        return self.gap(node, x, z_in, z_out)

    def lut(self, node: Node, x):
        return self._run(node, [x], ("table",), {})

    def maxpool(self, node: Node, x):
        return self._run(node, [x], (), {})

    def to_host(self, x) -> np.ndarray:
        if isinstance(x, self.torch.Tensor):
            return x.cpu().numpy()
        return np.asarray(x)
