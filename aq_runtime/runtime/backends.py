"""The backend registry: one `Backend` record per backend (its name, why it cannot run here, how
to make its ops object for a graph), in the order "auto" prefers. Every backend's ops object is
a `kernels.ops.Ops` made for one graph (`kernels.executor` calls its op methods). A backend's
folder, kernels/<folder>/, defines `unavailable()` and `load(graph)` (and may define
`unlisted()`) without importing its kernels; adding a backend is that folder and one line
here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import AqError
from ..ir.graph import Graph
from ..kernels.ops import Ops


@dataclass(frozen=True)
class Backend:
    name: str
    unavailable: Callable[[], str | None]  # why it cannot run here (None: it can)
    load: Callable[[Graph], Ops]  # the ops object for a graph
    unlisted: Callable[[], str | None] | None = None  # why "auto" and listings skip it

    @classmethod
    def of_folder(cls, name: str, folder: str) -> "Backend":
        """The record of the backend in kernels/<folder>/."""
        mod = importlib.import_module(f"aq_runtime.kernels.{folder}")
        return cls(name, mod.unavailable, mod.load, getattr(mod, "unlisted", None))

    def why_not_offered(self) -> str | None:
        return (self.unlisted or self.unavailable)()

    def ops(self, graph: Graph) -> Ops:
        why = self.unavailable()
        if why:
            raise AqError(why)
        return self.load(graph)


# the order "auto" prefers (fastest first)
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend.of_folder("tvm-cuda", "tvm_cuda"),
    Backend.of_folder("numba-cuda", "numba_cuda"),
    Backend.of_folder("tvm", "tvm"),
    Backend.of_folder("numba", "numba_cpu"),
    Backend("reference", lambda: None, Ops),
)}


def unavailable(name: str) -> str | None:
    """Why backend `name` cannot run here (None: it can)."""
    return BACKENDS[name].unavailable()


def backend_unavailable(name: str) -> str | None:
    """Why backend `name` is not offered here (None: it is)."""
    return BACKENDS[name].why_not_offered()


def available_backends() -> list[str]:
    """Backends whose dependencies import here."""
    return [name for name in BACKENDS if backend_unavailable(name) is None]


def backend_report() -> list[str]:
    """One line per backend: available (tvm: with which instruction set) or why not."""
    lines = []
    for name in BACKENDS:
        reason = backend_unavailable(name)
        if reason:
            lines.append(f"{name}: not available: {reason.removeprefix(f'backend {name!r} ')}")
        elif name == "tvm":
            from ..kernels.tvm.target import isa
            lines.append(f"tvm: available ({isa()} kernels)")
        else:
            lines.append(f"{name}: available")
    return lines


def use_kernels(path: str | Path, graph: Graph, backend: str) -> str:
    """Load kernels file `path` (aq-compile) of `graph` for the tvm backend; returns the
    backend to run ('auto' becomes 'tvm')."""
    if backend not in ("auto", "tvm"):
        raise AqError(f"a kernels file is for backend 'tvm', not {backend!r}")
    from ..kernels.tvm import use_kernels as load
    load(path, graph)
    return "tvm"


def get_backend(name: str, graph: Graph, batch: int = 16) -> tuple[str, Ops]:
    """Resolve a backend name to (name, ops). 'auto': the backend aq-bench measured fastest for
    this model on this machine (runtime/fastest.py), if available, else the first available."""
    if name == "auto":
        avail = available_backends()
        name = avail[0]
        if graph is not None:
            from .fastest import lookup
            measured = lookup(graph, batch)
            if measured in avail:
                name = measured
    if name not in BACKENDS:
        raise AqError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    return name, BACKENDS[name].ops(graph)
