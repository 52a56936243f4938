"""Training checkpoints: one `.pt` file holding tensors (model, optimizer, SWA average, the
float teacher's weights) and settings as a JSON string, written to a temp file and renamed;
read back only with `torch.load(weights_only=True)`. A corrupt or foreign file is one clear
error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .. import AqError
from ..files import atomic_open, atomic_path

FORMAT = "aq_runtime.train/1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    p = Path(path)
    with atomic_path(p) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def is_training_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_checkpoint(path: str | Path, raw: Any = None) -> dict[str, Any]:
    """Read and check a checkpoint; `raw` is its `torch.load` result when already loaded."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.pt"
    if raw is not None:
        ck = raw
    elif not p.is_file():
        raise AqError(f"{p}: no such checkpoint")
    else:
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for corrupt files
            raise AqError(f"{p}: not a readable checkpoint ({e.__class__.__name__})") from None
    if not is_training_checkpoint(ck):
        raise AqError(f"{p}: not an aq-train checkpoint")
    try:
        ck["settings"] = json.loads(ck["settings"])
        ck["model"], ck["float"]  # noqa: B018  (presence check)
    except (KeyError, TypeError, json.JSONDecodeError):
        raise AqError(f"{p}: checkpoint is missing its settings or weights") from None
    return ck


def write_json(path: str | Path, obj: Any) -> None:
    """JSON written atomically (temp file + rename)."""
    p = Path(path)
    with atomic_open(p, "w") as f:
        json.dump(obj, f, indent=1)
