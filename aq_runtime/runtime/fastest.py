"""What `--backend auto` picks: the aq backend that `aq-bench` measured fastest for this model
on this machine, at the measured batch size closest below the session's (remembered in
`fastest_backends.json` under $AQ_CACHE_DIR or ~/.cache/aq_runtime, keyed by the model's digest
and the machine); without such a measurement, the first available backend in the registry's
preference order (runtime/backends.py), which is the order measured on the machines here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..kernels.cache import cache_root, cpu_name, read_json, write_json

if TYPE_CHECKING:
    from ..ir.graph import Graph


def _file() -> Path:
    return cache_root() / "fastest_backends.json"


def machine_key() -> str:
    return f"{cpu_name()}|{os.cpu_count()}"


def record(digest: str, fastest: dict[int, str]) -> None:
    """Remember batch size -> fastest backend for a model (best effort, atomic)."""
    d = read_json(_file())
    d[f"{digest}|{machine_key()}"] = {str(b): name for b, name in fastest.items()}
    write_json(_file(), d)


def lookup(graph: Graph, batch: int) -> str | None:
    """The measured fastest backend for this model (an ir.graph Graph) and machine at the
    largest measured batch size <= `batch` (else the smallest measured), or None. The model is
    hashed only when some measurement is on file (hashing every array costs start-up time)."""
    measured = read_json(_file())
    if not measured:
        return None
    entry = measured.get(f"{graph.digest()}|{machine_key()}")
    if not isinstance(entry, dict) or not entry:
        return None
    try:
        sizes = sorted(int(b) for b in entry)
    except ValueError:
        return None
    below = [b for b in sizes if b <= batch]
    name = entry.get(str(below[-1] if below else sizes[0]))
    return name if isinstance(name, str) else None
