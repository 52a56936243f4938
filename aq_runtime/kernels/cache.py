"""Files the runtime keeps between processes: where they live ($AQ_CACHE_DIR, else
~/.cache/aq_runtime with XDG_CACHE_HOME respected), JSON read and atomic write (temp file +
rename; best effort: a cache is an optimization), and the CPU's name for keys and reports."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ..files import atomic_open


def cache_root() -> Path:
    root = os.environ.get("AQ_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aq_runtime")
    return Path(root)


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} if it is missing or not a JSON object."""
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as JSON atomically; failures are ignored (the cache is an optimization)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as f:
            json.dump(obj, f)
    except OSError:
        pass


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
