"""What `--backend auto` picks: the aq backend that `aq-bench` measured fastest for this model
on this machine, at the measured batch size closest below the session's (remembered in
`fastest_backends.json` under $AQ_CACHE_DIR or ~/.cache/aq_runtime, keyed by the model's digest
and the machine); without such a measurement, the first available backend in the registry's
preference order (runtime/backends.py), which is the order measured on the machines here."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path


def _file() -> Path:
    root = os.environ.get("AQ_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aq_runtime")
    return Path(root) / "fastest_backends.json"


def machine_key() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}|{os.cpu_count()}"


def _load() -> dict:
    try:
        d = json.loads(_file().read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def record(digest: str, fastest: dict[int, str]) -> None:
    """Remember batch size -> fastest backend for a model (best effort, atomic)."""
    d = _load()
    d[f"{digest}|{machine_key()}"] = {str(b): name for b, name in fastest.items()}
    try:
        path = _file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(d, f)
        os.replace(tmp, path)
    except OSError:
        pass


def lookup(digest: str, batch: int) -> str | None:
    """The measured fastest backend for this model and machine at the largest measured batch
    size <= `batch` (else the smallest measured), or None."""
    entry = _load().get(f"{digest}|{machine_key()}")
    if not isinstance(entry, dict) or not entry:
        return None
    try:
        sizes = sorted(int(b) for b in entry)
    except ValueError:
        return None
    below = [b for b in sizes if b <= batch]
    name = entry.get(str(below[-1] if below else sizes[0]))
    return name if isinstance(name, str) else None
