"""The backend registry: one line per backend, name -> loader returning an ops object.
Adding a backend (kernels/<name>/) adds one line here."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .. import AqError
from ..export.ir import Graph


def _reference(graph: Graph) -> Any:
    return importlib.import_module("aq_runtime.runtime.reference")


# name -> (loader, reason it may be unavailable). Order = preference of "auto" (fastest first).
BACKENDS: dict[str, Callable[[Graph], Any]] = {
    "reference": _reference,
}
PLANNED = ("numba", "numba-cuda", "tvm", "tvm-cuda")


def available_backends() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str, graph: Graph) -> tuple[str, Any]:
    """Resolve a backend name ('auto' = the first available) to (name, ops)."""
    if name == "auto":
        name = next(iter(BACKENDS))
    if name not in BACKENDS:
        if name in PLANNED:
            raise AqError(f"backend {name!r} is not available in this build "
                          f"(available: {', '.join(BACKENDS)})")
        raise AqError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    return name, BACKENDS[name](graph)
