"""Cross-backend verification: the same images through every available backend, int32 logits
compared with `==` against the reference's (run once); differing elements are listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import AqError
from ..data.images import list_images
from ..ir.graph import Graph
from ..format import read_aqz
from .backends import available_backends, use_kernels
from .predict import preprocess_file
from .session import Session


def verify_folder(model: str | Path, folder: str | Path, kernels: str | Path | None = None
                  ) -> tuple[str, bool]:
    """(report, all equal) for the images of `folder`, preprocessed as the model's input
    spec says, through every available backend against the reference; `kernels`: the tvm
    backend runs this kernels file (aq-compile)."""
    graph = read_aqz(model)
    if kernels is not None:
        use_kernels(kernels, graph, "tvm")
    ref = Session(graph, "reference")
    paths = list_images(folder)
    imgs, skipped = [], 0
    for p in paths:
        try:
            imgs.append(preprocess_file(ref, p))
        except AqError:
            skipped += 1
    if not imgs:
        raise AqError(f"{folder}: no readable images")
    lines, ok = verify_images(graph, np.stack(imgs), ref,
                              header=f"{len(imgs)} images ({skipped} unreadable skipped), ")
    return "\n".join(lines), ok


def verify_images(graph: Graph, x: np.ndarray, ref: Session | None = None,
                  header: str = "") -> tuple[list[str], bool]:
    """(report lines, all equal): the uint8 NHWC images `x` through the reference once and
    through every other available backend, int32 logits compared with `==` against the
    reference's (first 10 differences listed); the first line is `header` + the backends."""
    want = (ref or Session(graph, "reference")).run(x)
    lines = [f"{header}backends: {', '.join(available_backends())}"]
    ok = True
    for name in available_backends():
        if name == "reference":
            continue
        got = Session(graph, name).run(x)
        diff = np.argwhere(got != want)
        ok &= diff.size == 0
        lines.append(f"{name}: {'identical' if diff.size == 0 else f'{len(diff)} elements differ'}"
                     f" ({want.size} int32 logits)")
        for i, j in diff[:10]:
            lines.append(f"  image {i} class {j}: {got[i, j]} != {want[i, j]}")
    if len(available_backends()) == 1:
        lines.append("note: only the reference backend is available in this build")
    return lines, ok
