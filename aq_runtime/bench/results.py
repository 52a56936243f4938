"""Where a benchmark's table goes: written atomically to its results file (a crash leaves the
committed table as it was) and printed, one function for every script in benchmarks/."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_open


def write_result(path: str | Path, text: str) -> Path:
    """Write `text` to `path` (its folder made if missing) atomically, print it; the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(p, "w") as f:
        f.write(text)
    print(text)
    return p
