"""`Ops`, the one shape of a backend: an object made for one graph (by the backend's record in
`runtime.backends`) that holds what the backend prepares per node (widened weights, packed
operands, bound kernels, its kernel `Chooser`) for as long as the graph runs. The executor
calls its op methods (`conv`, `add`, `mul`, `gap`, `lut`, `maxpool`, `avgpool`, with the
arguments of `kernels.reference`); `from_images` turns uint8 N x H x W x C images into the
backend's input tensor and `to_host` turns the output back into NCHW codes on the host. The
methods here are the reference's: `Ops` itself is the reference backend, and a backend
overrides the ops it has kernels for."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import Graph, Node
from . import reference


class Ops:
    """The reference backend; the base of every backend's ops."""

    name = "reference"

    def __init__(self, graph: Graph):
        self.graph = graph

    def conv(self, node: Node, x: Any, z_in: np.ndarray, z_out: np.ndarray) -> Any:
        return reference.conv(node, x, z_in, z_out)

    def add(self, node: Node, x1: Any, z1: np.ndarray, x2: Any, z2: np.ndarray,
            z_out: np.ndarray) -> Any:
        return reference.add(node, x1, z1, x2, z2, z_out)

    def mul(self, node: Node, x1: Any, z1: np.ndarray, x2: Any, z2: np.ndarray,
            z_out: np.ndarray) -> Any:
        return reference.mul(node, x1, z1, x2, z2, z_out)

    def gap(self, node: Node, x: Any, z_in: np.ndarray, z_out: np.ndarray) -> Any:
        return reference.gap(node, x, z_in, z_out)

    def lut(self, node: Node, x: Any) -> Any:
        return reference.lut(node, x)

    def maxpool(self, node: Node, x: Any) -> Any:
        return reference.maxpool(node, x)

    def avgpool(self, node: Node, x: Any, z_in: np.ndarray, z_out: np.ndarray) -> Any:
        return reference.avgpool(node, x, z_in, z_out)

    def from_images(self, images: np.ndarray) -> Any:
        """uint8 N x H x W x C images (already the input codes) -> the input tensor."""
        return images.transpose(0, 3, 1, 2).astype(np.int64)

    def to_host(self, x: Any) -> np.ndarray:
        """The graph's output as NCHW codes in host memory."""
        return np.asarray(x)

    def kernel_choice(self, node: Node) -> str:
        """The kernel that runs a conv node (backends with several say which they last ran)."""
        return self.name
