"""Per-layer kernel choice by timing at plan time: the first time a node runs, every candidate
kernel runs on that very input (once to warm up, then RUNS or more rounds over the candidates,
until each has run MIN_SECONDS, best time kept), the fastest is used from then on and
remembered on disk (`kernel_choices.json` in $AQ_CACHE_DIR or ~/.cache/aq_runtime, keyed by
the backend, the node's weights and the input's shape), so a second process does not measure
again. Each backend's ops object holds one `Chooser` (its decisions for its graph); the disk
file is shared. All candidates are exact, so the choice only moves speed. `dry_run()` runs
every candidate once instead, choosing nothing."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..ir.graph import Node
from .cache import cache_root, read_json, write_json

_disk: dict[str, str] | None = None
RUNS = 5  # timed rounds over the candidates after one warm-up run each; the best time counts
# ... and more rounds, up to MAX_RUNS, until each candidate has run MIN_SECONDS in all: on a
# shared machine a burst of noise can cover five rounds of a small kernel (one such plan took a
# 0.5 ms kernel over a 0.2 ms one and kept it on disk)
MIN_SECONDS = 0.01
MAX_RUNS = 100
# per backend, the version of its kernels' code (the tvm backend registers compiled.VERSION):
# part of every decision's key, so kernels that changed are timed again
KERNEL_VERSION: dict[str, int] = {}
_dry: list[bool] = []


@contextmanager
def dry_run() -> Iterator[None]:
    """Within the block, run_fastest runs every candidate once and decides nothing (for
    walking a plan whose kernels are being collected, not run: kernels/tvm/ahead.py)."""
    _dry.append(True)
    try:
        yield
    finally:
        _dry.pop()


def choices_file() -> Path:
    return cache_root() / "kernel_choices.json"


def _key(scope: str, node: Node, shape: tuple, names: tuple) -> str:
    """Backend, weights, strides/padding, input shape, the candidates' names and the backend's
    KERNEL_VERSION (a new kernel version or candidate is timed again, not shadowed by an old
    decision)."""
    h = hashlib.sha1(repr((scope, names, KERNEL_VERSION.get(scope))).encode())
    for k in ("weight", "wbits"):
        h.update(np.ascontiguousarray(node.arrays[k]).tobytes())
    h.update(repr((node.attrs["stride"], node.attrs["pad"], shape)).encode())
    return h.hexdigest()


def _remember(key: str, value: str) -> None:
    assert _disk is not None
    _disk[key] = value
    write_json(choices_file(), _disk)


class Chooser:
    """One backend's kernel decisions for one graph: per node, {input shape: kernel name}, and
    under None the latest pick. `scope` names the backend (each keeps its own decisions)."""

    def __init__(self, scope: str):
        self.scope = scope
        self._picked: dict[Node, dict] = {}

    def chosen(self, node: Node, shape: tuple | None = None) -> str | None:
        """The kernel picked for the node at this input shape (None: at the shape it ran at
        last), if it ran yet."""
        return self._picked.get(node, {}).get(shape)

    def run_fastest(self, node: Node, shape: tuple, candidates: dict[str, Callable[[], Any]]
                    ) -> Any:
        """Run the node's chosen candidate (choosing it first if needed) and return its
        output."""
        global _disk
        if _dry:  # every candidate once (each builds what it needs), nothing timed or kept
            return [fn() for fn in candidates.values()][0]
        picked = self._picked.setdefault(node, {})
        if shape not in picked:
            if _disk is None:
                _disk = read_json(choices_file())
            key = _key(self.scope, node, shape, tuple(sorted(candidates)))
            if _disk.get(key) in candidates:
                picked[shape] = _disk[key]
            else:
                name, out = _time(candidates)
                picked[shape] = picked[None] = name
                _remember(key, name)
                return out
        picked[None] = picked[shape]
        return candidates[picked[shape]]()


def _time(candidates: dict[str, Callable[[], Any]]) -> tuple[str, Any]:
    """(the fastest candidate's name, its output)."""
    outs = {name: fn() for name, fn in candidates.items()}  # warm-up: one-time costs
    best_t = dict.fromkeys(candidates, float("inf"))
    spent = dict.fromkeys(candidates, 0.0)
    for r in range(MAX_RUNS):  # rounds across the candidates: noise hits them alike
        if r >= RUNS and min(spent.values()) >= MIN_SECONDS:
            break
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            best_t[name] = min(best_t[name], dt)
            spent[name] += dt
    name = min(best_t, key=best_t.__getitem__)
    return name, outs[name]
