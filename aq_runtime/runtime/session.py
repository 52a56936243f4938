"""`Session(path, backend, kernels=None)`: load and validate a `.aqz`, pick a backend (with a
kernels file from aq-compile: the tvm backend on those kernels), run uint8 images (N x H x W x
C, already resized/cropped) to int32 logits (N x classes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..ir.graph import Graph
from ..format.reader import read_aqz
from .backends import available_backends, get_backend, use_kernels
from ..kernels.executor import execute

__all__ = ["Session", "available_backends"]


class Session:
    """A loaded model bound to one backend."""

    def __init__(self, model: str | Path | Graph, backend: str = "auto", batch_size: int = 16,
                 kernels: str | Path | None = None):
        """`kernels`: a kernels file of this model (aq-compile): the tvm backend runs them,
        loaded with the TVM runtime alone (no compiler, nothing compiled here)."""
        self.graph = model if isinstance(model, Graph) else read_aqz(model)
        if kernels is not None:
            backend = use_kernels(kernels, self.graph, backend)
        self.backend_name, self.ops = get_backend(backend, self.graph, batch_size)
        self.batch_size = batch_size
        c, h, w = self.graph.tensors[self.graph.input].shape
        self.input_shape = (h, w, c)

    @property
    def labels(self) -> list[str]:
        return list(self.graph.meta.get("labels", []))

    def run(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x C images -> int32 logits N x classes."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise AqError(f"images must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = images[None]
        if images.shape[1:] != self.input_shape:
            raise AqError(f"images must be N x {' x '.join(map(str, self.input_shape))}, "
                          f"got {' x '.join(map(str, images.shape))}")
        outs = []
        for i in range(0, images.shape[0], self.batch_size):
            batch = images[i:i + self.batch_size]
            y = execute(self.graph, self.ops, self.ops.from_images(batch))
            outs.append(y.reshape(y.shape[0], -1).astype(np.int32))
        if not outs:
            return np.zeros((0, self.graph.tensors[self.graph.output].shape[0]), np.int32)
        return np.concatenate(outs)
